"""Demo data: technicians, a dispatcher and group, checklist templates and a sample sofa order to try at once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select

from domain.commands import CreateMaintenancePlan, PutPriceEntry, RegisterDevice, SavePart
from domain.events import MaintenancePlanCreated
from domain.parts import WAREHOUSE, MovementKind, van
from domain.devices import DeviceFields, SiteFields, add_months
from domain.model import DispatchGroup, Dispatcher, Job, Technician, stored_id
from services import accounts, backoffice, devices
from services import fees
from services import maintenance
from services import parts as part_service
from services.bus import MessageBus
from services.context import HandlerContext
from storage.accounts import AccountStore
from storage.devices import DEVICE, DeviceStore
from storage.maintenance import MaintenanceStore
from storage.repository import Store

CENTER = (31.2304, 121.4737)  # People's Square, Shanghai


def _p(en: str, zh: str) -> dict:
    return {"en": en, "zh": zh}


DELIVERY_STEPS = [
    {"key": "packaging_intact", "kind": "yes_no", "prompt": _p("Is the packaging intact?", "包装是否完好?")},
    {"key": "items_checked", "kind": "yes_no", "prompt": _p("Did the customer check every item against the list?", "客户是否已按清单逐一核对?")},
    {"key": "delivered_photo", "kind": "photo", "prompt": _p("Photo of the goods in place", "货物放置到位的照片")},
]

TEMPLATES = {
    "sofa": [
        {"key": "room_ready", "kind": "yes_no", "prompt": _p("Is the room clear for assembly?", "安装区域是否已清空?")},
        {"key": "legs_fitted", "kind": "number", "prompt": _p("How many legs are fitted?", "已安装几条沙发腿?"), "min": 2, "max": 12},
        {"key": "fabric", "kind": "choice", "prompt": _p("Fabric condition", "面料状况"), "choices": ["OK", "Minor marks", "Damaged"]},
        {"key": "after_photo", "kind": "photo", "prompt": _p("Photo of the assembled sofa", "安装完成的沙发照片")},
    ],
    "wardrobe": [
        {"key": "wall_anchor", "kind": "yes_no", "prompt": _p("Is the wardrobe anchored to the wall?", "衣柜是否已固定在墙上?")},
        {"key": "doors_aligned", "kind": "yes_no", "prompt": _p("Do all doors close evenly?", "所有柜门是否关闭平整?")},
        {"key": "height_cm", "kind": "number", "prompt": _p("Measured height (cm)", "实测高度(厘米)"), "min": 50, "max": 300},
        {"key": "after_photo", "kind": "photo", "prompt": _p("Photo of the finished wardrobe", "安装完成的衣柜照片")},
    ],
    "air-conditioner": [
        {"key": "bracket_load", "kind": "yes_no", "prompt": _p("Is the outdoor bracket load-tested?", "室外机支架是否已做承重测试?")},
        {"key": "pipe_length", "kind": "number", "prompt": _p("Refrigerant pipe length (m)", "冷媒管长度(米)"), "min": 1, "max": 30},
        {"key": "vacuum", "kind": "choice", "prompt": _p("Vacuum test result", "抽真空测试结果"), "choices": ["Passed", "Re-done and passed", "Failed"]},
        {"key": "outlet_temp", "kind": "number", "prompt": _p("Cooling outlet temperature (°C)", "出风口温度(°C)"), "min": 5, "max": 30},
        {"key": "notes", "kind": "text", "prompt": _p("Anything the customer should know?", "需要告知客户的事项?")},
        {"key": "after_photo", "kind": "photo", "prompt": _p("Photo of indoor and outdoor units", "室内外机照片")},
        # the device record's fields (issue 14): the installation files the unit with them
        {"key": "serial", "kind": "text", "prompt": _p("Serial number (on the indoor unit's plate)", "序列号(室内机铭牌)")},
        {"key": "model", "kind": "text", "prompt": _p("Model", "型号")},
        {"key": "location", "kind": "text", "prompt": _p("Where is it? (e.g. bedroom)", "安装位置(如:卧室)")},
    ],
    "washing-machine": [
        {"key": "bolts_removed", "kind": "yes_no", "prompt": _p("Are the transit bolts removed?", "运输螺栓是否已拆除?")},
        {"key": "level", "kind": "yes_no", "prompt": _p("Is the machine level?", "机器是否水平?")},
        {"key": "test_run", "kind": "choice", "prompt": _p("Test run", "试运行"), "choices": ["No leaks", "Leak fixed", "Leaking"]},
        {"key": "after_photo", "kind": "photo", "prompt": _p("Photo of the connected machine", "连接好的洗衣机照片")},
    ],
}

TECHNICIANS = [
    ("Wang Qiang", "13800000001", ["driver"], [], "driver"),
    ("Li Ming", "13800000002", ["installer"], ["sofa", "wardrobe"], "installer"),
    ("Zhao Lei", "13800000003", ["installer", "repairer"], ["air-conditioner", "washing-machine", "sofa"], "repairer"),
    ("Chen Gang", "13800000004", ["driver"], [], None),
]


@dataclass
class DemoLinks:
    customer: str
    technicians: dict[str, str]  # name -> token
    panes: dict[str, str]  # web chat pane -> token
    dispatcher: str
    group: str
    order_id: int
    device_codes: dict[str, str] = field(default_factory=dict)  # product -> QR code token (issue 14)
    back_office: tuple[str, str] | None = None  # the demo dispatcher's sign-in for /board, /jobs, /reports: (username, password)
    plan_id: int | None = None  # the demo customer's quarterly inspection plan (issue 14 part 8): /maintenance/<id>


async def _technician(store: Store, name: str, phone: str, roles: list[str], skills: list[str], now, policy) -> str:
    existing = (await store.session.execute(select(Technician).where(Technician.phone == phone))).scalars().first()
    if existing is not None:
        return await store.issue_token("technician", existing.id, now, policy.staff_link_ttl)
    _tech, token = await backoffice.create_technician(
        store, name=name, phone=phone, roles=roles, skills=skills, regions=["Huangpu"],
        working_hours={"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "08:00", "end": "20:00"},
        home_lat=CENTER[0] + 0.02, home_lon=CENTER[1] - 0.02, language="zh", now=now, policy=policy,
    )
    return token


async def load_demo(bus: MessageBus) -> DemoLinks:
    """Create (or find again) the demo records and return fresh links to them, in one unit of work on the bus."""

    async def seed(ctx: HandlerContext) -> tuple[DemoLinks, list]:
        return await _seed(ctx.store, ctx.now, ctx.policy)

    return await bus.call("demo-data", seed)


async def _seed(store: Store, now, policy) -> tuple[DemoLinks, list]:
    for category, steps in TEMPLATES.items():
        await backoffice.put_checklist_template(store, service_kind="installation", product_category=category, name=f"{category} installation", steps=steps)
        await backoffice.put_checklist_template(store, service_kind="delivery", product_category=category, name=f"{category} delivery", steps=DELIVERY_STEPS)
    technicians, panes = {}, {}
    for name, phone, roles, skills, pane in TECHNICIANS:
        token = await _technician(store, name, phone, roles, skills, now, policy)
        technicians[name] = token
        if pane:
            panes[pane] = token
    dispatcher = (await store.session.execute(select(Dispatcher).where(Dispatcher.name == "Demo dispatcher"))).scalars().first()
    if dispatcher is None:
        dispatcher, dispatcher_token = await backoffice.create_dispatcher(store, name="Demo dispatcher", now=now, policy=policy)
    else:
        dispatcher_token = await store.issue_token("dispatcher", dispatcher.id, now, policy.staff_link_ttl)
    group = (await store.session.execute(select(DispatchGroup).where(DispatchGroup.name == "Huangpu dispatch"))).scalars().first()
    if group is None:
        group, group_token = await backoffice.create_dispatch_group(store, name="Huangpu dispatch", region="Huangpu", language="zh", now=now, policy=policy)
    else:
        group_token = await store.issue_token("group", group.id, now, policy.staff_link_ttl)
    # a new order every run: the links of the last one were used (a link binds one chat), and its story was played
    played = len((await store.session.execute(select(Job.id).where(Job.source == "demo"))).all())
    order = await backoffice.create_order(
        store,
        backoffice.OrderRequest(
            source="demo", external_ref=f"SOFA-{played + 1:04d}", customer_name="Zhang Wei", customer_phone="13912345678",
            customer_language="zh", address="Huangpu District, 100 Nanjing East Road, Apt 1201",
            lat=CENTER[0], lon=CENTER[1], region="Huangpu", product_name="3-seat fabric sofa",
            product_category="sofa", brand=None,
            services=(backoffice.ServiceRequest("delivery"), backoffice.ServiceRequest("installation")),
            items=({"sku": "SOFA-3S-GREY", "name": "3-seat fabric sofa", "quantity": 1},),
        ),
        now, policy,
    )
    panes.update(customer=order.customer_token, dispatcher=dispatcher_token, group=group_token)
    codes, device_events = await _devices(store, now, policy)
    plan_id, plan_events = await _plan(store, now, policy, stored_id(dispatcher))
    priced = [event for entry in PRICES for event in await fees.put_price_entry(HandlerContext(store, now, policy), entry)]
    stocked = await _parts(store, now, policy)  # parts in the warehouse and in the repairer's van (issue 14 part 5)
    back_office = await _back_office_account(HandlerContext(store, now, policy), stored_id(dispatcher))
    links = DemoLinks(order.customer_token, technicians, panes, dispatcher_token, group_token, order.job.id, codes, back_office, plan_id)
    return links, [*order.events, *device_events, *plan_events, *priced, *stocked]


async def _back_office_account(ctx: HandlerContext, dispatcher_id: int) -> tuple[str, str]:
    """The demo dispatcher's account for the back-office pages, with a new random password each start (printed with the
    links, so whoever starts the demo can sign in; nobody else knows it)."""
    password = secrets.token_urlsafe(12)
    row = await AccountStore(ctx.store).account_by_username(DEMO_USERNAME)
    if row is None:
        await accounts.add_account(ctx, username=DEMO_USERNAME, display_name="Demo dispatcher", role="dispatcher", password=password,
                                   regions=["Huangpu"], dispatcher_id=dispatcher_id, language="en")
    else:
        await AccountStore(ctx.store).update_account(row["id"], password_hash=accounts.hash_password(password), disabled_at=None)
    return DEMO_USERNAME, password


DEMO_USERNAME = "demo"


# the demo shop's price list (issue 14 part 6): each completed visit gets its bill in the customer's chat
PRICES = (
    PutPriceEntry("delivery", "any", "any", "any", "fixed", 8000, "CNY", name="Delivery"),
    PutPriceEntry("installation", "sofa", "any", "any", "per_piece", 15000, "CNY", name="Sofa assembly"),
    PutPriceEntry("installation", "any", "any", "any", "fixed", 20000, "CNY", name="Installation"),
    PutPriceEntry("repair", "any", "any", "any", "per_hour", 12000, "CNY", 30, "Repair labour"),
    PutPriceEntry("repair", "any", "any", "urgent", "per_hour", 18000, "CNY", 30, "Urgent repair labour"),
    PutPriceEntry("inspection", "any", "any", "any", "fixed", 10000, "CNY", name="Inspection"),
)


PARTS = (  # code, name, unit, price in fen, compatible product, warehouse stock, reorder level; in whose van (issue 14 part 5)
    ("CAP-35UF", "Run capacitor 35µF", "pc", 4500, "air-conditioner", 6, 3, (("13800000003", 2),)),
    ("PUMP-DR1", "Drain pump", "pc", 12800, "washing-machine", 3, 1, (("13800000003", 1),)),
    ("LEG-OAK", "Oak sofa leg", "pc", 2500, "sofa", 20, 8, (("13800000002", 4),)),  # the installer pane's /stock shows these
)


async def _parts(store: Store, now, policy) -> list:
    """The demo catalogue, stocked the first time only (a second run finds the parts by code and moves nothing)."""
    ctx = HandlerContext(store, now, policy)
    events: list = []
    for code, name, unit, price, product, warehouse, level, vans in PARTS:
        part, created = await part_service.save(ctx, SavePart(code, name, unit, price, "CNY", "spare", (product,), level))
        if not created:
            continue
        events += await part_service.move(ctx, part, MovementKind.RECEIVE, warehouse, source=None, target=WAREHOUSE, actor="demo")
        for phone, quantity in vans:
            holder = (await store.session.execute(select(Technician).where(Technician.phone == phone))).scalars().first()
            if holder is not None and holder.id is not None:
                events += await part_service.move(ctx, part, MovementKind.ISSUE, quantity, source=WAREHOUSE, target=van(holder.id), actor="demo")
    return events


DEVICES = (  # the demo customer's appliances on file, to scan and report a fault on (issue 14)
    ("air-conditioner", "Split air conditioner", "Gree", "KFR-35GW", "GR-DEMO-0001", "bedroom"),
    ("washing-machine", "Front-load washing machine", "Haier", "EG100", "HA-DEMO-0001", "kitchen"),
)


async def _devices(store: Store, now, policy) -> tuple[dict[str, str], list]:
    """The demo customer's devices (found again by serial on a second run) and their QR codes."""
    ctx = HandlerContext(store, now, policy)
    site = SiteFields("Huangpu District, 100 Nanjing East Road, Apt 1201", CENTER[0], CENTER[1], "Huangpu")
    installed = now.astimezone(policy.tz).date() - timedelta(days=300)
    codes, events = {}, []
    for category, product, brand, model, serial, location in DEVICES:
        fields = DeviceFields(category, product, brand, model, serial, installed, add_months(installed, 24), location)
        device, _created, made = await devices.register(ctx, RegisterDevice("13912345678", "Zhang Wei", "zh", site, fields, "demo"))
        codes[product] = await DeviceStore(store).code(DEVICE, device.id, now)
        events += made
    return codes, events


PLAN_NAME = "Quarterly appliance inspection"
INSPECTION_STEPS = [  # the demo plan's checklist: what an inspection of the customer's appliances looks at
    {"key": "filters", "kind": "choice", "prompt": _p("Filters", "滤网"), "choices": ["Clean", "Dirty, cleaned", "Replaced"]},
    {"key": "drain", "kind": "yes_no", "prompt": _p("Drains run freely?", "排水是否通畅?")},
    {"key": "findings", "kind": "text", "prompt": _p("Anything found?", "发现的问题?")},
    {"key": "unit_photo", "kind": "photo", "prompt": _p("Photo of the units", "设备照片")},
]


async def _plan(store: Store, now, policy, reviewer_id: int) -> tuple[int | None, list]:
    """The demo customer's appliances inspected every quarter by the repairer (Zhao Lei), reviewed by the demo dispatcher;
    its first inspection is ten days ahead, so it is made (and offered) at once. A second run finds the plan by name."""
    ctx = HandlerContext(store, now, policy)
    for category in ("air-conditioner", "washing-machine"):
        await backoffice.put_checklist_template(store, service_kind="inspection", product_category=category, name=f"{category} inspection",
                                                steps=INSPECTION_STEPS)
    for plan in await MaintenanceStore(store).plans():
        if plan.name == PLAN_NAME:
            return plan.id, []
    # the appliances by name: a site-wide plan would take in whatever is filed there later (the sofa the demo installs)
    devices = [await DeviceStore(store).by_serial(brand, serial) for _category, _product, brand, _model, serial, _location in DEVICES]
    repairer = (await store.session.execute(select(Technician).where(Technician.phone == "13800000003"))).scalars().first()
    if any(device is None for device in devices) or repairer is None:
        return None, []
    named = [device for device in devices if device is not None]
    first = now.astimezone(policy.tz).date() + timedelta(days=10)
    events = await maintenance.create_plan(ctx, CreateMaintenancePlan(
        PLAN_NAME, named[0].site_id, "FREQ=MONTHLY;INTERVAL=3", first, 14, device_ids=tuple(d.id for d in named), technician_id=repairer.id,
        reviewer_dispatcher_id=reviewer_id))
    plan_id = next(e.data["plan_id"] for e in events if isinstance(e, MaintenancePlanCreated))
    return plan_id, events

"""Maintenance plans as the people in them live it: a plan's inspections made ahead by its timer over a quarter, booked
on their day and offered to the plan's technician (or its team together; to the usual dispatch, said so, when they
cannot), an inspection that is not done escalating through the SLA tiers and then as overdue to the dispatchers and the
plan's reviewer, and the reviewer handed the period's report once it is all done. On SQLite, and on PostgreSQL in the
full run (row locks on the plan and the technicians, the team as JSON)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from domain import commands as c
from domain import events as ev
from domain.devices import DeviceFields, SiteFields
from services import maintenance
from storage import tables as t
from storage.repository import Store
from tests.support.harness import Chat, World, keys
from tests.support.setups import dispatch_group, staff
from webhooks.maintenance_api import report_csv

SHANGHAI = timezone(timedelta(hours=8))
ROOF = SiteFields("8 Huaihai Road", 31.2204, 121.4737, "Huangpu", "Roof")
STEPS = [{"key": "filters", "kind": "choice", "prompt": {"en": "Filters"}, "choices": ["clean", "dirty, cleaned"]},
         {"key": "coil", "kind": "photo", "prompt": {"en": "Photo of the coil"}}]


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI).astimezone(timezone.utc)


async def morning(world: World, day: date, hour: int = 6, minute: int = 30) -> None:
    world.clock.set(at(day, hour, minute))
    await world.sweep()


async def rooftop_site(world: World, units: int = 2) -> int:
    for n in range(1, units + 1):
        await world.container.bus.run("test", c.RegisterDevice(
            "13800000001", "Acme Store", "en", ROOF, DeviceFields("aircon", "Rooftop unit", "Daikin", serial=f"DK-{n}", location=f"roof unit {n}")))
    async with world.container.sessions() as session:
        return (await session.execute(select(t.device_sites.c.id))).scalar_one()


async def reviewer(world: World) -> tuple[int, Chat]:
    """Dora (the group's dispatcher) reviews: her own chat with the staff bot is her user."""
    async with world.container.sessions() as session:
        dispatcher_id = (await session.execute(select(t.dispatchers.c.id).where(t.dispatchers.c.name == "Dora"))).scalar_one()
    return dispatcher_id, world.chat("staff", "dora")


async def plan(world: World, site_id: int, **fields) -> int:
    command = c.CreateMaintenancePlan(**{"name": "Rooftop units, monthly", "site_id": site_id, "rule": "FREQ=MONTHLY;BYMONTHDAY=1",
                                         "starts_on": date(2026, 12, 1), "lead_days": 7, **fields})
    events = await world.container.bus.run("test", command)
    return next(e.data["plan_id"] for e in events if isinstance(e, ev.MaintenancePlanCreated))


async def inspections(world: World) -> list[dict]:
    """Each inspection made so far: its day and its visit as it stands."""
    async with world.container.sessions() as session:
        i, v = t.maintenance_inspections, t.visits
        rows = (await session.execute(select(i.c.occurs_on, v.c.id, v.c.status, v.c.technician_id, v.c.slot_start)
                                      .join(v, v.c.id == i.c.visit_id).order_by(i.c.occurs_on))).mappings().all()
    return [dict(row) for row in rows]


async def report(world: World, plan_id: int, day: date) -> maintenance.PlanReport:
    async with world.container.sessions() as session:
        return await maintenance.plan_report(Store(session), plan_id, day, world.clock.now().astimezone(SHANGHAI).date())


async def inspect(world: World, technician: Chat, visit_id: int) -> None:
    """The technician's way through an inspection: on the way, check-in, the checklist (a finding and a photo), done."""
    await technician.press(f"go:{visit_id}")
    await technician.location(ROOF.lat, ROOF.lon + 0.0005)
    await technician.press(f"st:{visit_id}")
    await technician.press(f"ans:{visit_id}:0:1")  # filters: dirty, cleaned
    photo = world.media / "coil.jpg"
    photo.write_bytes(b"\xff\xd8\xff fake jpeg")
    finished = await technician.photo(photo)
    assert keys(finished) == ["tech.checklist_done"]
    assert keys(await technician.press(finished[0].button("done")))[0] == "tech.completed"


async def test_a_plan_over_a_quarter_goes_to_its_technician_escalates_when_overdue_and_hands_its_reviewer_the_report(world: World):
    await world.template("inspection", "aircon", STEPS)
    li_id, li = await staff(world, "Li", ["repairer"], ["aircon"])
    _chen_id, chen = await staff(world, "Chen", ["repairer"], ["aircon"])
    group = await dispatch_group(world)
    dora_id, dora = await reviewer(world)
    site_id = await rooftop_site(world)
    plan_id = await plan(world, site_id, technician_id=li_id, reviewer_dispatcher_id=dora_id)
    assert await inspections(world) == []  # 1 December is 8 days away, the lead is 7

    # the timer makes the December inspection on the morning of 24 November: booked on its day in the first window
    # Li is free, and offered to Li alone — nobody else hears of it
    await morning(world, date(2026, 11, 24))
    [december] = await inspections(world)
    assert (december["occurs_on"], december["status"], december["technician_id"]) == (date(2026, 12, 1), "booked", li_id)
    assert december["slot_start"].astimezone(SHANGHAI).replace(tzinfo=None) == datetime(2026, 12, 1, 9, 0)
    offer = await li.inbox()
    assert len(offer) == 1 and offer[0].has_button("acc") and "Rooftop unit" in str(offer[0].payload["text"])  # the offer, with the devices
    assert await chen.inbox() == [] and await group.inbox() == []
    await li.press(offer[0].button("acc"))

    # Li never goes: the arrival clock's tiers remind and warn Li, then alert the dispatchers at its deadline (11:00) ...
    await morning(world, date(2026, 11, 27), 12)
    await morning(world, date(2026, 11, 30), 12)
    await morning(world, date(2026, 12, 1), 11, 5)
    # (the contact clock — call the customer within two business hours of accepting — ran out long before)
    assert [k for k in keys(await li.inbox()) if k.startswith("tech.sla_arrival")] == ["tech.sla_arrival_reminder", "tech.sla_arrival_warning"]
    breached = [m for m in await group.inbox() if m.key == "group.sla_breached"]
    assert [m.params["stage"]["key"] for m in breached] == ["sla.contact", "sla.arrival"]
    assert {m.params["visit"] for m in breached} == {december["id"]} and breached[-1].has_button("sr")
    # ... and the morning after its day it is overdue: the region's dispatchers (with the visit's actions) and the
    # reviewer in her own chat (with the period's report), once however often the sweep runs
    await morning(world, date(2026, 12, 2))
    await morning(world, date(2026, 12, 2), 7)
    [overdue] = [m for m in await group.inbox() if m.key == "maintenance.overdue_group"]
    assert overdue.params["visit"] == december["id"] and overdue.has_button("dan") and overdue.params["phone"] != "13800000001"
    told = await dora.inbox()
    assert keys(told) == ["maintenance.overdue_reviewer"]
    assert [data for _label, data in told[0].buttons] == [f"link:/maintenance/{plan_id}?day=2026-12-01",
                                                          f"link:/maintenance/{plan_id}/report.csv?day=2026-12-01"]
    late = await report(world, plan_id, date(2026, 12, 1))
    assert [(line.occurs_on, line.state) for line in late.report.lines] == [(date(2026, 12, 1), "overdue")]

    # Li does it a day late, with a finding and a photo: the period is complete and the reviewer gets its report, once
    world.clock.set(at(date(2026, 12, 2), 9))
    await inspect(world, li, december["id"])
    done = await dora.inbox()
    assert keys(done) == ["maintenance.period_done_reviewer"]
    assert done[0].params["start"] == "2026-12-01" and done[0].params["end"] == "2026-12-31" and done[0].params["done"] == 1
    finished = await report(world, plan_id, date(2026, 12, 15))
    [line] = finished.report.lines
    assert (line.state, line.technician, line.findings, line.photos) == ("done", "Li", ("filters: dirty, cleaned", "coil: photo"), 1)
    assert finished.report.devices == ("Rooftop unit (roof unit 1)", "Rooftop unit (roof unit 2)") and finished.report.overdue == 0
    sheet = bytes(report_csv(finished).body).decode()  # the file the page and the API hand out
    assert "filters: dirty, cleaned | coil: photo" in sheet and sheet.strip().endswith(",1") and ",done,Li," in sheet

    # January: made on 25 December, Li's again. February: Li is off duty, so the inspection goes to the usual dispatch
    # (Chen, the one free) and the dispatchers hear why
    await morning(world, date(2026, 12, 25))
    assert [(i["occurs_on"], i["technician_id"]) for i in await inspections(world)][1:] == [(date(2027, 1, 1), li_id)]
    await world.container.bus.run("test", c.SetDuty(li_id, False))
    await group.inbox()
    await morning(world, date(2027, 1, 25))
    february = (await inspections(world))[2]
    assert february["occurs_on"] == date(2027, 2, 1) and february["technician_id"] == _chen_id
    assert any(m.has_button("acc") for m in await chen.inbox())
    [unavailable] = [m for m in await group.inbox() if m.key == "maintenance.assignee_unavailable_dispatched"]
    assert unavailable.params["who"]["params"]["text"] == "Li" and unavailable.params["day"] == "2027-02-01"
    assert unavailable.has_button("dan")  # the dispatchers can still put someone else on it
    assert len(await inspections(world)) == 3  # a quarter: December, January, February


async def test_a_teams_free_members_are_offered_the_inspection_together(world: World):
    await world.template("inspection", "aircon", STEPS)
    li_id, li = await staff(world, "Li", ["repairer"], ["aircon"])
    chen_id, chen = await staff(world, "Chen", ["repairer"], ["aircon"])
    wang_id, wang = await staff(world, "Wang", ["driver"])  # in the team, but no inspector: not asked
    group = await dispatch_group(world)
    site_id = await rooftop_site(world, 1)
    await plan(world, site_id, team_ids=(li_id, chen_id, wang_id), lead_days=14)
    [inspection] = await inspections(world)
    assert inspection["status"] == "booked" and inspection["technician_id"] is None
    for member in (li, chen):
        [offer] = await member.inbox()
        assert offer.has_button("acc") and "tech.offer_grab" in str(offer.payload["text"])
    assert await wang.inbox() == [] and await group.inbox() == []


async def test_nobody_free_on_the_day_leaves_the_inspection_to_be_booked_and_the_dispatchers_know(world: World):
    li_id, li = await staff(world, "Li", ["driver"])  # named, but cannot inspect
    group = await dispatch_group(world)
    site_id = await rooftop_site(world, 1)
    await plan(world, site_id, technician_id=li_id, lead_days=14)
    [inspection] = await inspections(world)
    assert inspection["status"] == "created" and inspection["slot_start"] is None
    assert await li.inbox() == []
    [alert] = await group.inbox()
    assert alert.key == "maintenance.assignee_unavailable_unbooked" and alert.has_button("dmv")


async def test_a_plan_naming_a_technician_and_a_team_or_an_unknown_reviewer_is_refused(world: World):
    li_id, _li = await staff(world, "Li", ["repairer"], ["aircon"])
    site_id = await rooftop_site(world, 1)
    for fields, code in (({"technician_id": li_id, "team_ids": (li_id,)}, "plan_assignee_twice"),
                         ({"reviewer_dispatcher_id": 999}, "plan_reviewer_not_found"), ({"team_ids": (li_id, 999)}, "technician_not_found")):
        with pytest.raises(Exception) as refused:
            await plan(world, site_id, **fields)
        assert getattr(refused.value, "code", None) == code
    assert await inspections(world) == []

"""The back-office API in process: the app with its lifespan run and a client carrying the bearer token, and the bodies
API tests post."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI

from domain.clock import ManualClock
from fieldchat.container import Container, build
from fieldchat.settings import Settings
from services.messages import ChatRef, Inbound, InboundKind
from storage.repository import Store
from tests.support.harness import SHOP, START
from webhooks.app import create_app

TOKEN = "test-api-token-of-24-chars-or-more"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    client: httpx.AsyncClient
    container: Container
    app: FastAPI
    tmp_path: Path


def make_app(database_url: str, tmp_path: Path, **overrides) -> tuple[Container, FastAPI]:
    settings = {"api_token": TOKEN, "web_console": True, **overrides}
    config = Settings(_env_file=None, database_url=database_url, media_dir=tmp_path / "media", **settings)
    container = build(config, ManualClock(START))
    return container, create_app(container, run_background=False)


@asynccontextmanager
async def running_api(database_url: str, tmp_path: Path, **overrides):
    """The app with its lifespan run (migrations, getMe) and an in-process client carrying the bearer token."""
    container, app = make_app(database_url, tmp_path, **overrides)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=AUTH) as client:
            yield Api(client, container, app, tmp_path)


def order_body(ref: str = "SO-1", **changes) -> dict:
    """A sofa order; `changes` maps dotted paths (e.g. "address.lat") to replacement values."""
    body = {
        "source": "erp",
        "external_ref": ref,
        "customer": {"name": "Zhang Wei", "phone": "+86 139 1234 5678", "language": "en"},
        "address": {"text": "Huangpu District, 100 Nanjing East Road", "lat": SHOP[0], "lon": SHOP[1], "region": "Huangpu"},
        "product": {"name": "3-seat sofa", "category": "sofa", "brand": "Nordhaus"},
        # listed installation first on purpose: the API must still put the delivery first
        "services": [{"kind": "installation"}, {"kind": "delivery", "duration_minutes": 45}],
        "items": [{"sku": "SOFA-3", "qty": 1}],
        "notes": "Call before arriving",
    }
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = body
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[leaf] = value
    return body


def technician_body(**changes) -> dict:
    body = {
        "name": "Li",
        "phone": "13800001111",
        "roles": ["installer", "repairer"],
        "skills": ["sofa", "brand:Nordhaus"],
        "regions": ["Huangpu"],
        "working_hours": {"weekdays": [0, 1, 2, 3, 4], "start": "08:30", "end": "17:30"},
        "home": {"lat": 31.22, "lon": 121.46},
        "language": "en",
    }
    body.update(changes)
    return body


TEMPLATE = {
    "service_kind": "installation",
    "product_category": "sofa",
    "name": "Sofa installation",
    "steps": [
        {"key": "room_ready", "kind": "yes_no", "prompt": {"en": "Room ready?", "zh": "房间准备好了吗?"}},
        {"key": "legs", "kind": "number", "prompt": {"en": "Legs fitted?"}, "min": 2, "max": 12},
        {"key": "fabric", "kind": "choice", "prompt": {"en": "Fabric"}, "choices": ["OK", "Marks"]},
        {"key": "after", "kind": "photo", "prompt": {"en": "Photo of the sofa"}},
    ],
}


ALL_WEEK = {"weekdays": [0, 1, 2, 3, 4, 5, 6], "start": "08:00", "end": "20:00"}


async def booked_visit(api: Api) -> int:
    """An installation booked by its customer in the chat, with one installer free for it."""
    await api.client.post("/api/v1/technicians", json=technician_body(working_hours=ALL_WEEK))
    order = (await api.client.post("/api/v1/orders", json=order_body(services=[{"kind": "installation"}]))).json()
    visit_id = order["job"]["visits"][0]["id"]
    token = order["customer_link"].split("customer=")[1]
    chat = ChatRef("web", "customer", "c1")
    engine = api.container.engine
    await engine.handle(Inbound(chat=chat, update_id="1", kind=InboundKind.COMMAND, user_id="c1", text="start", payload=token))
    async with api.container.sessions() as session:
        rows = await Store(session).outbox_for_chat("web", "customer", "c1", 0)
    slot = rows[-1]["payload"]["buttons"][0][0]["data"]
    await engine.handle(Inbound(chat=chat, update_id="2", kind=InboundKind.BUTTON, user_id="c1", text=slot))
    return visit_id


def error_locations(response: httpx.Response) -> list[tuple]:
    """Where a 422 says the request is wrong: its errors list, next to the readable detail."""
    return [tuple(error["loc"]) for error in response.json()["errors"]]


def token_of(link: str, parameter: str) -> str:
    """The token in a link: after "#" in the console's links (kept from the server), in the query in Telegram's."""
    parts = urlsplit(link)
    return parse_qs(parts.fragment or parts.query)[parameter][0]

"""The customer signs on the technician's phone: the pad link from the staff chat, the pad page's rules, the signature
kept with the visit through the bus, and a completion policy that asks for one with "cannot sign" as the way out."""

from __future__ import annotations

import base64
import io
import re
from datetime import timedelta

import httpx
import pytest
from PIL import Image, ImageDraw

from storage.repository import Store
from storage.signatures import SignatureStore, signature_of
from tests.support.harness import SHOP, World, keys
from tests.support.setups import booked_and_accepted
from webhooks.app import create_app

PUBLIC = "https://fc.example"
LINK = re.compile(r"^app:https://fc\.example(/sign/\d+\.[A-Za-z0-9_-]{32})$")
SAME_SITE = {"Origin": PUBLIC}


@pytest.fixture
def world_settings() -> dict:
    return {"replan_seconds": 0.5, "public_url": PUBLIC}


@pytest.fixture
async def web(world):
    """The app around the world's own container, in process, as the phone's browser reaches it."""
    app = create_app(world.container, run_background=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as client:
        yield client


def drawn(width: int = 600, height: int = 200, *, ink: bool = True, kind: str = "PNG") -> bytes:
    """A pad's export: dark strokes on a transparent canvas (none: a blank pad)."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    if ink:
        ImageDraw.Draw(image).line([(20, height - 40), (width // 3, 30), (width // 2, height - 50), (width - 30, 40)], fill=(17, 24, 39, 255), width=5)
    out = io.BytesIO()
    (image.convert("RGB") if kind == "JPEG" else image).save(out, kind)
    return out.getvalue()


def posted(png: bytes) -> dict:
    return {"png": "data:image/png;base64," + base64.b64encode(png).decode()}


async def at_the_address(world: World):
    """A delivery accepted, the driver on site with the checklist answered: its last card offers Complete and a signature."""
    order, customer, driver, group = await booked_and_accepted(world)
    visit = order.visits[0]
    await driver.press(f"go:{visit.id}")
    await driver.location(SHOP[0], SHOP[1], live=True)
    await driver.press(f"st:{visit.id}")
    done = await driver.press(f"ans:{visit.id}:0:yes")
    assert done[-1].key == "tech.checklist_done" and done[-1].has_button("sig") and done[-1].has_button("done")
    return order, customer, driver, group


async def pad_link(driver, visit_id: int) -> str:
    """Customer signature pressed: the pad's path, from the one link button of the message that follows."""
    answer = await driver.press(f"sig:{visit_id}")
    assert keys(answer) == ["tech.signature_link_delivery"]
    links = [data for _label, data in answer[-1].buttons if data.startswith("app:")]
    assert len(links) == 1, answer[-1].buttons
    found = LINK.match(links[0])
    assert found, links[0]
    return found.group(1)


async def timeline(world: World, job_id: int) -> list[str]:
    async with world.container.sessions() as session:
        return [row["type"] for row in await Store(session).timeline(job_id)]


async def test_the_pad_link_works_once_and_the_signature_is_kept_with_the_visit_and_the_technician_told(world, web):
    order, _customer, driver, _group = await at_the_address(world)
    visit = order.visits[0]
    path = await pad_link(driver, visit.id)

    page = await web.get(path, headers={"Accept-Language": "en"})
    assert page.status_code == 200 and 'id="pad"' in page.text and "Sign for the goods received" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"] and page.headers["referrer-policy"] == "no-referrer"
    assert f"Visit #{visit.id}" in page.text
    zh = await web.get(path + "?lang=zh")
    assert "签收货物" in zh.text and "保存签名" in zh.text
    assert await signature_of_visit(world, visit.id) is None  # opening the pad (a link preview) keeps nothing

    saved = await web.post(path, json=posted(drawn()), headers=SAME_SITE)
    assert saved.status_code == 200 and saved.json()["ok"] is True
    kept = await signature_of_visit(world, visit.id)
    assert kept is not None and kept.signed and kept.stage == "delivery" and (kept.width, kept.height) == (600, 200)
    assert Image.open(io.BytesIO(kept.png)).format == "PNG" and kept.data_url().startswith("data:image/png;base64,")
    assert ["SignatureRequested", "SignatureCaptured"] == [t for t in await timeline(world, order.job.id) if t.startswith("Signature")]

    told = await driver.inbox()
    assert keys(told) == ["tech.signature_saved"] and told[-1].has_button("ck")  # the next step: carry on to Complete
    assert told[-1].payload["card"] == f"signature:{visit.id}"  # in the link's place: the used link is not left to press

    again = await web.post(path, json=posted(drawn()), headers=SAME_SITE)
    assert again.status_code == 410 and again.json()["ended"] is True
    reopened = await web.get(path, headers={"Accept-Language": "en"})
    assert reopened.status_code == 410 and "already used" in reopened.text
    async with world.container.sessions() as session:
        assert len(await SignatureStore(Store(session)).kept([visit.id])) == 1


async def signature_of_visit(world: World, visit_id: int):
    async with world.container.sessions() as session:
        return await signature_of(Store(session), visit_id)


@pytest.mark.parametrize("forge", ["1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x", "99999999999.abc", "{id}.{mac}X", "{other}.{mac}"])
async def test_forged_or_tampered_links_get_404_and_change_nothing(world, web, forge):
    order, _customer, driver, _group = await at_the_address(world)
    visit = order.visits[0]
    path = await pad_link(driver, visit.id)
    ident, mac = path.removeprefix("/sign/").split(".")
    token = forge.format(id=ident, mac=mac, other=int(ident) + 1)
    assert (await web.get(f"/sign/{token}", headers={"Accept-Language": "en"})).status_code == 404
    refused = await web.post(f"/sign/{token}", json=posted(drawn()), headers=SAME_SITE)
    assert refused.status_code == 404 and refused.json()["ended"] is True
    assert await signature_of_visit(world, visit.id) is None


async def test_an_expired_link_says_so_and_the_technician_can_ask_for_a_new_one(world, web):
    order, _customer, driver, _group = await at_the_address(world)
    visit = order.visits[0]
    path = await pad_link(driver, visit.id)
    world.clock.advance(timedelta(minutes=31))
    page = await web.get(path, headers={"Accept-Language": "en"})
    assert page.status_code == 410 and "expired" in page.text and "Customer signature" in page.text
    assert (await web.post(path, json=posted(drawn()), headers=SAME_SITE)).status_code == 410
    fresh = await pad_link(driver, visit.id)
    assert fresh != path and (await web.get(fresh)).status_code == 200


async def test_the_pad_keeps_only_a_real_png_signature_posted_from_itself(world, web):
    order, _customer, driver, _group = await at_the_address(world)
    visit = order.visits[0]
    path = await pad_link(driver, visit.id)
    refusals = {
        "other site": (await web.post(path, json=posted(drawn()), headers={"Origin": "https://evil.example"}), 403, "origin"),
        "a form": (await web.post(path, data={"png": "x"}, headers=SAME_SITE), 400, "bad_image"),
        "not base64": (await web.post(path, json={"png": "%%%"}, headers=SAME_SITE), 400, "bad_image"),
        "a jpeg": (await web.post(path, json=posted(drawn(kind="JPEG")), headers=SAME_SITE), 400, "bad_image"),
        "png bytes lying": (await web.post(path, json=posted(b"\x89PNG\r\n\x1a\n" + b"0" * 200), headers=SAME_SITE), 400, "bad_image"),
        "a blank pad": (await web.post(path, json=posted(drawn(ink=False)), headers=SAME_SITE), 400, "blank"),
        "too small": (await web.post(path, json=posted(drawn(40, 20)), headers=SAME_SITE), 400, "bad_image"),
        "too wide": (await web.post(path, json=posted(drawn(3000, 200)), headers=SAME_SITE), 400, "bad_image"),
        "too big": (await web.post(path, content=b'{"png": "' + b"A" * 900_000 + b'"}', headers={**SAME_SITE, "Content-Type": "application/json"}), 413, "too_big"),
    }
    for name, (answer, status, detail) in refusals.items():
        assert (answer.status_code, answer.json()["detail"]) == (status, detail), name
        assert answer.json()["message"], name  # words for the page to show
    assert await signature_of_visit(world, visit.id) is None
    assert (await web.post(path, json=posted(drawn()), headers=SAME_SITE)).status_code == 200  # the link still worked after all that


async def required_by_source(world: World) -> None:
    async with world.container.sessions() as session, session.begin():
        await SignatureStore(Store(session)).put_source_policy("erp", "delivery", world.clock.now())


async def test_a_required_signature_is_asked_for_at_completion_and_cannot_sign_is_the_way_out(world, web):
    order, _customer, driver, _group = await at_the_address(world)
    visit = order.visits[0]
    await required_by_source(world)
    asked = await driver.press(f"done:{visit.id}")
    assert keys(asked) == ["tech.signature_required"] and asked[-1].has_button("sig") and asked[-1].has_button("sgx")
    link = await driver.press(f"sig:{visit.id}")
    assert link[-1].has_button("sgx")  # the link's message keeps the way out too
    assert keys(await driver.press(f"sgx:{visit.id}")) == ["tech.signature_reason_ask"]
    assert keys(await driver.send("   ")) == ["tech.signature_reason_ask"]  # no reason, no skip
    assert keys(await driver.send("Customer not at home, neighbour took the sofa")) == ["tech.completed"]
    kept = await signature_of_visit(world, visit.id)
    assert kept is not None and not kept.signed and kept.skip_reason == "Customer not at home, neighbour took the sofa"
    assert {"SignatureSkipped", "VisitCompleted"} <= set(await timeline(world, order.job.id))


async def test_a_required_signature_once_given_lets_complete_through(world, web):
    order, _customer, driver, _group = await at_the_address(world)
    visit = order.visits[0]
    await required_by_source(world)
    assert keys(await driver.press(f"done:{visit.id}")) == ["tech.signature_required"]
    path = await pad_link(driver, visit.id)
    assert (await web.post(path, json=posted(drawn()), headers=SAME_SITE)).status_code == 200
    await driver.inbox()
    assert keys(await driver.press(f"done:{visit.id}")) == ["tech.completed"]


async def test_only_the_visits_own_technician_at_the_address_gets_a_link(world, web):
    order, _customer, driver, _group = await booked_and_accepted(world)
    visit = order.visits[0]
    assert keys(await driver.press(f"sig:{visit.id}")) == ["hint.stale_button"]  # accepted, not yet there
    stranger = world.chat("staff", "nobody")
    assert "sign" not in " ".join(keys(await stranger.press(f"sig:{visit.id}")))


async def test_an_order_source_sets_its_own_signature_policy_through_the_api(api):
    client = api.client
    shown = await client.get("/api/v1/order-sources/erp/signatures")
    assert shown.status_code == 200 and shown.json() == {"source": "erp", "policy": "off", "set_by": "default"}
    put = await client.put("/api/v1/order-sources/erp/signatures", json={"policy": "Delivery, installation"})
    assert put.status_code == 200 and put.json() == {"source": "erp", "policy": "delivery,installation", "set_by": "source"}
    bad = await client.put("/api/v1/order-sources/erp/signatures", json={"policy": "shipping"})
    assert bad.status_code == 422 and bad.json()["detail"] == "signatures_invalid"
    assert (await client.put("/api/v1/order-sources/erp/signatures", json={"policy": "all", "x": 1})).status_code == 422
    assert (await client.get("/api/v1/order-sources/bad%20name/signatures")).status_code == 422
    back = await client.put("/api/v1/order-sources/erp/signatures", json={"policy": None})
    assert back.json()["set_by"] == "default"

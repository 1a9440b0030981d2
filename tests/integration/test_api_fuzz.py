"""Schema fuzzing of the back-office API in process: no server error, and every answer as the OpenAPI document says."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
import schemathesis
from schemathesis.engine import Status, events
from schemathesis.python.asgi import shutdown_lifespans

from tests.support.db import in_thread, truncate
from tests.support.api import AUTH, booked_visit, make_app, running_api

# what must hold for every answer: no 5xx, the status documented for the operation, the documented content type,
# headers and body, and a request that breaks the schema is refused
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
]
# per operation and generation mode; with the fixed derandomized seed each run sends the same requests
MAX_EXAMPLES = 25
OPERATIONS = {
    "GET /healthz", "POST /api/v1/orders", "GET /api/v1/jobs/{job_id}", "POST /api/v1/technicians",
    "PATCH /api/v1/technicians/{technician_id}", "POST /api/v1/dispatchers", "POST /api/v1/dispatch-groups",
    "PUT /api/v1/checklist-templates", "PUT /api/v1/dispatch-rules", "GET /api/v1/visits/{visit_id}/candidates",
    "POST /api/v1/visits/{visit_id}/assign", "PUT /api/v1/sla-policies", "PUT /api/v1/alert-sinks", "GET /api/v1/alert-sinks",
    "POST /api/v1/visits/{visit_id}/reschedule", "POST /api/v1/jobs/{job_id}/address", "POST /api/v1/jobs/{job_id}/close",
    "POST /api/v1/jobs/{job_id}/reopen", "GET /api/v1/photos/{photo_id}",
    # order intake (issue 13 part 4)
    "PUT /api/v1/order-sources/{source}", "GET /api/v1/order-sources/{source}", "POST /api/v1/order-sources/{source}/orders",
    "POST /api/v1/order-sources/{source}/import", "GET /api/v1/order-sources/{source}/review",
    "GET /api/v1/order-sources/{source}/orders/{external_ref}", "POST /api/v1/order-sources/{source}/review/{external_ref}/confirm",
    "POST /api/v1/order-sources/{source}/review/{external_ref}/reject", "POST /api/v1/order-sources/{source}/orders/{external_ref}/cancel",
    # status callbacks (part 5) and completion codes (part 6)
    "PUT /api/v1/order-sources/{source}/callback", "GET /api/v1/order-sources/{source}/callback",
    "DELETE /api/v1/order-sources/{source}/callback", "GET /api/v1/callbacks", "POST /api/v1/callbacks/{callback_id}/resend",
    "GET /api/v1/order-sources/{source}/completion-codes", "PUT /api/v1/order-sources/{source}/completion-codes",
    "GET /api/v1/order-sources/{source}/signatures", "PUT /api/v1/order-sources/{source}/signatures",  # signatures (issue 12 part 6)
    # API tokens and customer links (issue 12)
    "GET /api/v1/tokens", "POST /api/v1/tokens", "DELETE /api/v1/tokens/{token_id}", "POST /api/v1/jobs/{job_id}/customer-link/revoke",
    # price lists, bills and payments (issue 14 part 6)
    "PUT /api/v1/price-lists", "GET /api/v1/price-lists", "POST /api/v1/visits/{visit_id}/bill", "POST /api/v1/visits/{visit_id}/payments",
    # price increases and discounts (issue 14 part 6)
    "GET /api/v1/visits/{visit_id}/price-changes", "POST /api/v1/visits/{visit_id}/price-changes/{change_id}/approve",
    "POST /api/v1/visits/{visit_id}/price-changes/{change_id}/decline", "POST /api/v1/visits/{visit_id}/discount",
    # maintenance plans (issue 14 part 8)
    "POST /api/v1/maintenance-plans", "GET /api/v1/maintenance-plans", "POST /api/v1/maintenance-plans/{plan_id}/generate",
    "POST /api/v1/maintenance-plans/{plan_id}/stop", "GET /api/v1/maintenance-plans/{plan_id}/report",
    # the gaps of issue 14: one plan, and a customer's answer to a price increase recorded by the back office
    "GET /api/v1/maintenance-plans/{plan_id}", "POST /api/v1/visits/{visit_id}/price-changes/{change_id}/customer",
    # devices and their QR codes (issue 14 parts 1-2)
    "POST /api/v1/devices", "GET /api/v1/devices", "GET /api/v1/devices/{device_id}", "POST /api/v1/devices/{device_id}/retire",
    "POST /api/v1/devices/import", "GET /api/v1/devices/{device_id}/qr", "GET /api/v1/device-sites/{site_id}/qr",
    "POST /api/v1/devices/{device_id}/qr/renew", "POST /api/v1/device-sites/{site_id}/qr/renew", "GET /api/v1/device-sheets",
    # parts, stock and fault trees (issue 14 parts 4-5)
    "POST /api/v1/parts", "GET /api/v1/parts", "GET /api/v1/parts/{part_id}", "GET /api/v1/parts/{part_id}/movements",
    "POST /api/v1/stock-movements", "GET /api/v1/stock", "POST /api/v1/part-requests/{request_id}/approve",
    "POST /api/v1/part-requests/{request_id}/decline", "GET /api/v1/fault-trees/{category}", "PUT /api/v1/fault-trees/{category}",
    "DELETE /api/v1/fault-trees/{category}",
    # review periods and settlement statements (issue 14 part 7)
    "GET /api/v1/settlements", "GET /api/v1/settlements/{statement_id}", "GET /api/v1/settlements/{statement_id}.csv",
    "POST /api/v1/settlements/close", "GET /api/v1/settlement-items", "POST /api/v1/settlement-items/{item_id}/release",
    "POST /api/v1/settlement-items/{item_id}/adjust", "GET /api/v1/technicians/{technician_id}/payout",
    "PUT /api/v1/technicians/{technician_id}/payout",
}
DEVICE = {"customer": {"name": "Zhang Wei", "phone": "13912345678"}, "product": {"category": "aircon", "name": "Split AC"},
          "site": {"address": "100 Nanjing East Road", "lat": 31.2304, "lon": 121.4737, "region": "Huangpu"}}
# answers that mean the request was turned away before the operation did anything (a 422 too, when it lists errors)
REFUSALS = {400, 401, 405, 413, 415}

pytestmark = pytest.mark.slow  # hundreds of generated requests per operation, on both databases


async def _seed(database_url: str, tmp_path: Path) -> None:
    """A booked visit, its job and an installer free for it, so that small ids lead somewhere real."""
    async with running_api(database_url, tmp_path) as api:
        await booked_visit(api)
        for answer in (
            await api.client.post("/api/v1/dispatchers", json={"name": "Dora"}),
            await api.client.put("/api/v1/alert-sinks", json={"name": "ops", "kind": "slack", "url": "https://hooks.example/x"}),
            await api.client.post("/api/v1/devices", json=DEVICE),  # device 1 at site 1 (issue 14)
            await api.client.post("/api/v1/parts", json={"code": "CAP-35", "name": "Capacitor", "price_minor": 1250}),  # part 1
            await api.client.post("/api/v1/stock-movements", json={"part_id": 1, "kind": "receive", "quantity": 5, "to": "warehouse"}),
        ):
            assert answer.status_code in (200, 201), answer.text


def _reached(status_code: int, content: bytes) -> bool:
    """Whether the operation itself answered: a result or a reason of its own, not auth or validation refusing."""
    if status_code == 422:
        return "errors" not in json.loads(content)
    return status_code not in REFUSALS


def _fuzz(app) -> tuple[dict[str, bool], list[str]]:
    """Run the examples, coverage and fuzzing phases over every operation: whether each was reached, and failures."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.update(headers=AUTH, workers=1)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none")
    schema.config.checks.update(included_check_names=CHECKS)
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    # the web chat and the Telegram webhooks have their own tests
    schema = schema.include(path_regex=r"^/(api/v1/|healthz$)")
    reached: dict[str, bool] = {}
    failures: list[str] = []
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            for interaction in recorder.interactions.values():
                answer = interaction.response
                if answer is not None:
                    reached[recorder.label] = reached.get(recorder.label, False) or _reached(answer.status_code, answer.content)
            for checks in recorder.checks.values():
                failures += [
                    f"{recorder.label} {check.name}: {check.failure_info.failure.title}\n"
                    f"{check.failure_info.failure.message}\n{check.failure_info.code_sample}"
                    for check in checks if check.status is Status.FAILURE
                ]
        elif isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: {event.info.message}\n{event.value!r}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return reached, failures


@pytest.fixture(params=["sqlite", "postgres"])
def fuzz_database(request, tmp_path, sqlite_template) -> str:
    if request.param == "sqlite":
        path = tmp_path / "fieldchat.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_database")
    in_thread(asyncio.run, truncate(url))
    return url


def test_fuzzing_every_operation_finds_no_server_error_and_no_answer_outside_the_schema(fuzz_database, tmp_path):
    in_thread(asyncio.run, _seed(fuzz_database, tmp_path))
    _container, app = make_app(fuzz_database, tmp_path)
    try:
        # schemathesis serves the app in its own event loop thread, lifespan included
        reached, failures = _fuzz(app)
    finally:
        shutdown_lifespans()
    assert not failures, "\n\n".join(failures)
    assert set(reached) == OPERATIONS
    assert [label for label, answered in reached.items() if not answered] == [], "never got past validation"

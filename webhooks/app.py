"""Builds the FastAPI application around a container; the lifespan starts and stops its background work."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from webhooks.service import Service
from webhooks import api, callbacks_api, completion_codes_api, telegram_routes, webchat
from webhooks.bodylimit import BodyLimit
from webhooks import whatsapp_routes
from webhooks import robot_actions
from webhooks import access_api, customer_page, signin
from webhooks import order_routes
from webhooks import devices_api
from webhooks import maintenance_api
from webhooks import parts_api
from webhooks import maintenance_pages
from webhooks import review_pages
from webhooks import fees_api
from webhooks import settlements_api
from webhooks import price_changes_api
from webhooks import reports_pages
from webhooks import jobs_pages
from webhooks import signature_pad, signatures_api
from webhooks import board

BODY_LIMIT = 1024 * 1024  # webhooks, API calls and chat messages: far above any real one
UPLOAD_OVERHEAD = 64 * 1024  # multipart framing and form fields around a photo
DOCS_ASSETS = "/docs-assets"  # Swagger UI's scripts and styles, served from the swagger-ui-bundle package


# one endpoint for every app, reading its app from the request: FastAPI remembers what it learnt about each endpoint
# process-wide (up to 4096 of them), and a closure over the app kept every app built, with its container and
# database engine, alive for as long (the tests build an app per test)
async def docs(request: Request) -> HTMLResponse:
    app = request.app
    return get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} – API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
    )


def serve_docs_offline(app: FastAPI) -> None:
    """``/docs`` with Swagger UI from this service itself: the page names no other host, so it works offline."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


def create_app(container: Service, *, run_background: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await container.start(background=run_background)
        try:
            yield
        finally:
            await container.stop()

    # docs_url and redoc_url off: their defaults load Swagger UI from a CDN, which an offline machine cannot reach
    app = FastAPI(title="fieldchat", version="0.1.0", lifespan=lifespan, description="Chat-first field service.",
                  docs_url=None, redoc_url=None)
    serve_docs_offline(app)
    app.state.container = container
    # one error shape for the whole service, {"detail": reason}, validation errors included
    app.add_exception_handler(RequestValidationError, api.validation_error)
    app.include_router(api.health)
    app.include_router(api.router)
    app.include_router(api.photos)
    app.include_router(callbacks_api.router)
    app.include_router(completion_codes_api.router)  # an order source's completion-code policy (issue 13 part 6)
    app.include_router(devices_api.router)  # devices, their QR codes and sheets (issue 14 parts 1-2)
    app.include_router(maintenance_api.router)  # preventive maintenance plans and their reports (issue 14 part 8)
    app.include_router(parts_api.router)  # parts, stock per location, part requests, fault trees (issue 14 parts 4-5)
    app.include_router(maintenance_pages.router)  # the plans and their inspection reports for signed-in staff
    app.include_router(review_pages.router)  # orders waiting for the merchant's review, on the board
    app.include_router(fees_api.router)  # price lists, bills and payments (issue 14 part 6)
    app.include_router(settlements_api.router)  # review periods, statements, payout rules (issue 14 part 7)
    app.include_router(price_changes_api.router)  # price increases and discounts (issue 14 part 6)
    app.include_router(order_routes.router)  # order sources: field maps, imports, polling, review, cancel
    app.include_router(telegram_routes.router)
    app.include_router(whatsapp_routes.router)
    app.include_router(robot_actions.router)  # group robot alerts' action links: signed, expiring, single-use
    app.include_router(access_api.router)  # integrations' scoped tokens; revoking a customer's link
    signin.install(app)  # sign-in (password, Telegram), who am I, sign-out; pages that need a session
    app.include_router(customer_page.router)  # the customer's own chat page, bound to their link
    app.include_router(reports_pages.router)  # KPIs, charts and the daily report as a page (issue 12 part 4)
    app.include_router(jobs_pages.router)  # the back office's job list, CSV export and job pages (issue 12 part 3)
    app.include_router(signature_pad.router)  # the customer signs on the technician's phone: single-use pad links (issue 12 part 6)
    app.include_router(signatures_api.router)  # an order source's signature policy (issue 12 part 6)
    app.include_router(board.router)  # the dispatch board, also as a Telegram Mini App (issue 12 part 2)
    if container.settings.web_console:
        # the demo console only: outside demo mode /chat does not exist at all
        app.state.console = webchat.ConsoleGuard(container.settings.redis_url)
        app.include_router(webchat.router)
        webchat.quiet_polling_in_access_log()
    photo_limit = container.web_uploads.limits.max_bytes + UPLOAD_OVERHEAD
    limits = {webchat.UPLOAD_PATH: photo_limit, customer_page.UPLOAD_PATH: photo_limit, whatsapp_routes.PATH: whatsapp_routes.BODY_LIMIT}
    app.add_middleware(BodyLimit, limit_for=lambda path: limits.get(path, BODY_LIMIT))
    return app

"""Builds the FastAPI application around a container; the lifespan starts and stops its background work."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from webhooks.service import Service
from webhooks import api, telegram_routes, webchat
from webhooks.bodylimit import BodyLimit

BODY_LIMIT = 1024 * 1024  # webhooks, API calls and chat messages: far above any real one
UPLOAD_OVERHEAD = 64 * 1024  # multipart framing and form fields around a photo


def create_app(container: Service, *, run_background: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await container.start(background=run_background)
        try:
            yield
        finally:
            await container.stop()

    app = FastAPI(title="fieldchat", version="0.1.0", lifespan=lifespan, description="Chat-first field service.")
    app.state.container = container
    # one error shape for the whole service, {"detail": reason}, validation errors included
    app.add_exception_handler(RequestValidationError, api.validation_error)
    app.include_router(api.health)
    app.include_router(api.router)
    app.include_router(telegram_routes.router)
    if container.settings.web_console:
        # the demo console only: outside demo mode /chat does not exist at all
        app.state.console = webchat.ConsoleGuard(container.settings.redis_url)
        app.include_router(webchat.router)
    photo_limit = container.web_uploads.limits.max_bytes + UPLOAD_OVERHEAD
    app.add_middleware(BodyLimit, limit_for=lambda path: photo_limit if path == webchat.UPLOAD_PATH else BODY_LIMIT)
    return app

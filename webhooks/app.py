"""Builds the FastAPI application around a container; the lifespan starts and stops its background work."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI

from fieldchat.container import Container
from webhooks import api, telegram_routes, webchat


def create_app(container: Container, *, run_background: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await container.start(background=run_background)
        try:
            yield
        finally:
            await container.stop()

    app = FastAPI(title="fieldchat", version="0.1.0", lifespan=lifespan, description="Chat-first field service.")
    app.state.container = container
    app.include_router(api.health)
    app.include_router(api.router)
    app.include_router(telegram_routes.router)
    app.include_router(webchat.router)
    return app

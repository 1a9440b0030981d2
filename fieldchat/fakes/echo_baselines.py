"""The two baselines `fieldchat bench inbound` measures fieldchat against: a durable echo (FastAPI + asyncpg) and a bare echo bot (FastAPI + aiogram)."""

from __future__ import annotations

import hmac
import json
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, HTTPException, Request

WEBHOOK_PATH = "/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# the least a durable bot must keep: what came in, where each chat stands, and what it will send
SCHEMA = """
CREATE TABLE IF NOT EXISTS echo_inbox (
    id bigserial PRIMARY KEY, update_id bigint NOT NULL UNIQUE, chat_id bigint NOT NULL,
    payload jsonb NOT NULL, received_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS echo_conversation (
    chat_id bigint PRIMARY KEY, state text NOT NULL, updates integer NOT NULL, updated_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS echo_outbox (
    id bigserial PRIMARY KEY, chat_id bigint NOT NULL, text text NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL
);
"""

STORE_UPDATE = "INSERT INTO echo_inbox (update_id, chat_id, payload, received_at) VALUES ($1, $2, $3::jsonb, now()) ON CONFLICT (update_id) DO NOTHING RETURNING id"
UPSERT_CONVERSATION = (
    "INSERT INTO echo_conversation (chat_id, state, updates, updated_at) VALUES ($1, 'idle', 1, now()) "
    "ON CONFLICT (chat_id) DO UPDATE SET updates = echo_conversation.updates + 1, updated_at = now()"
)
QUEUE_REPLY = "INSERT INTO echo_outbox (chat_id, text, status, created_at) VALUES ($1, $2, 'pending', now())"


def _check_secret(request: Request, secret: str) -> None:
    if not hmac.compare_digest(request.headers.get(SECRET_HEADER, "").encode(), secret.encode()):
        raise HTTPException(401, "wrong secret token")


def durable_echo(database_url: str, secret: str) -> FastAPI:
    """Per update, in one transaction: store it in the inbox, upsert the chat's conversation row and queue one
    reply in the outbox; acknowledge only after the commit. Nothing is sent: this is the floor of the database work."""
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        nonlocal pool
        pool = await asyncpg.create_pool(database_url, min_size=4, max_size=10)  # fieldchat's pool size
        await pool.execute(SCHEMA)
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> dict:
        _check_secret(request, secret)
        body = await request.body()
        update = json.loads(body)
        message = update["message"]
        chat_id = message["chat"]["id"]
        assert pool is not None
        async with pool.acquire() as connection, connection.transaction():
            stored = await connection.fetchval(STORE_UPDATE, update["update_id"], chat_id, body.decode())
            if stored is not None:  # a repeated update changes nothing
                await connection.execute(UPSERT_CONVERSATION, chat_id)
                await connection.execute(QUEUE_REPLY, chat_id, message.get("text") or "")
        return {"ok": True}

    return app


def bare_echo(token: str, api_url: str, secret: str) -> FastAPI:
    """aiogram's dispatcher answers each message with its own text through sendMessage, then the webhook acknowledges."""
    # aiogram is imported only by the process that runs this baseline: it takes seconds to import
    from aiogram import Bot, Dispatcher
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message, Update

    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "?")

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await bot.session.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    @app.post(WEBHOOK_PATH)
    async def webhook(request: Request) -> dict:
        _check_secret(request, secret)
        update = Update.model_validate(await request.json(), context={"bot": bot})
        await dispatcher.feed_update(bot, update)
        return {"ok": True}

    return app

"""Shop set-ups played once per test process: the SQLite database a set-up leaves is kept, and a later test asking for
the same set-up on a world in the same state gets a copy of it (with the set-up's chats, clock and rows) instead of
playing the whole dialogue again.

Each test still has a database of its own. A copy is used only when everything the set-up starts from is the same: its
arguments, the world's settings, the clock, and the database's contents (a fingerprint of its dump, taken before the
set-up ran). PostgreSQL worlds always play the set-up, and so does the first test of each process that asks for it, so
a set-up that breaks still fails its tests. Rows come back as fresh objects read from the copied database, and the
harness's update ids go on from where they stood after the set-up was played.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from storage.repository import Store
from tests.support import harness
from tests.support.harness import Chat, World


@dataclass(frozen=True)
class _ChatAt:
    """A Chat, without its world: what it is and how far it has read."""

    bot: str
    chat_id: str
    platform: str
    user_id: str
    chat_type: str
    language: str
    name: str
    seen: int


@dataclass(frozen=True)
class _Row:
    """A database row the set-up returned, read again from the copy."""

    cls: type
    key: Any


@dataclass
class _Played:
    image: str  # a copy of the database after the set-up
    clock: datetime
    ids: int  # the harness's next update id (and phone number suffix)
    value: Any  # what the set-up returned, chats and rows replaced by _ChatAt and _Row


_played: dict[tuple[Any, ...], _Played] = {}
_images = tempfile.TemporaryDirectory(prefix="fieldchat-setups-")  # removed when the test process ends


def _sqlite_path(world: World) -> str | None:
    url = make_url(world.container.settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return url.database


def _fingerprint(path: str) -> str:
    with sqlite3.connect(path, timeout=30) as connection:
        return hashlib.sha1("\n".join(connection.iterdump()).encode()).hexdigest()


def _settings(world: World) -> str:
    """The world's settings but where its database and media live (a directory of each test's own)."""
    return repr(sorted(world.container.settings.model_dump(exclude={"database_url", "media_dir"}).items()))


def _copy(source_path: str, target_path: str) -> None:
    # through SQLite's backup, not by copying files: the database is in WAL mode, and the world's connections stay open
    # and see the new contents (an in-memory copy cannot hold a WAL database's pages: its header asks for a WAL file)
    source, target = sqlite3.connect(source_path, timeout=30), sqlite3.connect(target_path, timeout=30)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _flatten(value: Any) -> Any:
    if isinstance(value, Chat):
        return _ChatAt(value.ref.bot, value.ref.chat_id, value.ref.platform, value.user_id, value.chat_type, value.language, value.name, value.seen)
    if isinstance(value, (tuple, list)):
        flat = [_flatten(v) for v in value]
        return type(value)(flat) if any(a is not b for a, b in zip(flat, value)) else value
    state = inspect(value, raiseerr=False)
    if state is not None and getattr(state, "identity", None) is not None:
        return _Row(type(value), state.identity[0] if len(state.identity) == 1 else state.identity)
    if is_dataclass(value) and not isinstance(value, type):
        changed = {f.name: flat for f in fields(value) if f.init and (flat := _flatten(getattr(value, f.name))) is not getattr(value, f.name)}
        return replace(value, **changed) if changed else value
    return value


async def _rebuild(value: Any, world: World, store: Store) -> Any:
    if isinstance(value, _ChatAt):
        chat = world.chat(value.bot, value.chat_id, user_id=value.user_id, chat_type=value.chat_type, language=value.language,
                          name=value.name, platform=value.platform)
        chat.seen = value.seen
        return chat
    if isinstance(value, _Row):
        return await store.get(value.cls, value.key)
    if isinstance(value, (tuple, list)):
        built = [await _rebuild(v, world, store) for v in value]
        return type(value)(built) if isinstance(value, list) or any(a is not b for a, b in zip(built, value)) else value
    if is_dataclass(value) and not isinstance(value, type):
        changed = {f.name: built for f in fields(value) if f.init and (built := await _rebuild(getattr(value, f.name), world, store)) is not getattr(value, f.name)}
        return replace(value, **changed) if changed else value
    return value


def _next_id() -> int:
    following = next(harness._ids)
    harness._ids = itertools.count(following)
    return following


async def played_once(world: World, name: str, arguments: tuple[Any, ...], setup: Callable[[], Awaitable[Any]]) -> Any:
    """``setup()``'s result on ``world``; the first time it is played, later times (same start) copied from then."""
    path = _sqlite_path(world)
    if path is None:
        return await setup()
    key = (name, repr(arguments), _settings(world), world.clock.now(), _fingerprint(path))
    played = _played.get(key)
    if played is None:
        value = await setup()
        image = f"{_images.name}/{len(_played)}.db"
        _copy(path, image)
        _played[key] = _Played(image, world.clock.now(), _next_id(), _flatten(value))
        return value
    _copy(played.image, path)
    world.clock.set(played.clock)
    # the ids the dialogue goes on with are then the ones it went on with where the set-up was played: the update ids in
    # the copy are below them, and ids only need to be unique within a database
    harness._ids = itertools.count(played.ids)
    async with world.container.sessions() as session:
        return await _rebuild(played.value, world, Store(session))

"""Database engine and session factory; SQLite gets WAL and write-locking transactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from storage.tables import map_domain


def normalize_url(url: str) -> str:
    """Accept plain ``sqlite:///`` and ``postgresql://`` URLs and pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    url = normalize_url(url)
    map_domain()
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # no rollback when a connection goes back to the pool: every transaction is ended by whoever began it (a
        # session or a connection rolls back what it did not commit), and on SQLite each rollback is a trip to the
        # driver's thread even when there is nothing to undo
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None)
        _configure_sqlite(engine)
        return engine
    # no ping on every checkout (a round trip per transaction): connections are recycled before servers or proxies drop
    # them, and one found dead anyway fails its transaction, empties the pool and is retried (services.bus.is_conflict)
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_recycle=1800)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers the write lock, which lets two writers
    # deadlock on upgrade; take the write lock at BEGIN instead (SQLAlchemy's documented recipe).
    sync_engine = engine.sync_engine

    # Any: the aiosqlite adapter's connection, whose pysqlite isolation_level the DBAPI protocol does not declare
    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

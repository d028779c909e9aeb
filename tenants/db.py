"""Engine, session factory and declarative Base: SQLite (aiosqlite) default, PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, MetaData, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./tessera.db"

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str = DEFAULT_DATABASE_URL, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned for the backend: WAL + busy timeout on SQLite, a pool on PostgreSQL."""
    # The hot path reads and writes through ``tenants.hotpath`` (its own asyncpg pool of at most
    # 16); this engine serves the ORM, admin and key-loading paths. Keep it small: every worker
    # process holds both, and PostgreSQL's max_connections (100 by default) is shared by all.
    # Overflow connections are closed when returned, and opening one costs a handshake.
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 8)
    kwargs.setdefault("hide_parameters", True)  # a logged traceback never shows bound values
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        apply_sqlite_pragmas(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_recycle", 1800)  # no pre-ping: it costs a round trip per checkout
    return create_async_engine(url, **kwargs)


def apply_sqlite_pragmas(engine: Engine) -> None:
    """WAL (readers never wait for the writer), full fsync on commit, a busy timeout."""

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)

"""Engine, session factory and declarative Base: SQLite (aiosqlite) default, PostgreSQL by URL."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, MetaData, event
from sqlalchemy import exc as sa_exc
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


def create_engine(url: str = DEFAULT_DATABASE_URL, *, connect_timeout: float = 5.0,
                  statement_timeout: float = 10.0, **kwargs: Any) -> AsyncEngine:
    """An async engine tuned for the backend: WAL + busy timeout on SQLite, a pool on
    PostgreSQL. ``connect_timeout`` bounds opening a connection (and waiting for one from the
    pool), ``statement_timeout`` a statement (SQLite: waiting for the write lock), so a
    database that is down or hangs costs a request a bounded time (``is_database_unavailable``
    then tells the edge to answer 503)."""
    # The hot path reads and writes through ``tenants.hotpath`` (its own asyncpg pool of at most
    # 16); this engine serves the ORM, admin and key-loading paths. Keep it small: every worker
    # process holds both, and PostgreSQL's max_connections (100 by default) is shared by all.
    # Overflow connections are closed when returned, and opening one costs a handshake.
    kwargs.setdefault("pool_size", 8)
    kwargs.setdefault("max_overflow", 8)
    kwargs.setdefault("pool_timeout", connect_timeout)
    extra_args = kwargs.pop("connect_args", {})
    kwargs.setdefault("hide_parameters", True)  # a logged traceback never shows bound values
    if is_sqlite(url):
        engine = create_async_engine(
            url, connect_args={"timeout": statement_timeout, **extra_args}, **kwargs)
        apply_sqlite_pragmas(engine.sync_engine)
        return engine
    kwargs.setdefault("pool_recycle", 1800)  # no pre-ping: it costs a round trip per checkout
    connect_args = {"timeout": connect_timeout, "command_timeout": statement_timeout,
                    **extra_args}
    return create_async_engine(url, connect_args=connect_args, **kwargs)


_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked", "unable to open",
                       "disk i/o error", "database or disk is full")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says the database is down, unreachable or too slow:
    a condition to answer 503 for, not a bug. A missing table or a constraint violation is
    not one of them."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if _unavailable(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _unavailable(exc: BaseException) -> bool:
    import asyncpg  # the PostgreSQL driver; imported here, at the rare error

    if isinstance(exc, sa_exc.OperationalError) and exc.orig is not None \
            and type(exc.orig).__module__.startswith("sqlite3"):
        return any(m in str(exc.orig).lower() for m in _SQLITE_UNAVAILABLE)
    if isinstance(exc, sqlite3.OperationalError):  # raised unwrapped by the hot path's reads
        return any(m in str(exc).lower() for m in _SQLITE_UNAVAILABLE)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError
                  | sa_exc.DisconnectionError):
        return True
    if isinstance(exc, asyncpg.PostgresConnectionError | asyncpg.InterfaceError
                  | asyncpg.TooManyConnectionsError | asyncpg.CannotConnectNowError
                  | asyncpg.QueryCanceledError | asyncpg.ConnectionDoesNotExistError):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


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

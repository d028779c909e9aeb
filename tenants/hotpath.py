"""The hot path's database access: one-row reads and whole units of work, each at the cost
the backend allows.

Measured (see README, Performance): through aiosqlite every statement costs several thread
hand-offs (cursor, execute, fetch, close, reset), about 1 ms of CPU for a one-row lookup that
SQLite itself answers in 10 µs. So on SQLite:
  * reads run on the event loop through a synchronous engine (pysqlite): an indexed lookup in
    a WAL database is a memory access (~20 µs), never blocked by the writer;
  * units of work run in ONE writer thread, one hand-off per unit (SQLite has one writer).
On PostgreSQL the asyncpg engine is already non-blocking: reads use AUTOCOMMIT (one round trip
instead of BEGIN/SELECT/ROLLBACK) and units of work run in a transaction via ``run_sync``.
The ORM and administrative paths keep using the async engine and sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.db import apply_sqlite_pragmas, autocommit_reads

T = TypeVar("T")


class HotPath:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._reads = autocommit_reads(engine)
        self._sync: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        if self._sqlite:
            url = engine.url.set(drivername="sqlite")
            self._sync = create_sync_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=4, max_overflow=4,
            )
            apply_sqlite_pragmas(self._sync)
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def read_one(self, stmt: Executable, params: Mapping[str, Any]) -> Row[Any] | None:
        if self._sync is not None:
            with self._sync.connect() as conn:
                return conn.execute(stmt, params).first()
        async with self._reads.connect() as conn:
            return (await conn.execute(stmt, params)).first()

    async def unit_of_work(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(connection)`` in one transaction; committed when it returns."""
        if self._sync is not None and self._writer is not None:
            return await asyncio.get_running_loop().run_in_executor(
                self._writer, self._run_sync, work
            )
        async with self._engine.begin() as conn:
            return await conn.run_sync(work)

    def _run_sync(self, work: Callable[[Connection], T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return work(conn)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._sync is not None:
            self._sync.dispose()



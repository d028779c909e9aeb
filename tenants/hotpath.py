"""The hot path's database access: one-row reads and whole units of work, each at the cost
the backend allows.

Measured (see README, Performance): through aiosqlite every statement costs several thread
hand-offs (cursor, execute, fetch, close, reset), about 1 ms of CPU for a one-row lookup that
SQLite itself answers in 10 µs. So on SQLite:
  * reads run on the event loop through a synchronous engine (pysqlite): an indexed lookup in
    a WAL database is a memory access (~20 µs), never blocked by the writer;
  * units of work run in ONE writer thread, one hand-off per unit (SQLite has one writer).
On PostgreSQL reads go straight to an asyncpg pool with the statement compiled once by
SQLAlchemy (no BEGIN/ROLLBACK, no greenlet hand-offs: ~60 µs of CPU instead of ~260 µs per
lookup), and units of work run in a transaction on the async engine via ``run_sync``.
The ORM and administrative paths keep using the async engine and sessions.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import namedtuple
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, TypeVar

import asyncpg
from sqlalchemy import JSON, Connection, Engine, Executable, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.db import apply_sqlite_pragmas

T = TypeVar("T")
_SQLITE_THREADS = 32  # threads with their own read connection (the server has one: the loop)


class BindPlan:
    """A compiled statement's positional arguments straight from the caller's parameters:
    what ``construct_params`` and the bind processors give, without building the dictionary
    of every bind first (~6 µs of a ~38 µs token-state read). Per position: the caller's
    value under the bind's key (or its compiled name), else the statement's own literal; a
    required bind with no value is refused as SQLAlchemy refuses it. What it does not mirror
    (callable values, escaped names, parameters collected by ``.params()``, expanding or
    post-compile binds) goes through ``construct_params`` (``mirrored`` is then False). Used
    on both backends' one-row reads."""

    __slots__ = ("_processors", "_query", "_steps")

    def __init__(self, query: Any, processors: bool = True) -> None:
        """``processors=False`` passes values as given (asyncpg converts them itself)."""
        self._query = query
        self._processors = {name: fn for name, fn in query._bind_processors.items()
                            if callable(fn)} if processors else {}
        self._steps = self._plan(query)

    def _plan(self, query: Any) -> tuple[tuple[str, str, bool, Any, Any], ...] | None:
        if (query.escaped_bind_names or getattr(query, "_collected_params", None)
                or getattr(query, "_render_postcompile", False) or query.positiontup is None):
            return None
        by_name = {name: bind for bind, name in query.bind_names.items()}
        steps = []
        for name in query.positiontup:
            bind = by_name.get(name)
            if bind is None or bind.callable is not None or bind.expanding:
                return None
            steps.append((bind.key, name, bool(bind.required), bind.value,
                          self._processors.get(name)))
        return tuple(steps)

    @property
    def mirrored(self) -> bool:
        return self._steps is not None

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        if self._steps is None:
            values = self._query.construct_params(params)  # with the statement's literals
            return [values[n] if (p := self._processors.get(n)) is None else p(values[n])
                    for n in self._query.positiontup or ()]
        args = []
        for key, name, required, literal, process in self._steps:
            if key in params:
                value = params[key]
            elif name in params:
                value = params[name]
            elif required:
                raise InvalidRequestError(f"A value is required for bind parameter {key!r}")
            else:
                value = literal
            args.append(value if process is None else process(value))
        return args


class _PooledSqlite:
    """A read through the engine's pool, for a thread past ``_SQLITE_THREADS``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def execute(self, sql: str, args: list[Any]) -> Any:
        fairy = self._engine.raw_connection()
        try:
            return _Fetched(fairy.driver_connection.execute(sql, args).fetchall())
        finally:
            fairy.close()


class _Fetched:
    def __init__(self, rows: list[Any]) -> None:
        self._rows = rows

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def close(self) -> None:
        pass


async def _session_unchanged(conn: asyncpg.Connection) -> None:
    """The pool's reset for the hot path's read connections, which only ever run one SELECT
    outside a transaction: no SET, LISTEN, advisory lock, prepared cursor or temporary table
    is left to undo, so the default reset (``RESET ALL; UNLISTEN *; ...``, a round trip on
    every release, ~7 % of an introspection's CPU on PostgreSQL) has nothing to do. asyncpg
    still rolls back a transaction left open and drops listeners before calling this."""


class HotPath:
    def __init__(self, engine: AsyncEngine, *, connect_timeout: float = 5.0,
                 statement_timeout: float = 10.0) -> None:
        self._engine = engine
        self._connect_timeout, self._statement_timeout = connect_timeout, statement_timeout
        self._sqlite = engine.dialect.name == "sqlite"
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {engine.dialect.name!r}")
        self._sync: Engine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._pg_pool: asyncpg.Pool | None = None
        self._pg_lock = asyncio.Lock()
        self._compiled: dict[int, tuple[str, tuple[str, ...], BindPlan, Any]] = {}
        self._sqlite_prepared: dict[int, tuple[Any, ...]] = {}
        self._sqlite_local = threading.local()
        self._sqlite_lock = threading.Lock()
        self._sqlite_held: list[Any] = []
        if self._sqlite:
            url = engine.url.set(drivername="sqlite")
            args = {"timeout": statement_timeout, "check_same_thread": False}
            self._sync = create_sync_engine(url, connect_args=args, pool_size=4, max_overflow=4,
                                            hide_parameters=True)
            apply_sqlite_pragmas(self._sync)
            # The writer's transactions take the write lock at BEGIN: a batch reads (the
            # audit head, directory epochs) and then writes, and must not read a snapshot
            # another process commits over before it writes.
            self._sync_writes = create_sync_engine(
                url, connect_args={**args, "isolation_level": None}, pool_size=1, max_overflow=0,
                hide_parameters=True)
            apply_sqlite_pragmas(self._sync_writes)
            event.listen(self._sync_writes, "begin",
                         lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writer")

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def read_one(self, stmt: Executable, params: Mapping[str, Any]) -> Any:
        """One row (attribute access by column name) or None."""
        if self._sync is not None:
            return self._sqlite_read_one(stmt, params)
        return await self._pg_read_one(stmt, params)

    def _sqlite_read_one(self, stmt: Executable, params: Mapping[str, Any]) -> Any:
        """The statement compiled once, run on this thread's own pysqlite connection with the
        type conversions SQLAlchemy would apply: ~4x less CPU than ``Connection.execute``
        (most of a one-row read was SQLAlchemy's execution context, not SQLite). Outside a
        transaction each SELECT reads the latest committed state (WAL), as before."""
        prepared = self._sqlite_prepared.get(id(stmt))
        if prepared is None:
            prepared = self._sqlite_prepare(stmt)
        if not prepared:  # a statement this path does not take (expanding IN, ...)
            assert self._sync is not None
            with self._sync.connect() as conn:
                return conn.execute(stmt, params).first()
        sql, plan, row_type, results, _ = prepared
        conn = self._sqlite_local.__dict__.get("conn") or self._sqlite_connection()
        cursor = conn.execute(sql, plan.args(params))
        try:
            row = cursor.fetchone()
        finally:
            cursor.close()  # resets the statement: no read snapshot outlives the read
        if row is None:
            return None
        if results:
            row = [v if (r := results[i]) is None else r(v) for i, v in enumerate(row)]
        return row_type(*row)

    def _sqlite_prepare(self, stmt: Executable) -> tuple[Any, ...]:
        assert self._sync is not None
        dialect = self._sync.dialect
        query = stmt.compile(dialect=dialect)
        binds = query.binds.values()
        columns = getattr(query, "_result_columns", None)
        if (any(b.expanding for b in binds) or not columns or query.positiontup is None
                or dialect.paramstyle != "qmark"):
            prepared: tuple[Any, ...] = ()
        else:
            keys = [c[0] for c in columns]
            results = [c[3]._cached_result_processor(dialect, None) for c in columns]
            prepared = (str(query), BindPlan(query),
                        namedtuple("Row", keys, rename=True),  # type: ignore[misc]
                        results if any(results) else None, stmt)  # stmt kept alive: id key
        self._sqlite_prepared[id(stmt)] = prepared
        return prepared

    def _sqlite_connection(self) -> Any:
        """This thread's own pysqlite connection (pragmas applied), detached from the read
        engine's pool: it lives as long as the thread (or until ``close``). Past
        ``_SQLITE_THREADS`` threads, reads go through the engine's pool as before."""
        assert self._sync is not None
        with self._sqlite_lock:
            if len(self._sqlite_held) >= _SQLITE_THREADS:
                return _PooledSqlite(self._sync)
            fairy = self._sync.raw_connection()
            conn = fairy.driver_connection
            fairy.detach()  # its pool slot is free again; closed by us or with the thread
            self._sqlite_held.append(conn)
        self._sqlite_local.conn = conn
        return conn

    async def _pg_read_one(self, stmt: Executable, params: Mapping[str, Any]) -> Any:
        compiled = self._compiled.get(id(stmt))
        if compiled is None:
            query = stmt.compile(dialect=self._engine.dialect)
            json_columns = tuple(
                c.key for c in stmt.selected_columns  # type: ignore[attr-defined]
                if isinstance(c.type, JSON)
            )
            compiled = (str(query), json_columns, BindPlan(query, processors=False),
                        stmt)  # stmt kept alive: id key
            self._compiled[id(stmt)] = compiled
        sql, json_columns, plan, _ = compiled
        args = plan.args(params)
        pool = self._pg_pool or await self._open_pg_pool()
        async with pool.acquire(timeout=self._connect_timeout) as conn:
            record = await conn.fetchrow(sql, *args, timeout=self._statement_timeout)
        if record is None:
            return None
        row = dict(record.items())
        for key in json_columns:
            if isinstance(row.get(key), str):
                row[key] = json.loads(row[key])
        return SimpleNamespace(**row)

    async def _open_pg_pool(self) -> asyncpg.Pool:
        async with self._pg_lock:
            if self._pg_pool is None:
                url = self._engine.url.set(drivername="postgresql")
                self._pg_pool = await asyncpg.create_pool(
                    url.render_as_string(hide_password=False), min_size=1, max_size=16,
                    statement_cache_size=64, timeout=self._connect_timeout,
                    command_timeout=self._statement_timeout, reset=_session_unchanged,
                )
            return self._pg_pool

    async def unit_of_work(self, work: Callable[[Connection], T]) -> T:
        """Run ``work(connection)`` in one transaction; committed when it returns."""
        if self._sync is not None and self._writer is not None:
            return await asyncio.get_running_loop().run_in_executor(
                self._writer, self._run_sync, work
            )
        async with self._engine.begin() as conn:
            return await conn.run_sync(work)

    def _run_sync(self, work: Callable[[Connection], T]) -> T:
        with self._sync_writes.begin() as conn:
            return work(conn)

    async def aclose(self, grace: float = 5.0) -> None:
        """Close; a pool whose server does not answer is terminated after ``grace`` s."""
        if self._pg_pool is not None:
            pool, self._pg_pool = self._pg_pool, None
            try:
                await asyncio.wait_for(pool.close(), grace)
            except TimeoutError:
                pool.terminate()
        self.close()

    def pool_stats(self) -> dict[str, int]:
        """Connections of the hot path's PostgreSQL pool (empty on SQLite)."""
        pool = self._pg_pool
        if pool is None:
            return {}
        size, idle = pool.get_size(), pool.get_idle_size()
        return {"size": size, "idle": idle, "in_use": size - idle}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        with self._sqlite_lock:
            held, self._sqlite_held = self._sqlite_held, []
            self._sqlite_local = threading.local()
        for conn in held:
            conn.close()
        if self._sync is not None:
            self._sync.dispose()
            self._sync_writes.dispose()



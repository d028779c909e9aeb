"""Group commit of the hot path's writes: one-time-value claims and audit events.

Every token request must record its DPoP proof ``jti`` (and client assertion ``jti``) and one
audit event before the response leaves. Doing that in its own transaction per request makes
the database commit the bottleneck, so requests hand their writes to the ``Journal``, which
gathers what arrives within a few milliseconds into one transaction and wakes every caller
only after that transaction committed: durability is never traded for speed.

A claim whose key was already used makes the entry's ``refused`` event be written instead of
its ``granted`` one, and the caller learns it (``False``) before issuing anything.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapters.clock import Clock
from tenants import audit
from tenants.hotpath import HotPath
from tenants.models import DirectoryEpoch, ReplayRecord

_EPOCHS = DirectoryEpoch.__table__
# built once (constructing a statement costs several times its execution; one per batch)
_CURRENT_EPOCHS = (select(_EPOCHS.c.tenant_id, _EPOCHS.c.epoch)
                   .where(_EPOCHS.c.tenant_id.in_(bindparam("b_tenants", expanding=True)))
                   .order_by(_EPOCHS.c.tenant_id))
_CURRENT_EPOCHS_SHARED = _CURRENT_EPOCHS.with_for_update(read=True)  # PostgreSQL


@dataclass(frozen=True)
class Claim:
    """A one-time value (hashed key) that must not have been used before ``expires_at``."""

    key: str
    expires_at: float
    kind: str = "dpop"  # what the value was: dpop | client_assertion | ...


class Stale:
    """The decision was made on a view of the directory that has changed since: nothing was
    recorded, and the caller must decide again on a fresh read."""

    def __repr__(self) -> str:
        return "STALE"


STALE = Stale()
Outcome = Claim | Stale | None


@dataclass
class _Entry:
    tenant_id: str
    claims: Sequence[Claim]
    granted: Sequence[audit.Event]
    refused: Sequence[audit.Event]
    future: asyncio.Future[Outcome]
    expect: tuple[str, int] | None = None


class Journal:
    def __init__(
        self,
        hot: HotPath,
        clock: Clock,
        *,
        max_batch: int = 256,
        max_delay: float = 0.002,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """``on_batch``: told each batch's size (the broker feeds a metric with it)."""
        self._hot = hot
        self._clock = clock
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._on_batch = on_batch
        self._queue: list[_Entry] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        insert = pg_insert if hot.dialect == "postgresql" else sqlite_insert
        table = ReplayRecord.__table__
        # executed with a list of rows: SQLAlchemy sends one multi-row INSERT (insertmanyvalues)
        self._claim_stmt = (
            insert(table).on_conflict_do_nothing().returning(table.c.tenant_id, table.c.key)
        )

    async def record(
        self,
        tenant_id: str,
        *,
        claims: Sequence[Claim] = (),
        granted: Sequence[audit.Event] = (),
        refused: Sequence[audit.Event] = (),
        expect: tuple[str, int] | None = None,
    ) -> Outcome:
        """Durably claim every key and write ``granted`` events, returning None; on a reused
        key write ``refused`` instead and return the claim that was already used. With
        ``expect=(tenant, epoch)``, record nothing and return ``STALE`` if the tenant's
        directory epoch has moved on (the decision was made on a cached view)."""
        self._ensure_running()
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append(_Entry(tenant_id, claims, audit.with_actor(granted),
                                  audit.with_actor(refused), future, expect))
        self._wakeup.set()
        return await future

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="journal")

    async def close(self) -> None:
        """Write everything already handed over, then stop the writer."""
        if self._task is not None and not self._task.done():
            self._closing = True
            self._wakeup.set()
            await self._task
        self._task, self._closing = None, False

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if len(self._queue) < self._max_batch and not self._closing:
                await asyncio.sleep(self._max_delay)  # gather what arrives meanwhile
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._flush(batch)
            if self._closing:
                return

    async def _flush(self, batch: list[_Entry]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        try:
            results = await self._write(batch)
        except Exception:
            # One bad entry must not fail its neighbours: retry each on its own.
            for entry in batch:
                try:
                    (result,) = await self._write([entry])
                except Exception as exc:  # surfaced to the waiting request
                    if not entry.future.done():
                        entry.future.set_exception(exc)
                    continue
                if not entry.future.done():
                    entry.future.set_result(result)
            return
        for entry, result in zip(batch, results, strict=True):
            if not entry.future.done():
                entry.future.set_result(result)

    async def _write(self, batch: list[_Entry]) -> list[Claim | None]:
        now = self._clock.now()
        return await self._hot.unit_of_work(lambda conn: self._write_batch(conn, batch, now))

    def _write_batch(self, conn: Connection, batch: list[_Entry], now: float) -> list[Outcome]:
        events: dict[str, list[audit.Event]] = defaultdict(list)
        inserted = self._claim_all(conn, batch)  # first: it takes the write lock
        stale = self._stale(conn, batch)
        owner: dict[tuple[str, str], int] = {}  # first entry of the batch to claim a key
        results: list[Outcome] = []
        for index, entry in enumerate(batch):
            if index in stale:
                for claim in entry.claims:  # take back what the blind insert claimed
                    if (entry.tenant_id, claim.key) in inserted:
                        owner.setdefault((entry.tenant_id, claim.key), index)
                self._release(conn, entry, owner, index)
                results.append(STALE)
                continue
            reused: Claim | None = None
            for claim in entry.claims:
                ident = (entry.tenant_id, claim.key)
                if ident not in inserted or owner.setdefault(ident, index) != index:
                    reused = claim
                    break
            if reused is not None:
                self._release(conn, entry, owner, index)
            results.append(reused)
            events[entry.tenant_id].extend(entry.refused if reused else entry.granted)
        for tenant_id in sorted(events):  # one lock order for every replica: no deadlocks
            audit.append(conn, tenant_id, events[tenant_id], now)
        return results

    def _stale(self, conn: Connection, batch: list[_Entry]) -> set[int]:
        """Entries whose expected directory epoch is not the current one (read under the
        transaction's lock: the write lock on SQLite, a share lock on PostgreSQL)."""
        tenants = {e.expect[0] for e in batch if e.expect is not None}
        if not tenants:
            return set()
        stmt = _CURRENT_EPOCHS_SHARED if self._hot.dialect == "postgresql" else _CURRENT_EPOCHS
        current = {row[0]: row[1] for row in conn.execute(stmt, {"b_tenants": sorted(tenants)})}
        return {
            i for i, e in enumerate(batch)
            if e.expect is not None and current.get(e.expect[0], 0) != e.expect[1]
        }

    def _claim_all(self, conn: Connection, batch: list[_Entry]) -> set[tuple[str, str]]:
        """One INSERT for every claim of the batch; returns the keys that were new."""
        rows = {
            (entry.tenant_id, claim.key): claim.expires_at
            for entry in batch
            for claim in entry.claims
        }
        if not rows:
            return set()
        params = [
            {"tenant_id": tenant_id, "key": key, "expires_at": expires_at}
            for (tenant_id, key), expires_at in rows.items()
        ]
        return {(row[0], row[1]) for row in conn.execute(self._claim_stmt, params)}

    def _release(
        self, conn: Connection, entry: _Entry, owner: dict[tuple[str, str], int], index: int
    ) -> None:
        """A refused entry leaves none of its claims behind."""
        mine = [c.key for c in entry.claims if owner.get((entry.tenant_id, c.key)) == index]
        for key in mine:
            del owner[(entry.tenant_id, key)]
        if mine:
            conn.execute(
                delete(ReplayRecord).where(
                    ReplayRecord.tenant_id == entry.tenant_id, ReplayRecord.key.in_(mine)
                )
            )

    async def purge_expired(self) -> int:
        """Drop one-time values whose window has passed (they can no longer be replayed)."""
        now = self._clock.now()

        def purge(conn: Connection) -> int:
            result = conn.execute(delete(ReplayRecord).where(ReplayRecord.expires_at < now))
            return int(result.rowcount or 0)

        return await self._hot.unit_of_work(purge)

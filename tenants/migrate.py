"""Schema migrations (Alembic): ``await upgrade(engine)``, serialised across replicas.

Two replicas that start together on an empty database must not both create the schema. On
PostgreSQL the migrating transaction first takes a transaction-scoped advisory lock
(``pg_advisory_xact_lock``): the second replica waits for the first to commit, then finds the
schema at head and does nothing. On SQLite the transaction starts with ``BEGIN IMMEDIATE``
(the write lock at once, not at the first write), which serialises it the same way; the
busy timeout bounds the wait.

``status(engine)`` tells where a database stands (empty, behind, at head, or ahead of this
code) without changing it, for ``tessera migrate --check`` and for the ASGI entry point,
which refuses to serve a database that is not at head.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"
# a fixed 64-bit key for pg_advisory_xact_lock: "tessera" in ASCII, as an integer
MIGRATION_LOCK_WAIT_MS = 300_000
ADVISORY_LOCK_KEY = int.from_bytes(b"tessera\0", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None  # None: no schema yet
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        """Whether this code knows the database's revision (else the database is newer)."""
        if self.current is None:
            return True
        script = ScriptDirectory.from_config(alembic_config())
        return any(r.revision == self.current for r in script.walk_revisions())

    def describe(self) -> str:
        if self.current is None:
            return f"the database has no schema yet (this version needs {self.head})"
        if self.at_head:
            return f"the schema is at {self.head}, as this version needs"
        if not self.known:
            return (f"the schema is at {self.current}, which this version does not know: the "
                    "database was migrated by a newer tessera")
        return f"the schema is at {self.current}; this version needs {self.head}"


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(engine: AsyncEngine) -> SchemaStatus:
    """Bring the schema to head (a no-op when it is there); returns the status before."""
    if engine.dialect.name == "sqlite":
        async with engine.connect() as conn:
            # another process may be migrating: wait for its write lock longer than a request
            # would (a migration on a loaded machine takes seconds)
            await conn.exec_driver_sql(f"PRAGMA busy_timeout = {MIGRATION_LOCK_WAIT_MS}")
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            before = SchemaStatus(await conn.run_sync(_current), head_revision())
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
            await conn.commit()
        return before
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                           {"key": ADVISORY_LOCK_KEY})
        before = SchemaStatus(await conn.run_sync(_current), head_revision())
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
    return before


async def status(engine: AsyncEngine) -> SchemaStatus:
    async with engine.connect() as conn:
        return SchemaStatus(await conn.run_sync(_current), head_revision())

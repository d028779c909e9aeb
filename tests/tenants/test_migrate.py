"""Migrations serialised across replicas: two processes migrating one empty database at once
(SQLite file; a PostgreSQL schema of its own) both succeed, and the schema is built once."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import text

from tenants.db import create_engine
from tenants.migrate import head_revision, status, upgrade
from tests.conftest import POSTGRES_URL, REPO_ROOT

MIGRATE = textwrap.dedent("""
    import asyncio, sys
    from tenants.db import create_engine
    from tenants.migrate import upgrade

    async def main(url, schema):
        kwargs = {"connect_args": {"server_settings": {"search_path": schema}}} if schema else {}
        engine = create_engine(url, **kwargs)
        before = await upgrade(engine)
        await engine.dispose()
        print(before.current or "empty")

    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
""")


def _race(url: str, *extra: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, url, *extra], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    return outs


async def test_status_and_idempotent_upgrade(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    try:
        before = await status(engine)
        assert before.current is None and not before.at_head and before.known
        assert "no schema yet" in before.describe()
        assert (await upgrade(engine)).current is None
        now = await status(engine)
        assert now.at_head and now.current == head_revision()
        assert (await upgrade(engine)).at_head  # a second run is a no-op
    finally:
        await engine.dispose()


async def test_a_newer_database_is_named(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    try:
        await upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        found = await status(engine)
        assert not found.known and "newer tessera" in found.describe()
    finally:
        await engine.dispose()


def test_two_processes_migrate_one_empty_sqlite_file(tmp_path):
    outs = _race(f"sqlite+aiosqlite:///{tmp_path}/race.db")
    # one built the schema from nothing; the other waited and found it at head
    assert sorted(outs) == sorted(["empty", head_revision()])


@pytest.mark.postgres
@pytest.mark.skipif(POSTGRES_URL is None, reason="needs TESSERA_TEST_POSTGRES_URL (PostgreSQL)")
async def test_two_processes_migrate_one_empty_postgres_schema():
    assert POSTGRES_URL is not None
    schema = f"race_{secrets.token_hex(4)}"
    engine = create_engine(POSTGRES_URL)
    async with engine.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        outs = _race(POSTGRES_URL, schema)
        assert sorted(outs) == sorted(["empty", head_revision()])
        async with engine.connect() as conn:
            tables = (await conn.execute(text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = :s"),
                {"s": schema})).scalar_one()
        assert tables > 10
    finally:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await engine.dispose()

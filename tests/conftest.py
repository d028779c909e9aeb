"""Shared fixtures: a real broker on SQLite (and PostgreSQL when TESSERA_TEST_POSTGRES_URL is
set), driven over ASGI by httpx; helpers to make tenants and clients.

The suite-wide 500 guard lives here too: every app built by ``create_app`` answers through
``broker.request_context``, which logs each 500 (and each uncaught exception) on the
``tessera.server_error`` logger; ``tests.server_errors`` collects those records (and reads
the log files of ``tessera serve`` subprocesses registered with ``watch_server_log``), and the
``pytest_runtest_*`` wrappers below fail the setup, call or teardown during which one was
written. A test that provokes a 500 on purpose takes the records it expects out of the
``server_error_records`` fixture.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from broker.app import create_app
from broker.config import Settings
from broker.runtime import Broker
from tenants.db import Base, create_engine
from tenants.migrate import upgrade
from tests import admin_ops as ops
from tests import cli_in_process, server_errors

REPO_ROOT = Path(__file__).resolve().parents[1]
BASE_URL = "http://tessera.test"
ADMIN_TOKEN = "test-admin-token-" + "x" * 20
POSTGRES_URL = os.environ.get("TESSERA_TEST_POSTGRES_URL")
BACKENDS = ["sqlite"] + (["postgres"] if POSTGRES_URL else [])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from server_errors.guard("setup"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from server_errors.guard("the test"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    return (yield from server_errors.guard("teardown"))


@pytest.fixture
def server_error_records() -> list[logging.LogRecord]:
    """The ``tessera.server_error`` records of this test so far: a test that causes a 500 on
    purpose asserts on them and clears the list, or the guard fails it."""
    return server_errors.RECORDS.records


class OffsetClock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def _reset_postgres(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.drop_all)
        await conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    await engine.dispose()


def database_url(backend: str, tmp_dir: Any) -> str:
    if backend == "postgres":
        assert POSTGRES_URL
        return POSTGRES_URL
    return f"sqlite+aiosqlite:///{tmp_dir}/tessera.db"


def make_settings(url: str, **overrides: Any) -> Settings:
    master = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return Settings(database_url=url, base_url=BASE_URL, master_key=master,
                    admin_token=ADMIN_TOKEN, demo=False, **overrides)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def broker(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Broker]:
    url = database_url(backend, tmp_path_factory.mktemp(backend))
    if backend == "postgres":
        await _reset_postgres(url)
    b = Broker.build(make_settings(url), clock=OffsetClock())
    await upgrade(b.engine)
    yield b
    await b.close()


@pytest.fixture(scope="session")
async def http(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(broker, background=False, migrate=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@dataclass(frozen=True)
class TestClient:
    __test__ = False  # a helper, not a test class

    tenant: str
    client_id: str
    secret: str | None
    issuer: str

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/token"

    @property
    def basic(self) -> tuple[str, str]:
        assert self.secret is not None
        return (self.client_id, self.secret)


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def new_tenant(broker: Broker, **settings: Any) -> str:
    name = unique("t")
    await ops.create_tenant(broker, name, settings=settings or None)
    return name


async def new_client(broker: Broker, tenant: str, **kwargs: Any) -> TestClient:
    kwargs.setdefault("name", "test client")
    kwargs.setdefault("scopes", ["read", "write"])
    kwargs.setdefault("audiences", [f"{broker.issuer(tenant)}/demo", "https://api.example"])
    body = await ops.create_client(broker, tenant, **kwargs)
    return TestClient(tenant, body["client_id"], body.get("client_secret"), broker.issuer(tenant))


@pytest.fixture
async def tenant(broker: Broker) -> str:
    return await new_tenant(broker)


@pytest.fixture
async def client(broker: Broker, tenant: str) -> TestClient:
    return await new_client(broker, tenant)


@pytest.fixture
async def clocked_broker(broker: Broker) -> AsyncIterator[tuple[Broker, OffsetClock]]:
    """A second replica: same database and master key, a clock of its own."""
    clock = OffsetClock()
    other = Broker.build(broker.settings, clock=clock)
    yield other, clock
    await other.close()


def cli_runner(tmp_path: Path) -> Any:
    """``run(*args, check=True, cwd=None, **env)``: the ``tessera`` command of THIS checkout
    (whatever copy is installed) on a SQLite file of its own, with no TESSERA_* variable of the
    calling environment; ``run.db`` and ``run.tmp`` name the files. It runs in this process
    (``tests.cli_in_process``: the same code without ~2 s of interpreter start-up per call);
    ``subprocess_=True`` runs ``python -m broker.cli`` instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
                "TESSERA_MASTER_KEY_FILE": str(tmp_path / "master.key"),
                "TESSERA_ADMIN_TOKEN_FILE": str(tmp_path / "admin.token"),
                "PYTHONPATH": str(REPO_ROOT)})

    def run(*args: str, check: bool = True, cwd: Path | None = None, subprocess_: bool = False,
            **extra_env: str) -> subprocess.CompletedProcess[str]:
        if subprocess_ or cli_in_process.wants_subprocess(args):
            proc = subprocess.run([sys.executable, "-m", "broker.cli", *args],
                                  env={**env, **extra_env}, cwd=cwd or tmp_path,
                                  capture_output=True, text=True, timeout=60)
        else:
            proc = cli_in_process.run(args, {**env, **extra_env}, cwd or tmp_path, timeout=60)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    run.env = env  # type: ignore[attr-defined]
    run.db = tmp_path / "cli.db"  # type: ignore[attr-defined]
    run.tmp = tmp_path  # type: ignore[attr-defined]
    return run


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    """``cli(*args, check=True, **env)`` on a database ``tessera init`` has initialised (the
    master key and admin token files beside it in ``cli.tmp``)."""
    run = cli_runner(tmp_path)
    run("init")
    return run


@pytest.fixture
def bare_cli(tmp_path: Path) -> Any:
    """Like ``cli`` on a directory where nothing is initialised yet."""
    return cli_runner(tmp_path)


@pytest.fixture
def empty_postgres() -> Any:
    """A database of its own (CREATE DATABASE needs the CREATEDB privilege; .ci/run grants
    it), dropped afterwards."""
    if POSTGRES_URL is None:
        pytest.skip("needs TESSERA_TEST_POSTGRES_URL (PostgreSQL)")
    import asyncio

    import asyncpg  # the driver tessera uses; a plain connection for CREATE DATABASE

    url = make_url(POSTGRES_URL)
    name = f"tessera_replicas_{secrets.token_hex(4)}"
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except asyncpg.InsufficientPrivilegeError:
        pytest.skip("the test role may not CREATE DATABASE (grant CREATEDB, as .ci/run does)")
    yield url.set(database=name).render_as_string(hide_password=False)
    asyncio.run(run(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def published_long_ago(broker: Any, tenant: str) -> None:
    """As if ``tenant``'s keys had been published a publication period ago (a rotation may
    then promote the next key without the 409 of a too-early rotation)."""
    from sqlalchemy import update

    from tenants.models import SigningKey

    async with broker.sessions() as session, session.begin():
        await session.execute(update(SigningKey).where(SigningKey.tenant_id == tenant).values(
            created_at=SigningKey.created_at - broker.keys.publication_period))

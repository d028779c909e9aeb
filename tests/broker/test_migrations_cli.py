"""Migrations an operator can run and trust (issue 11): ``tessera migrate [--check]``, ``serve
--no-migrate``, management commands that refuse a schema that is behind instead of migrating
it in passing, ``hypercorn broker.asgi:app`` that migrates (or refuses with
``TESSERA_AUTO_MIGRATE=false``) and serves correct issuers, and two replicas started together
on an empty PostgreSQL database."""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine as create_sync_engine

from tenants.migrate import alembic_config, head_revision
from tests.broker.test_deployment import clean_env, one_line_error
from tests.server_process import free_port

OLD = "0008"


def revision(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("select version_num from alembic_version").fetchone()[0])


def downgrade(db: Path, to: str) -> None:
    """The database as an older tessera left it."""
    engine = create_sync_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), to)
    engine.dispose()
    assert revision(db) == to


def wait_healthy(proc: subprocess.Popen[str], base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"server exited {proc.returncode}: {out}\n{err}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail("server not healthy in time")


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_schema_behind_is_refused_until_tessera_migrate(cli: Any) -> None:
    cli("tenant", "create", "acme")
    downgrade(cli.db, OLD)

    check = cli("migrate", "--check", check=False)
    assert check.returncode == 1
    assert f"the schema is at {OLD}; this version needs {head_revision()}" in check.stdout
    # management commands do not migrate in passing: they name the command that does
    line = one_line_error(cli("tenant", "list", check=False))
    assert "run `tessera migrate` first" in line and OLD in line
    assert revision(cli.db) == OLD
    served = cli("serve", "--no-migrate", "--port", str(free_port()), check=False)
    assert "run `tessera migrate` first" in one_line_error(served)
    assert revision(cli.db) == OLD

    migrated = cli("migrate")
    assert f"from {OLD} to {head_revision()}" in migrated.stdout
    assert revision(cli.db) == head_revision()
    assert cli("migrate", "--check").returncode == 0
    assert "acme" in cli("tenant", "list").stdout


def test_migrate_refuses_a_wrong_key_and_an_empty_database(cli: Any, tmp_path: Path) -> None:
    cli("tenant", "create", "acme")  # its signing keys are what a key proves itself on
    downgrade(cli.db, OLD)
    wrong = "A" * 43
    line = one_line_error(cli("migrate", check=False, TESSERA_MASTER_KEY=wrong))
    assert "master key" in line and wrong not in line
    assert revision(cli.db) == OLD  # nothing written
    empty = tmp_path / "empty"
    empty.mkdir()
    line = one_line_error(cli("migrate", check=False,
                              TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{empty}/t.db"))
    assert "no tessera database" in line
    assert not (empty / "t.db").exists()


def _asgi(cli: Any, port: int, **env: str) -> subprocess.Popen[str]:
    environ = clean_env(TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{cli.db}",
                        TESSERA_MASTER_KEY_FILE=str(cli.tmp / "master.key"),
                        TESSERA_ADMIN_TOKEN_FILE=str(cli.tmp / "admin.token"),
                        TESSERA_BASE_URL=f"http://127.0.0.1:{port}", **env)
    return subprocess.Popen([sys.executable, "-m", "hypercorn", "broker.asgi:app", "--bind",
                             f"127.0.0.1:{port}"], cwd=cli.tmp, env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_hypercorn_asgi_app_migrates_and_serves_its_issuers(cli: Any) -> None:
    cli("tenant", "create", "acme")
    body = json.loads(cli("client", "create", "--tenant", "acme", "--name", "svc", "--scope",
                          "read", "--json").stdout)
    downgrade(cli.db, OLD)

    port = free_port()
    refused = _asgi(cli, port, TESSERA_AUTO_MIGRATE="false")
    # (hypercorn's process manager exits 0 when its worker refuses: the line is what counts)
    _out, err = refused.communicate(timeout=60)
    assert "run `tessera migrate` first" in err and "Traceback" not in err
    assert revision(cli.db) == OLD

    proc = _asgi(cli, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(proc, base)
        assert revision(cli.db) == head_revision()
        disco = httpx.get(f"{base}/t/acme/.well-known/openid-configuration", timeout=5).json()
        assert disco["issuer"] == f"{base}/t/acme"
        r = httpx.post(f"{base}/t/acme/token", data={"grant_type": "client_credentials"},
                       auth=(body["client_id"], body["client_secret"]), timeout=5)
        assert r.status_code == 200, r.text
    finally:
        stop(proc)


# -- replicas on an empty PostgreSQL database -------------------------------------------------

@pytest.mark.postgres
def test_two_replicas_start_together_on_an_empty_postgres(empty_postgres: str,
                                                          tmp_path: Path) -> None:
    key = secrets.token_urlsafe(32)
    ports = [free_port(), free_port()]
    env = clean_env(TESSERA_DATABASE_URL=empty_postgres, TESSERA_MASTER_KEY=key,
                    TESSERA_ADMIN_TOKEN="replica-admin-" + secrets.token_urlsafe(16))
    procs = []
    for port in ports:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--port", str(port)], cwd=tmp_path,
            env={**env, "TESSERA_BASE_URL": "http://127.0.0.1:8000"}, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    try:
        for proc, port in zip(procs, ports, strict=True):
            wait_healthy(proc, f"http://127.0.0.1:{port}", timeout=90)
        for port in ports:  # both serve the one demo tenant the winner created
            r = httpx.get(f"http://127.0.0.1:{port}/t/demo/jwks", timeout=5)
            assert r.status_code == 200 and r.json()["keys"]
        admin = {"Authorization": f"Bearer {env['TESSERA_ADMIN_TOKEN']}"}
        tenants = httpx.get(f"http://127.0.0.1:{ports[0]}/admin/v1/tenants", headers=admin,
                            timeout=5).json()
        assert [t["id"] for t in tenants] == ["demo"]
    finally:
        for proc in procs:
            stop(proc)
    for proc in procs:
        _out, err = proc.communicate()
        assert "Traceback" not in err, err

"""A real ``tessera serve`` in a subprocess on its own SQLite file, master key and admin token,
for tests that drive it over HTTP (Schemathesis, the command line's remote transport, two
brokers that federate, MCP peers). Its log is watched by the suite's 500 guard
(``tests.server_errors``)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from broker.config import Settings
from broker.runtime import Broker
from tests.interop.conftest import _wait_healthy, free_port
from tests.server_errors import watch_server_log

REPO_ROOT = Path(__file__).resolve().parents[1]
SHUTDOWN_TIMEOUT = 15.0


@dataclass(frozen=True)
class Server:
    base_url: str
    admin_token: str
    log: Path
    workdir: Path
    database_url: str
    master_key: str

    @property
    def headers(self) -> dict[str, str]:
        """The operator's admin bearer."""
        return {"Authorization": f"Bearer {self.admin_token}"}

    def issuer_of(self, tenant: str) -> str:
        return f"{self.base_url}/t/{tenant}"

    def admin_post(self, path: str, body: dict[str, Any] | None = None,
                   method: str = "POST") -> Any:
        """An admin API call (``path`` under ``/admin/v1``) that must succeed; its answer."""
        r = httpx.request(method, f"{self.base_url}/admin/v1{path}", json=body or {},
                          headers=self.headers, timeout=10)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def broker(self) -> Broker:
        """A broker in this process on the server's database and master key (its key service:
        to sign as one of its tenants); the caller closes it."""
        return Broker.build(Settings(database_url=self.database_url, base_url=self.base_url,
                                     master_key=self.master_key, admin_token="x" * 32,
                                     demo=False))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any ``TESSERA_*`` of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **extra})
    return env


@contextmanager
def serving(workdir: Path, *, database: str = "t.db", token_prefix: str = "admin-",
            demo: bool = False, **env: str) -> Iterator[Server]:
    """``tessera serve`` on a free loopback port with ``workdir`` as its working directory
    (the SQLite file ``database``, its log ``server.log``; with ``demo``, the demo tenant and
    client file), a fresh master key and an admin token starting with ``token_prefix``; ``env``
    adds to or overrides its ``TESSERA_*`` settings (``TESSERA_ALLOW_HTTP_LOOPBACK``, ...).
    Stopped with SIGTERM when the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), token_prefix + secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    database_url = f"sqlite+aiosqlite:///{workdir}/{database}"
    master_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=clean_env(
                TESSERA_DATABASE_URL=database_url, TESSERA_ADMIN_TOKEN=token,
                TESSERA_MASTER_KEY=master_key, TESSERA_DEMO=str(demo).lower(), **env))
    watch_server_log(log)
    try:
        _wait_healthy(proc, base, log)
        yield Server(base, token, log, workdir, database_url, master_key)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``SHUTDOWN_TIMEOUT``."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

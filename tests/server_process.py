"""A real ``tessera serve`` in a subprocess on its own SQLite file, master key and admin token,
for tests that drive it over HTTP (Schemathesis, the command line's remote transport, two
brokers that federate, MCP peers). Its log is watched by the suite's 500 guard
(``tests.server_errors``)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.config import Settings
from broker.runtime import Broker
from tests.server_errors import watch_server_log

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any ``TESSERA_*`` of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **extra})
    return env


@contextmanager
def serving(workdir: Path, *, database: str = "t.db", token_prefix: str = "admin-",
            demo: bool = False, database_url: str | None = None,
            **env: str) -> Iterator[Server]:
    """``tessera serve`` on a free loopback port with ``workdir`` as its working directory
    (the SQLite file ``database`` unless ``database_url`` names another database, its log
    ``server.log``; with ``demo``, the demo tenant and client file), a fresh master key and an
    admin token starting with ``token_prefix``; ``env`` adds to or overrides its
    ``TESSERA_*`` settings (``TESSERA_ALLOW_HTTP_LOOPBACK``, ...).
    Stopped with SIGTERM when the block ends, and it must exit cleanly and soon (``stop``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, token = free_port(), token_prefix + secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    database_url = database_url or f"sqlite+aiosqlite:///{workdir}/{database}"
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
        wait_healthy(proc, base, log)
        yield Server(base, token, log, workdir, database_url, master_key)
    finally:
        stop(proc, log)


def wait_healthy(proc: subprocess.Popen[bytes], base_url: str, log_file: Path, *,
                 http: Callable[[], httpx.Client] = lambda: httpx.Client(timeout=2.0),
                 path: str = "/healthz", what: str = "tessera serve") -> None:
    """Until ``GET {path}`` answers 200 (asked with a client from ``http``: one that trusts
    the test CA for a server terminating TLS); the test fails (with the log) if the server
    (``what``) exits first or is not healthy within ``STARTUP_TIMEOUT``."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode} before becoming healthy:\n"
                        f"{log_file.read_text(errors='replace')}")
        try:
            with http() as client:
                response = client.get(f"{base_url}{path}")
            if response.status_code == 200:
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.TransportError as exc:
            last_error = repr(exc)
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    pytest.fail(f"{what} not healthy after {STARTUP_TIMEOUT}s ({last_error}):\n"
                f"{log_file.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[Any], log: Path | None = None) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``SHUTDOWN_TIMEOUT``. With the
    process's ``log`` (a ``tessera serve``: graceful shutdown is a feature), a kill, or an exit
    status other than 0 or SIGTERM's, fails the test with the log's tail."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            if log is not None:
                pytest.fail(f"tessera serve did not exit within {SHUTDOWN_TIMEOUT}s of "
                            f"SIGTERM:\n{log.read_text(errors='replace')[-4000:]}")
    if log is not None:
        assert proc.returncode in (0, -signal.SIGTERM), (
            f"tessera serve exited with {proc.returncode} after SIGTERM:\n"
            f"{log.read_text(errors='replace')[-4000:]}")

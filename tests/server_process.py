"""A real ``tessera serve`` in a subprocess on its own SQLite file and admin token, for tests
that drive it over HTTP (Schemathesis, the command line's remote transport)."""

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

from tests.interop.conftest import _wait_healthy, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Server:
    base_url: str
    admin_token: str
    log: Path
    workdir: Path


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any ``TESSERA_*`` of the caller's, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **extra})
    return env


@contextmanager
def serving(workdir: Path) -> Iterator[Server]:
    port, token = free_port(), "admin-" + secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    env = clean_env(
        TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{workdir}/t.db",
        TESSERA_ADMIN_TOKEN=token, TESSERA_DEMO="false",
        TESSERA_MASTER_KEY=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    log = workdir / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    try:
        _wait_healthy(proc, base, log)
        yield Server(base, token, log, workdir)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

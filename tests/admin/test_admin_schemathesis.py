"""Schemathesis over the admin API's OpenAPI document, against a real ``tessera serve``
(a subprocess on its own SQLite file) with the admin bearer: every phase (examples, coverage,
fuzzing, and stateful sequences that follow the document's links from each create to the
operations on what it made). It fails on any 5xx, an undocumented status or content type, a
body that breaks its declared schema, and schema-violating input that is accepted.

Bounded: ``MAX_EXAMPLES`` per operation and phase (about a minute on two cores)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.admin.routes import ROUTES
from tests.interop.conftest import _wait_healthy, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
MAX_EXAMPLES = 15
# not ensure_resource_availability: it takes any 404 after a create for "the created object
# is gone", and a revoke or a legacy app's disable names its target in the body (404 there is
# "no such agent", not "no such tenant")
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "negative_data_rejection")


@dataclass(frozen=True)
class Server:
    base_url: str
    admin_token: str
    log: Path
    workdir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("schemathesis")
    port, token = free_port(), "admin-" + secrets.token_urlsafe(24)
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update({
        "TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/t.db",
        "TESSERA_ADMIN_TOKEN": token, "TESSERA_DEMO": "false",
        "TESSERA_MASTER_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"})
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


def test_schemathesis_finds_nothing(server: Server) -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.admin.st_hooks",
           "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
         "--config-file", str(HERE / "schemathesis.toml"), "--no-color", "run",
         f"{server.base_url}/admin/v1/openapi.json",
         "--header", f"Authorization: Bearer {server.admin_token}",
         "--checks", ",".join(CHECKS), "--max-examples", str(MAX_EXAMPLES),
         # one worker: Schemathesis' threads meet CPython 3.11's ast.parse race (gh-106905,
         # a spurious "AST constructor recursion depth mismatch" inside Hypothesis)
         "--workers", "1",
         "--request-timeout", "20"],
        cwd=server.workdir, env=env, capture_output=True, text=True, timeout=600)
    report = proc.stdout[-20_000:] + proc.stderr[-5_000:]
    assert proc.returncode == 0, report
    assert f"Tested: {len(ROUTES)}" in report, report  # every operation (a seed is printed)
    assert "Stateful" in report and "❌" not in report, report
    assert "Traceback" not in server.log.read_text(errors="replace"), server.log.read_text()

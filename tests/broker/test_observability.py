"""What an operator watches (issue 11): structured logs (one JSON object a line, request id,
tenant, client, an access log, nothing twice, no secrets), Prometheus metrics after a token
request, liveness and readiness, a busy port, and a database that is down or hangs: 503 with
Retry-After in bounded time, logged once per incident, and a shutdown that keeps its limit."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.broker.test_deployment import clean_env
from tests.conftest import BASE_URL, new_client, new_tenant
from tests.db_proxy import DatabaseProxy
from tests.server_process import free_port

# -- in process: metrics and health ---------------------------------------------------------


async def test_metrics_after_a_token_request(http, broker) -> None:
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant)
    r = await http.post(client.token_url, data={"grant_type": "client_credentials"},
                        auth=client.basic)
    assert r.status_code == 200
    r = await http.post(client.token_url, data={"grant_type": "client_credentials",
                                                "scope": "nope"}, auth=client.basic)
    assert r.json()["error"] == "invalid_scope"
    await http.post(f"{BASE_URL}/t/no-such-tenant-{secrets.token_hex(3)}/token",
                    data={"grant_type": "client_credentials"})
    await broker.sample_key_ages()  # what the schedule does every tick
    scraped = await http.get("/metrics")  # the ASGI test client is a loopback address
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    text = scraped.text
    assert re.search(rf'tessera_tokens_issued_total{{grant_type="client_credentials",'
                     rf'tenant="{tenant}"}} 1\.0', text), text[:2000]
    assert re.search(r'tessera_oauth_refusals_total\{endpoint="/t/\{tenant\}/token",'
                     r'error="invalid_scope"\} [1-9]', text)
    assert re.search(rf'tessera_http_requests_total{{endpoint="/t/{{tenant}}/token",'
                     rf'status="200",tenant="{tenant}"}} 1\.0', text)
    assert 'tessera_http_request_duration_seconds_bucket{endpoint="/t/{tenant}/token"' in text
    # an unknown tenant is no label value: scanners cannot mint series
    assert "no-such-tenant" not in text
    assert "tessera_db_pool_connections" in text
    assert re.search(rf'tessera_signing_key_age_seconds{{tenant="{tenant}"}} \d', text)
    assert re.search(r"tessera_journal_batch_records_count [1-9]", text)


async def test_metrics_are_not_for_everyone(broker) -> None:
    from broker.app import create_app

    app = create_app(broker, background=False, migrate=False)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as remote:
        r = await remote.get("/metrics")
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
        assert "TESSERA_METRICS_TOKEN" in r.json()["error_description"]


async def test_health_and_readiness(http) -> None:
    r = await http.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await http.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"
    assert r.json()["checks"] == {"database": "ok", "key_service": "ok"}


# -- a real server: logs, a busy port, the demo secret ----------------------------------------


class Server:
    def __init__(self, proc: subprocess.Popen[str], base: str, log: Path) -> None:
        self.proc, self.base, self.log = proc, base, log

    def lines(self) -> list[str]:
        return [x for x in self.log.read_text(errors="replace").splitlines() if x.strip()]

    def stop(self, timeout: float = 30) -> float:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"did not stop within {timeout}s")
        return time.monotonic() - started


def start(workdir: Path, **env: str) -> Server:
    port = free_port()
    log = workdir / f"server-{port}.log"
    environ = clean_env(**{"TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/t.db",
                           **env})
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "broker.cli", "serve", "--port",
                                 str(port)], cwd=workdir, env=environ, stdout=out, stderr=out,
                                text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return Server(proc, base, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"serve not healthy:\n{log.read_text()}")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Server]:
    server = start(tmp_path)
    yield server
    if server.proc.poll() is None:
        server.stop()


def demo_secret(workdir: Path) -> str:
    return str(json.loads((workdir / "tessera-demo-client.json").read_text())["client_secret"])


def test_logs_are_json_lines_with_request_context(served: Server, tmp_path: Path) -> None:
    secret = demo_secret(tmp_path)
    r = httpx.post(f"{served.base}/t/demo/token", data={"grant_type": "client_credentials"},
                   auth=("demo-agent", secret), headers={"X-Request-Id": "trace-abc-123"})
    assert r.status_code == 200
    httpx.post(f"{served.base}/t/demo/token", data={"grant_type": "client_credentials"},
               auth=("demo-agent", "wrong-secret"))
    time.sleep(0.3)
    served.stop()
    records = []
    for line in served.lines():
        if not line.startswith("{"):
            continue  # the banner (stdout) is for a person, not a log
        records.append(json.loads(line))  # every log line is one JSON object
    access = [r for r in records if r.get("logger") == "tessera.access"]
    ok = next(r for r in access if r.get("request_id") == "trace-abc-123")
    assert ok["status"] == 200 and ok["path"] == "/t/{tenant}/token"
    assert ok["tenant"] == "demo" and ok["client_id"] == "demo-agent"
    assert ok["level"] == "INFO" and "time" in ok and ok["duration_ms"] >= 0
    refused = [r for r in access if r.get("status") == 401]
    assert refused and refused[0]["tenant"] == "demo"
    text = served.log.read_text()
    assert "wrong-secret" not in text
    # the secret is in the banner of the start that created it, never in a log record
    assert not any(secret in json.dumps(r) for r in records)
    # nothing is written twice
    assert len(records) == len({json.dumps(r, sort_keys=True) for r in records})


def test_log_level_from_the_toml_file(tmp_path: Path) -> None:
    config = tmp_path / "tessera.toml"
    config.write_text('log_level = "warning"\n')
    server = start(tmp_path, TESSERA_CONFIG=str(config))
    try:
        httpx.get(f"{server.base}/t/demo/jwks", timeout=5)
    finally:
        server.stop()
    assert not [x for x in server.lines() if '"tessera.access"' in x]


def test_demo_secret_is_printed_once(tmp_path: Path) -> None:
    first = start(tmp_path)
    first.stop()
    secret = demo_secret(tmp_path)
    assert secret in first.log.read_text()
    second = start(tmp_path)
    second.stop()
    assert secret not in second.log.read_text()
    assert "tessera-demo-client.json" in second.log.read_text()


def test_a_busy_port_is_one_line(tmp_path: Path, cli: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = cli("serve", "--port", str(port), check=False)
    assert proc.returncode == 6
    assert proc.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "listening" not in proc.stdout and "Traceback" not in proc.stderr


# -- the database down or hanging (PostgreSQL behind a proxy) --------------------------------

@pytest.fixture
def pg_through_proxy(empty_postgres: str) -> Iterator[tuple[str, DatabaseProxy]]:
    url = make_url(empty_postgres)
    proxy = DatabaseProxy((url.host or "127.0.0.1", url.port or 5432))
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), \
        proxy
    proxy.close()


@pytest.mark.postgres
def test_database_down_or_hanging(pg_through_proxy: tuple[str, DatabaseProxy],
                                  tmp_path: Path) -> None:
    url, proxy = pg_through_proxy
    env = {"TESSERA_DATABASE_URL": url, "TESSERA_MASTER_KEY": secrets.token_urlsafe(32),
           "TESSERA_ADMIN_TOKEN": "a" * 32, "TESSERA_DEMO_FILE": str(tmp_path / "demo.json"),
           "TESSERA_DB_CONNECT_TIMEOUT": "1", "TESSERA_DB_STATEMENT_TIMEOUT": "2"}
    server = start(tmp_path, **env)
    secret = str(json.loads((tmp_path / "demo.json").read_text())["client_secret"])
    token = {"grant_type": "client_credentials"}

    def ask() -> tuple[httpx.Response, float]:
        started = time.monotonic()
        r = httpx.post(f"{server.base}/t/demo/token", data=token, timeout=30,
                       auth=("demo-agent", secret))
        return r, time.monotonic() - started

    try:
        assert ask()[0].status_code == 200
        proxy.set_mode("refuse")  # the database is down
        for _ in range(5):
            r, took = ask()
            assert r.status_code == 503, r.text
            assert r.json()["error"] == "temporarily_unavailable"
            assert r.headers["retry-after"] == "5" and took < 5
            assert r.json()["request_id"] == r.headers["x-request-id"]
        assert httpx.get(f"{server.base}/readyz", timeout=10).status_code == 503
        assert httpx.get(f"{server.base}/healthz", timeout=5).status_code == 200
        proxy.set_mode("forward")
        deadline = time.monotonic() + 15
        while ask()[0].status_code != 200:
            assert time.monotonic() < deadline, "never recovered"
            time.sleep(0.5)
        proxy.set_mode("blackhole")  # the database hangs
        r, took = ask()
        assert r.status_code == 503 and took < 8, (r.status_code, took)
        waited = server.stop(timeout=30)  # shutdown keeps its limit even now
        assert waited < 15, waited
    finally:
        proxy.set_mode("forward")
        if server.proc.poll() is None:
            server.proc.kill()
    text = server.log.read_text()
    assert text.count("database unavailable") <= 2  # once per incident (two incidents)
    assert "database available again" in text
    assert "Traceback" not in text
    assert os.environ.get("TESSERA_MASTER_KEY") != env["TESSERA_MASTER_KEY"]

"""``tessera demo-resource`` (the resource-server toolkit in a process of its own) against a real
``tessera serve``: the resource registered with ``tessera resource add`` over ``--url``, a token
of the demo client for it, the verified claims; 401 with ``resource_metadata`` without a token
and for a token of another audience; a revocation at tessera refused within the feed's poll
interval."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from broker.cli.main import main
from tests.interop.conftest import REPO_ROOT, TesseraServer
from tests.server_process import clean_env, free_port, stop, wait_healthy

pytestmark = pytest.mark.interop

POLL = 1.0  # the demo resource's revocation feed poll interval: its staleness bound


@dataclass(frozen=True)
class DemoResource:
    url: str  # the resource identifier: http://127.0.0.1:PORT/whoami
    base: str
    log: str


@pytest.fixture(scope="module")
def demo_resource(tessera_server: TesseraServer) -> Iterator[DemoResource]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    resource = f"{base}/whoami"
    # as the README says: register it at the demo tenant, then run it
    added = subprocess.run(
        [sys.executable, "-m", "broker.cli", "--url", tessera_server.base_url, "resource",
         "add", "--tenant", "demo", f"demo-rs-{port}", "--identifier", resource,
         "--scope", "demo.read=read the demo resource", "--default-scope", "demo.read",
         "--client", tessera_server.demo_client_id, "--json"],
        cwd=REPO_ROOT, env=clean_env(TESSERA_ADMIN_TOKEN=tessera_server.admin_token),
        capture_output=True, text=True, timeout=60, check=False)
    assert added.returncode == 0, added.stderr
    log_file = tessera_server.workdir / f"demo-resource-{port}.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker.cli", "demo-resource", "--issuer",
             tessera_server.issuer, "--port", str(port), "--poll", str(POLL)],
            cwd=REPO_ROOT, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
    try:
        wait_healthy(proc, base, log_file, path="/.well-known/oauth-protected-resource/whoami",
                     what="tessera demo-resource")
        yield DemoResource(resource, base, str(log_file))
    finally:
        stop(proc)
        text = log_file.read_text(errors="replace")
        assert "Traceback" not in text, text


def token(server: TesseraServer, resource: str | None) -> str:
    data = {"grant_type": "client_credentials"}
    if resource is not None:
        data["resource"] = resource
    r = httpx.post(server.token_endpoint(), data=data, timeout=10,
                   auth=(server.demo_client_id, server.demo_client_secret))
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def whoami(d: DemoResource, access_token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return httpx.get(d.url, headers=headers, timeout=10)


def test_token_for_the_registered_resource_gets_the_verified_claims(
        tessera_server: TesseraServer, demo_resource: DemoResource) -> None:
    r = whoami(demo_resource, token(tessera_server, demo_resource.url))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["client_id"] == tessera_server.demo_client_id
    assert body["scopes"] == ["demo.read"]  # the resource's default scope
    assert body["claims"]["aud"] in (demo_resource.url, [demo_resource.url])
    assert body["claims"]["iss"] == tessera_server.issuer


def test_no_token_is_401_naming_the_metadata(tessera_server: TesseraServer,
                                             demo_resource: DemoResource) -> None:
    r = whoami(demo_resource, None)
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    metadata = f"{demo_resource.base}/.well-known/oauth-protected-resource/whoami"
    assert f'resource_metadata="{metadata}"' in challenge
    assert 'error="' not in challenge.split(", DPoP")[0]  # RFC 6750 §3.1: no error without one
    doc = httpx.get(metadata, timeout=10).json()
    assert doc["resource"] == demo_resource.url
    assert doc["authorization_servers"] == [tessera_server.issuer]


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Bearer a.b.c", "Basic eDp5",
                                    "Bearer " + "x" * 10_000, "DPoP abc"])
def test_bad_credentials_are_refused_not_errors(demo_resource: DemoResource,
                                                header: str) -> None:
    r = httpx.get(demo_resource.url, headers={"Authorization": header}, timeout=10)
    assert r.status_code in (400, 401), r.text


def test_token_of_another_audience_is_401(tessera_server: TesseraServer,
                                          demo_resource: DemoResource) -> None:
    other = token(tessera_server, None)  # the demo client's default audience: tessera's demo
    assert httpx.get(tessera_server.demo_resource(), timeout=10, headers={
        "Authorization": f"Bearer {other}"}).status_code == 200
    r = whoami(demo_resource, other)
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "not meant for this resource" in r.json()["error_description"]


def test_revocation_at_tessera_is_refused_within_the_poll_interval(
        tessera_server: TesseraServer, demo_resource: DemoResource) -> None:
    access = token(tessera_server, demo_resource.url)
    assert whoami(demo_resource, access).status_code == 200  # the feed is fresh now
    r = httpx.post(tessera_server.revocation_endpoint(), data={"token": access}, timeout=10,
                   auth=(tessera_server.demo_client_id, tessera_server.demo_client_secret))
    assert r.status_code == 200
    revoked_at = time.monotonic()
    while True:
        r = whoami(demo_resource, access)
        if r.status_code == 401:
            break
        assert r.status_code == 200, r.text
        assert time.monotonic() - revoked_at < POLL + 1.0, "revocation not seen in time"
        time.sleep(0.1)
    assert "revoked" in r.json()["error_description"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.parametrize("argv", [
    ["demo-resource", "--issuer", "not-a-url"],
    ["demo-resource", "--issuer", "http://127.0.0.1:8000/t/demo", "--resource", "ftp://x/y"],
    ["demo-resource", "--issuer", "http://127.0.0.1:8000/t/demo", "--poll", "0"],
])
def test_cli_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")

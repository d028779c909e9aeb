"""Oversized and malformed requests: refused early with a JSON error, writing no one-time
values; and a real Hypercorn server that refuses a 64 KiB header and keeps serving."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from broker.runtime import Broker
from tenants.models import AuditEvent, ReplayRecord, RevokedToken
from tests.conftest import ADMIN_TOKEN, REPO_ROOT, new_client, new_tenant
from tests.conftest import TestClient as Registered
from tests.dpop_client import make_proof, new_key
from tests.server_errors import watch_server_log

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
CC = b"grant_type=client_credentials"
KIB = 1024


@dataclass(frozen=True)
class Site:
    tenant: str
    client: Registered  # client_secret_basic
    post: Registered  # client_secret_post
    token: str  # a valid bearer token of `client` for the demo resource

    @property
    def demo(self) -> str:
        return f"{self.client.issuer}/demo/whoami"


@pytest.fixture(scope="module")
async def site(broker: Broker, http: httpx.AsyncClient) -> Site:
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant)
    post = await new_client(broker, tenant, auth_method="client_secret_post")
    r = await http.post(client.token_url, data={"grant_type": "client_credentials"},
                        auth=client.basic)
    assert r.status_code == 200, r.text
    return Site(tenant, client, post, r.json()["access_token"])


async def _counts(broker: Broker, tenant: str) -> dict[str, int]:
    out = {}
    async with broker.sessions() as session:
        for model in (ReplayRecord, RevokedToken):
            out[model.__tablename__] = (await session.execute(
                select(func.count()).select_from(model).where(model.tenant_id == tenant)
            )).scalar_one()
        out["audit_seq"] = (await session.execute(
            select(func.coalesce(func.max(AuditEvent.seq), 0))
            .where(AuditEvent.tenant_id == tenant)
        )).scalar_one()
    return out


async def _assert_wrote_no_grant(broker: Broker, tenant: str, before: dict[str, int]) -> None:
    after = await _counts(broker, tenant)
    assert after["replay_records"] == before["replay_records"], "a refusal claimed a jti"
    assert after["revoked_tokens"] == before["revoked_tokens"]
    async with broker.sessions() as session:
        outcomes = (await session.execute(
            select(AuditEvent.outcome).where(AuditEvent.tenant_id == tenant,
                                             AuditEvent.seq > before["audit_seq"])
        )).scalars().all()
    assert set(outcomes) <= {"refused"}


def _json_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == error, body
    return dict(body)


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# -- the token endpoint ---------------------------------------------------------------------
# Every request below carries a valid DPoP proof and (unless the defect is the credential)
# valid client credentials, so only the defect can explain a refusal, and a proof jti that
# was recorded anyway would show up in replay_records.

def _padded(total: int) -> bytes:
    """A valid client_credentials body of exactly ``total`` bytes."""
    head = CC + b"&pad="
    return head + b"a" * (total - len(head))


def _chunks() -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        yield CC + b"&pad="
        for _ in range(80):  # 80 x 1 KiB, no Content-Length
            yield b"a" * KIB
    return gen()


# name -> (body, extra headers, status, error); body None: form CC; headers None: no Basic
TOKEN_CASES: dict[str, Any] = {
    "body-over-64KiB": (_padded(64 * KIB + 1), FORM, 400, "invalid_request"),
    "body-1MiB": (_padded(1024 * KIB), FORM, 400, "invalid_request"),
    "body-over-64KiB-chunked": ("chunks", FORM, 400, "invalid_request"),
    "content-type-json": (json.dumps({"grant_type": "client_credentials"}).encode(),
                          {"Content-Type": "application/json"}, 400, "invalid_request"),
    "content-type-missing": (CC, {}, 400, "invalid_request"),
    "content-type-text": (CC, {"Content-Type": "text/plain"}, 400, "invalid_request"),
    "raw-non-utf8-byte": (CC + b"&pad=\xff", FORM, 400, "invalid_request"),
    "raw-latin1-byte": (CC + b"&pad=caf\xe9", FORM, 400, "invalid_request"),
    "repeated-grant_type": (CC + b"&" + CC, FORM, 400, "invalid_request"),
    "repeated-grant_type-differing": (CC + b"&grant_type=password", FORM, 400,
                                      "invalid_request"),
    "repeated-scope": (CC + b"&scope=read&scope=write", FORM, 400, "invalid_request"),
    "pct-invalid-hex": (CC + b"&pad=%ZZ", FORM, 400, "invalid_request"),
    "pct-truncated": (CC + b"&pad=%4", FORM, 400, "invalid_request"),
    "pct-non-utf8": (CC + b"&pad=%FF", FORM, 400, "invalid_request"),
}


def _params(cases: dict[str, Any]) -> list[Any]:
    out = []
    for name, case in cases.items():
        if hasattr(case, "marks"):  # already a pytest.param
            out.append(pytest.param(*case.values, marks=case.marks, id=name))
        else:
            out.append(pytest.param(*case, id=name))
    return out


@pytest.mark.parametrize(("body", "headers", "status", "error"), _params(TOKEN_CASES))
async def test_token_endpoint_refuses_malformed_body(http, broker, site, body, headers, status,
                                                     error):
    c = site.client
    proof = make_proof(new_key(), htm="POST", htu=c.token_url)
    content = _chunks() if body == "chunks" else body
    before = await _counts(broker, site.tenant)
    r = await http.post(c.token_url, content=content,
                        headers={**headers, "DPoP": proof,
                                 "Authorization": _basic(*c.basic)})
    _json_error(r, status, error)
    assert r.headers["cache-control"] == "no-store"
    assert "access_token" not in r.text
    await _assert_wrote_no_grant(broker, site.tenant, before)


async def test_body_limit_is_exactly_max_body_bytes(http, broker, site):
    c = site.client
    limit = broker.settings.max_body_bytes
    assert limit == 64 * KIB
    r = await http.post(c.token_url, content=_padded(limit), headers=FORM, auth=c.basic)
    assert r.status_code == 200, r.text
    before = await _counts(broker, site.tenant)
    r = await http.post(c.token_url, content=_padded(limit + 1), headers=FORM, auth=c.basic)
    _json_error(r, 400, "invalid_request")
    assert "too large" in r.json()["error_description"]
    await _assert_wrote_no_grant(broker, site.tenant, before)


def _post_secret(site: Site, secret: str | None = None) -> bytes:
    secret = site.post.secret if secret is None else secret
    return CC + f"&client_id={site.post.client_id}&client_secret={secret}".encode()


# name -> (Authorization header or None, body, status, error, Basic challenge expected)
AUTH_CASES: dict[str, Any] = {
    "basic-not-base64": ("Basic !!!not*base64!!!", CC, 401, "invalid_client", True),
    "basic-bad-padding": ("Basic YWJj=", CC, 401, "invalid_client", True),
    "basic-no-colon": ("Basic " + base64.b64encode(b"just-an-id").decode(), CC, 401,
                       "invalid_client", True),
    "basic-not-utf8": ("Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(), CC, 401,
                       "invalid_client", True),
    "basic-empty": ("Basic ", CC, 401, "invalid_client", True),
    "basic-and-post": ("site-basic", "site-post", 400, "invalid_request", False),
    "repeated-client_secret": (None, "repeated-secret", 400, "invalid_request", False),
}


@pytest.mark.parametrize(("auth", "body", "status", "error", "basic_challenge"),
                         _params(AUTH_CASES))
async def test_token_endpoint_refuses_malformed_client_auth(http, broker, site, auth, body,
                                                            status, error, basic_challenge):
    c = site.client
    if auth == "site-basic":
        auth = _basic(*c.basic)
    if body == "site-post":
        body = _post_secret(site)
    elif body == "repeated-secret":
        body = _post_secret(site) + f"&client_secret={site.post.secret}".encode()
    headers = {**FORM, "DPoP": make_proof(new_key(), htm="POST", htu=c.token_url)}
    if auth is not None:
        headers["Authorization"] = auth
    before = await _counts(broker, site.tenant)
    r = await http.post(c.token_url, content=body, headers=headers)
    _json_error(r, status, error)
    assert r.headers["cache-control"] == "no-store"
    if basic_challenge:
        assert r.headers["www-authenticate"].startswith("Basic")
    await _assert_wrote_no_grant(broker, site.tenant, before)


def _big_proof(htu: str) -> str:
    proof = make_proof(new_key(), htm="POST", htu=htu, extra_claims={"pad": "p" * 8 * KIB})
    assert len(proof) > 8 * KIB
    return proof


@pytest.mark.parametrize("kind", ["signed-proof-over-8KiB", "garbage-over-8KiB",
                                  "two-proofs", "not-a-jws"])
async def test_token_endpoint_refuses_bad_dpop_header(http, broker, site, kind):
    c = site.client
    good = make_proof(new_key(), htm="POST", htu=c.token_url)
    headers: list[tuple[str, str]] = {
        "signed-proof-over-8KiB": [("DPoP", _big_proof(c.token_url))],
        "garbage-over-8KiB": [("DPoP", "e" * (8 * KIB + 1))],
        "two-proofs": [("DPoP", good),
                       ("DPoP", make_proof(new_key(), htm="POST", htu=c.token_url))],
        "not-a-jws": [("DPoP", "not.a.proof!")],
    }[kind]
    before = await _counts(broker, site.tenant)
    r = await http.post(c.token_url, content=CC, auth=c.basic, headers=[*FORM.items(), *headers])
    body = _json_error(r, 400, "invalid_dpop_proof")
    if "over-8KiB" in kind:
        assert "too large" in body["error_description"]
    assert r.headers["cache-control"] == "no-store"
    await _assert_wrote_no_grant(broker, site.tenant, before)


async def test_get_on_token_endpoint_is_405(http, site):
    r = await http.get(site.client.token_url, auth=site.client.basic)
    _json_error(r, 405, "invalid_request")
    assert r.headers["allow"] == "POST"
    for path in ("/introspect", "/revoke"):
        r = await http.put(f"{site.client.issuer}{path}", content=b"token=x", headers=FORM)
        _json_error(r, 405, "invalid_request")


async def test_405_at_token_endpoint_is_no_store(http, site):
    r = await http.get(site.client.token_url)
    assert r.status_code == 405
    assert r.headers.get("cache-control") == "no-store"


# -- introspection, revocation, admin: the same body rules --------------------------------------

@pytest.mark.parametrize("path", ["/introspect", "/revoke"])
@pytest.mark.parametrize("defect", ["over-64KiB", "json", "non-utf8", "repeated-token"])
async def test_introspect_and_revoke_refuse_malformed_bodies(http, broker, site, path, defect):
    token = site.token.encode()
    body, headers = {
        "over-64KiB": (b"token=" + token + b"&pad=" + b"a" * 64 * KIB, FORM),
        "json": (json.dumps({"token": site.token}).encode(),
                 {"Content-Type": "application/json"}),
        "non-utf8": (b"token=" + token + b"\xff", FORM),
        "repeated-token": (b"token=" + token + b"&token=" + token, FORM),
    }[defect]
    before = await _counts(broker, site.tenant)
    r = await http.post(f"{site.client.issuer}{path}", content=body, headers=headers,
                        auth=site.client.basic)
    _json_error(r, 400, "invalid_request")
    assert r.headers["cache-control"] == "no-store"
    await _assert_wrote_no_grant(broker, site.tenant, before)
    # the token is untouched
    r = await http.post(f"{site.client.issuer}/introspect", data={"token": site.token},
                        auth=site.client.basic)
    assert r.json()["active"] is True


@pytest.mark.parametrize(("body", "ctype"), [
    (b'{"name": "' + b"n" * 64 * KIB + b'"}', "application/json"),
    (b"{not json", "application/json"),
    (b'["a", "list"]', "application/json"),
])
async def test_admin_refuses_malformed_json(http, broker, body, ctype):
    before = len((await http.get("/admin/v1/tenants",
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).json())
    r = await http.post("/admin/v1/tenants", content=body,
                        headers={"Content-Type": ctype, "Authorization": f"Bearer {ADMIN_TOKEN}"})
    _json_error(r, 400, "invalid_request")
    after = (await http.get("/admin/v1/tenants",
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})).json()
    assert len(after) == before


# -- the demo resource --------------------------------------------------------------------------

def _demo_cases(site: Site) -> dict[str, tuple[str, list[tuple[str, str]]]]:
    bearer = ("Authorization", f"Bearer {site.token}")
    return {
        "authorization-over-8KiB": (site.demo, [("Authorization", "Bearer " + "a" * 8 * KIB)]),
        "query-and-header": (f"{site.demo}?access_token={site.token}", [bearer]),
        "query-only": (f"{site.demo}?access_token={site.token}", []),
        "two-authorization-headers": (site.demo, [bearer, bearer]),
        "unknown-scheme": (site.demo, [("Authorization", f"Token {site.token}")]),
        "token-with-space": (site.demo, [("Authorization", f"Bearer {site.token} extra")]),
    }


@pytest.mark.parametrize("name", ["authorization-over-8KiB", "query-and-header", "query-only",
                                  "two-authorization-headers", "unknown-scheme",
                                  "token-with-space"])
async def test_demo_resource_refuses_malformed_credentials(http, broker, site, name):
    url, headers = _demo_cases(site)[name]
    before = await _counts(broker, site.tenant)
    r = await http.get(url, headers=headers)
    body = _json_error(r, 400, "invalid_request")
    assert "sub" not in body
    assert r.headers["cache-control"] == "no-store"
    await _assert_wrote_no_grant(broker, site.tenant, before)
    # the same token, presented properly, works
    r = await http.get(site.demo, headers={"Authorization": f"Bearer {site.token}"})
    assert r.status_code == 200 and r.json()["client_id"] == site.client.client_id


async def test_unknown_tenant_is_json_404(http):
    for method, path in (("POST", "/t/no-such-tenant/token"), ("GET", "/t/no-such-tenant/jwks"),
                         ("GET", "/t/no-such-tenant/demo/whoami"), ("GET", "/nowhere")):
        r = await http.request(method, path, content=CC, headers=FORM)
        _json_error(r, 404, "not_found")


# -- a real server: Hypercorn behind `tessera serve` ---------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    base: str
    port: int
    cwd: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    env.update(TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/x.db",
               TESSERA_ADMIN_TOKEN=ADMIN_TOKEN,
               PYTHONPATH=str(REPO_ROOT))  # this checkout, whatever copy is installed
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(  # `tessera serve` (the console script runs broker.cli:main)
        [sys.executable, "-m", "broker.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    watch_server_log(tmp_path / "server.log")
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield Server(proc, base, port, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()


def _raw_request(port: int, request: bytes) -> bytes:
    """Send ``request`` over a plain socket and read the response until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        try:
            s.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has refused; its answer is still there
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    return data


def test_real_server_refuses_64KiB_header_and_keeps_serving(server):
    big = b"h" * 64 * KIB
    raw = _raw_request(server.port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                    b"X-Big: " + big + b"\r\n\r\n")
    status_line = raw.split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] in (b"431", b"400"), raw[:200]

    r = httpx.get(f"{server.base}/healthz", headers={"X-Big": big.decode()}, timeout=5)
    assert r.status_code in (431, 400)
    r = httpx.get(f"{server.base}/healthz",
                  headers={"Authorization": "Bearer " + big.decode()}, timeout=5)
    assert r.status_code in (431, 400)

    # still serving: health, the demo client's token, and the body limit over real HTTP
    assert httpx.get(f"{server.base}/healthz", timeout=5).json() == {"status": "ok"}
    demo = json.loads((server.cwd / "tessera-demo-client.json").read_text())
    token_url = f"{server.base}/t/{demo['tenant']}/token"
    auth = (demo["client_id"], demo["client_secret"])
    r = httpx.post(token_url, content=_padded(64 * KIB + 1), headers=FORM, auth=auth, timeout=5)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    r = httpx.post(token_url, content=CC, headers=FORM, auth=auth, timeout=5)
    assert r.status_code == 200 and r.json()["token_type"] == "Bearer", r.text

    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0

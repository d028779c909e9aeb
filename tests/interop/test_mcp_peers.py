"""MCP peers against two real ``tessera serve`` processes, and against two tenants of one
(issue 13).

    broker A (the enterprise IdP)       tenant ``login-*``: users log in at an upstream IdP
                                         (oidc-provider); the agent's client gets an ID token
                                         and a refresh token, then ID-JAGs by token exchange
    broker B (the MCP authorization     tenant ``mcp-*``: the resource server (the MCP server's
    server)                              URL), the MCP client's client, a trust link accepting
                                         A's tenant; it redeems ID-JAGs (jwt-bearer)
    the MCP server                       the Python SDK's MCPServer behind the toolkit's
                                         TokenVerifier (tests/peers/mcp/server.py)
    the MCP client                       the Python SDK's IdentityAssertionOAuthProvider

login -> ID token (or refresh token) -> ID-JAG at A -> access token at B -> tool call; a
revocation at B makes the MCP server answer 401 within its feed's poll interval.
The Python SDK's flow and the TypeScript SDK's CrossAppAccessProvider run on both
deployments (fixture ``peers``): ``deployment`` (the two processes above; each names the
other's tenant as a registry partner) and ``two_tenants`` (the IdP's tenant and the MCP
server's tenant side by side in broker A, trusting each other as peer tenants).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.interop.conftest import REPO_ROOT, LoginTenant, TesseraServer
from tests.peers.oidc_idp import sign_in_at_broker
from tests.server_process import clean_env, free_port, serving, stop, wait_healthy

pytestmark = pytest.mark.interop
mcp = pytest.importorskip("mcp", reason="the python mcp SDK (test extra) is not installed")

SCOPE = "mcp:tools"
POLL = 1.0  # the MCP server's revocation feed poll interval (its staleness bound)
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_JAG = "urn:ietf:params:oauth:token-type:id-jag"


@pytest.fixture(scope="module")
def broker_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TesseraServer]:
    """A second ``tessera serve``: its own database, master key and admin token."""
    with serving(tmp_path_factory.mktemp("tessera-b"), database="b.db", token_prefix="b-admin-",
                 demo=True, TESSERA_ALLOW_HTTP_LOOPBACK="1") as b:
        yield TesseraServer(b.base_url, b.issuer_of("demo"), b.admin_token, "", "", b.workdir,
                            b.log)


@dataclass(frozen=True)
class Deployment:
    idp: LoginTenant  # at broker A
    agent: dict[str, Any]  # the agent's client at A
    redirect_uri: str
    b: TesseraServer
    mcp_tenant: str
    mcp_client: dict[str, Any]  # the MCP client's client at B
    mcp_url: str

    @property
    def mcp_issuer(self) -> str:
        return self.b.issuer_of(self.mcp_tenant)


def _ok(response: httpx.Response, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


@contextmanager
def running_mcp_server(server: TesseraServer, tenant: str) -> Iterator[str]:
    """The MCP server (tests/peers/mcp/server.py) with ``tenant`` of ``server`` as its
    authorization server; its URL (the resource) while the block runs."""
    port = free_port()
    env = clean_env(MCP_ISSUER=server.issuer_of(tenant), MCP_PORT=str(port),
                    MCP_POLL=str(POLL))
    log_file = server.workdir / f"mcp-{tenant}.log"
    with log_file.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tests.peers.mcp.server"], cwd=REPO_ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_healthy(proc, f"http://127.0.0.1:{port}", log_file,
                     path="/.well-known/oauth-protected-resource/mcp", what="the MCP server")
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def mcp_server(broker_b: TesseraServer) -> Iterator[tuple[str, str]]:
    tenant = f"mcp-{secrets.token_hex(4)}"
    _ok(broker_b.admin("POST", "/tenants", {"name": tenant, "settings": {}}))
    with running_mcp_server(broker_b, tenant) as url:
        yield tenant, url


def mcp_authorization_server(b: TesseraServer, tenant: str, url: str,
                             accept: dict[str, Any]) -> dict[str, Any]:
    """At the MCP server's tenant: the MCP client's client, the resource server (tessera
    resource add) and the trust link ``accept`` (a partner, or a tenant of the same broker)
    accepting ID-JAGs from the IdP's tenant. The MCP client's client."""
    client = _ok(b.admin("POST", f"/tenants/{tenant}/clients", {
        "name": "mcp client", "token_endpoint_auth_method": "client_secret_basic",
        "scopes": [], "audiences": []}))
    _ok(b.admin("POST", f"/tenants/{tenant}/resource-servers", {
        "name": "prices", "identifier": url, "scopes": {SCOPE: "call the price tools"},
        "allowed_clients": [client["client_id"]], "access_token_lifetime": 300}))
    _ok(b.admin("POST", f"/tenants/{tenant}/trust-links", {
        **accept, "directions": ["accept"], "scope_ceiling": [SCOPE]}))
    return client


def enterprise_idp(login_tenant: LoginTenant, mcp_issuer: str, client: dict[str, Any],
                   url: str, send: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """At the IdP's tenant: the agent (logs users in), the trust link ``send`` to the MCP
    server's tenant and the managed connection (the rule). The agent and its redirect URI."""
    a = login_tenant.server
    redirect_uri = f"http://127.0.0.1:{free_port()}/cb"
    agent = login_tenant.create_client(redirect_uri, scopes=["openid", "email", "profile"],
                                       token_endpoint_auth_method="client_secret_basic")
    _ok(a.admin("POST", f"/tenants/{login_tenant.name}/trust-links", {
        **send, "directions": ["send"]}))
    _ok(a.admin("PUT", f"/tenants/{login_tenant.name}/managed-connections", {
        "client_id": agent["client_id"], "audience": mcp_issuer, "rules": {SCOPE: "grant"},
        "remote_client_id": client["client_id"], "resources": [url]}), 200)
    return agent, redirect_uri


def _partner(server: TesseraServer, issuer: str, name: str) -> dict[str, str]:
    """``issuer`` as an active partner of ``server``'s registry: the trust link's peer."""
    partner = _ok(server.admin("POST", "/partners", {
        "issuer": issuer, "display_name": name, "jwks_uri": f"{issuer}/jwks"}))
    _ok(server.admin("POST", f"/partners/{partner['id']}/activate"), 200)
    return {"partner": partner["id"]}


@pytest.fixture(scope="module")
def deployment(login_tenant: LoginTenant, broker_b: TesseraServer,
               mcp_server: tuple[str, str]) -> Deployment:
    """Two broker processes: the IdP's tenant at A, the MCP server's tenant at B; each names
    the other's tenant as a registry partner."""
    tenant, url = mcp_server
    b_issuer = broker_b.issuer_of(tenant)
    client = mcp_authorization_server(broker_b, tenant, url, _partner(
        broker_b, login_tenant.issuer, "Corp IdP"))
    agent, redirect_uri = enterprise_idp(login_tenant, b_issuer, client, url, _partner(
        login_tenant.server, b_issuer, "MCP AS"))
    return Deployment(login_tenant, agent, redirect_uri, broker_b, tenant, client, url)


@pytest.fixture(scope="module")
def two_tenants(login_tenant: LoginTenant) -> Iterator[Deployment]:
    """One broker process: the IdP's tenant (A) and the MCP server's tenant (B) side by side,
    trusting each other as peer tenants (``tessera trust add --peer-tenant``)."""
    server = login_tenant.server
    tenant = f"mcp-{secrets.token_hex(4)}"
    _ok(server.admin("POST", "/tenants", {"name": tenant, "settings": {}}))
    with running_mcp_server(server, tenant) as url:
        client = mcp_authorization_server(server, tenant, url, {"tenant": login_tenant.name})
        agent, redirect_uri = enterprise_idp(login_tenant, server.issuer_of(tenant), client,
                                             url, {"tenant": tenant})
        yield Deployment(login_tenant, agent, redirect_uri, server, tenant, client, url)


@pytest.fixture(params=["two brokers", "two tenants"])
def peers(request: pytest.FixtureRequest) -> Deployment:
    """The MCP peers' deployment: across two broker processes, or two tenants of one."""
    name = "deployment" if request.param == "two brokers" else "two_tenants"
    value: Deployment = request.getfixturevalue(name)
    return value


async def login(d: Deployment) -> dict[str, Any]:
    """The user signs in at A (through its upstream IdP): ID token and refresh token."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = {"response_type": "code", "client_id": d.agent["client_id"],
             "redirect_uri": d.redirect_uri, "scope": "openid email profile",
             "state": secrets.token_urlsafe(8), "code_challenge": challenge,
             "code_challenge_method": "S256"}
    callback = await sign_in_at_broker(f"{d.idp.issuer}/authorize?{urlencode(query)}",
                                       d.idp.idp, "alice")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{d.idp.issuer}/token", auth=(
            d.agent["client_id"], d.agent["client_secret"]), data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": d.redirect_uri,
            "code_verifier": verifier})
    return _ok(r, 200)


def id_jag_source(d: Deployment, subject_token: str, subject_type: str, seen: list[dict]):
    """The SDK's ``assertion_provider``: the token exchange at A (leg 1 of the ID-JAG flow)."""
    async def fetch(audience: str, resource: str) -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.post(f"{d.idp.issuer}/token", auth=(
                d.agent["client_id"], d.agent["client_secret"]), data={
                "grant_type": TOKEN_EXCHANGE, "requested_token_type": ID_JAG,
                "audience": audience, "resource": resource, "scope": SCOPE,
                "subject_token": subject_token, "subject_token_type": subject_type})
        body = _ok(r, 200)
        seen.append(body)
        return body["access_token"]
    return fetch


class Memory:
    def __init__(self) -> None:
        self.tokens: Any = None
        self.client: Any = None

    async def get_tokens(self) -> Any:
        return self.tokens

    async def set_tokens(self, tokens: Any) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> Any:
        return self.client

    async def set_client_info(self, info: Any) -> None:
        self.client = info


async def call_whoami(d: Deployment, fetch: Any, storage: Memory) -> dict[str, Any]:
    import httpx2
    from mcp import Client
    from mcp.client.auth.extensions.identity_assertion import IdentityAssertionOAuthProvider
    from mcp.client.streamable_http import streamable_http_client

    provider = IdentityAssertionOAuthProvider(
        server_url=d.mcp_url, storage=storage, client_id=d.mcp_client["client_id"],
        client_secret=d.mcp_client["client_secret"], issuer=d.mcp_issuer,
        assertion_provider=fetch, scope=SCOPE)  # client_secret_post: the SDK's default
    async with httpx2.AsyncClient(auth=provider, timeout=20) as http, \
            Client(streamable_http_client(d.mcp_url, http_client=http)) as client:
        result = await client.call_tool("whoami", {})
    assert not result.is_error, result
    structured = result.structured_content
    if structured is None:
        structured = json.loads(result.content[0].text)
    return structured.get("result", structured)


async def mcp_request(url: str, token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(url, headers={
        "Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json"}, json={
        "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "0"}}})


async def test_python_sdk_id_token_to_tool_call_and_revocation(peers: Deployment):
    d = peers
    tokens = await login(d)
    seen: list[dict] = []
    storage = Memory()
    who = await call_whoami(d, id_jag_source(
        d, tokens["id_token"], "urn:ietf:params:oauth:token-type:id_token", seen), storage)
    assert who["client_id"] == d.mcp_client["client_id"] and who["scopes"] == [SCOPE]
    assert who["sub_id"]["iss"] == d.idp.issuer  # the user stays A's
    assert seen and seen[0]["issued_token_type"] == ID_JAG
    # the access token the SDK holds: revoked at B -> 401 within the feed's poll interval
    access = storage.tokens.access_token
    assert (await mcp_request(d.mcp_url, access)).status_code == 200
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{d.mcp_issuer}/revoke", data={"token": access}, auth=(
            d.mcp_client["client_id"], d.mcp_client["client_secret"]))
    assert r.status_code == 200
    await asyncio.sleep(POLL + 0.5)
    refused = await mcp_request(d.mcp_url, access)
    assert refused.status_code == 401
    assert "resource_metadata=" in refused.headers["www-authenticate"]


async def test_python_sdk_refresh_token_as_subject(peers: Deployment):
    d = peers
    tokens = await login(d)
    seen: list[dict] = []
    who = await call_whoami(d, id_jag_source(
        d, tokens["refresh_token"], "urn:ietf:params:oauth:token-type:refresh_token", seen),
        Memory())
    assert who["scopes"] == [SCOPE] and len(seen) == 1


async def test_mcp_server_metadata_and_challenge(deployment: Deployment):
    d = deployment
    base = d.mcp_url.rsplit("/mcp", 1)[0]
    async with httpx.AsyncClient(timeout=10) as http:
        meta = (await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")).json()
        # tessera serves the registered resource's metadata too
        served = (await http.get(
            f"{d.mcp_issuer}/resources/prices/.well-known/oauth-protected-resource")).json()
    assert meta["resource"] == d.mcp_url and meta["authorization_servers"] == [d.mcp_issuer]
    assert served["resource"] == d.mcp_url and served["scopes_supported"] == [SCOPE]
    r = await mcp_request(d.mcp_url, "not-a-token")
    assert r.status_code == 401 and "resource_metadata=" in r.headers["www-authenticate"]


# -- the TypeScript SDK ----------------------------------------------------------------------

PEER_DIR = REPO_ROOT / "fixtures" / "peers" / "mcp"


@pytest.fixture(scope="module")
def node_peer() -> str:
    """node with fixtures/peers/mcp's packages (installed here when missing); skips, saying why,
    when Node.js or the npm packages cannot be had."""
    import shutil

    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH: the TypeScript MCP SDK peer needs Node.js >= 20")
    if not (PEER_DIR / "node_modules" / "@modelcontextprotocol" / "client").is_dir():
        proc = subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=PEER_DIR,
                              capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            pytest.skip(f"npm install of @modelcontextprotocol/client failed: {proc.stderr[-500:]}")
    return node


def run_node(node: str, script: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([node, script], cwd=PEER_DIR, env=clean_env(**env), capture_output=True,
                          text=True, timeout=60, check=False)
    lines = [x for x in (proc.stdout + proc.stderr).splitlines() if x.startswith("{")]
    assert lines, f"no JSON from {script}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(lines[-1])


async def test_typescript_cross_app_access_provider(peers: Deployment, node_peer: str):
    d = peers
    tokens = await login(d)
    out = await asyncio.to_thread(run_node, node_peer, "cross_app_access.mjs", {
        "MCP_URL": d.mcp_url, "MCP_ISSUER": d.mcp_issuer,
        "MCP_CLIENT_ID": d.mcp_client["client_id"],
        "MCP_CLIENT_SECRET": d.mcp_client["client_secret"],
        "IDP_ISSUER": d.idp.issuer, "IDP_CLIENT_ID": d.agent["client_id"],
        "IDP_CLIENT_SECRET": d.agent["client_secret"], "ID_TOKEN": tokens["id_token"],
        "SCOPE": SCOPE})
    assert out["ok"], out
    assert out["calls"] == [{"audience": d.mcp_issuer, "resource": d.mcp_url}]
    result = out["result"]
    who = result.get("structuredContent") or json.loads(result["content"][0]["text"])
    who = who.get("result", who)
    assert who["client_id"] == d.mcp_client["client_id"] and who["scopes"] == [SCOPE]


# -- the MCP conformance suite ---------------------------------------------------------------

def test_conformance_authorization_scenarios_for_an_authorization_server(node_peer: str):
    """@modelcontextprotocol/conformance 0.1.16 has authorization scenarios (``auth/*``), but
    each is a *client* scenario: the suite starts its own mock MCP server and mock
    authorization server and judges the client under test. None drives a real authorization
    server, so none can run against tessera; the behaviour its mock AS expects of an AS
    (invalid_grant for an ID-JAG naming an unregistered resource, client_secret_basic for
    the jwt-bearer grant, RFC 9728 metadata) is tested in tests/flows/test_resource_servers.py
    and by the SDK peers above. The list is read from the package so a release that adds
    server-side authorization scenarios makes this test fail instead of skip."""
    script = PEER_DIR / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / \
        "index.js"
    if not script.is_file():
        pytest.skip("@modelcontextprotocol/conformance is not installed in fixtures/peers/mcp")
    proc = subprocess.run([node_peer, str(script), "list"], capture_output=True, text=True,
                          timeout=60, check=False, cwd=PEER_DIR)
    if proc.returncode != 0:
        text = script.read_text(errors="replace")
        names = set(re.findall(r"this\.name=`(auth/[a-z0-9/_.-]+)`", text))
    else:
        names = {w for w in proc.stdout.split() if w.startswith("auth/")}
    assert names, "the package lists no auth scenarios at all"
    server_side = {n for n in names if "authorization-server" in n or n.startswith("auth/as-")}
    assert not server_side, f"server-side authorization scenarios to run: {server_side}"
    pytest.skip(f"@modelcontextprotocol/conformance has no authorization-server scenarios: its "
                f"{len(names)} auth/* scenarios all test MCP clients against the suite's own "
                "mock authorization server")

"""The resource-server toolkit (``broker.resource_server``) protecting a Starlette app with
tessera's tokens: local validation (JWKS with rotation, aud, scopes, DPoP + ath, mTLS),
revocation through the signed feed within its documented staleness (ETag polling, fail closed),
introspection with a short cache, and the 401/403 challenges of RFC 6750 / RFC 9728."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker.resource_server import RemoteJWKS, ResourceConfig, RevocationFeed, TokenVerifier
from broker.resource_server.asgi import TesseraAuthMiddleware
from broker.resource_server.mcp_sdk import TesseraTokenVerifier
from broker.resource_server.verifier import Introspection, Refusal
from tests import admin_ops as ops
from tests.conftest import new_client, new_tenant, published_long_ago
from tests.dpop_client import make_proof, new_key

MCP = "https://mcp.example/mcp"
OTHER = "https://other.example/api"


class Clock:
    def __init__(self) -> None:
        import time

        self.t = time.time()

    def __call__(self) -> float:
        return self.t


async def tool(request: Request) -> JSONResponse:
    token = request.state.tessera_token
    return JSONResponse({"sub": token.subject, "scopes": list(token.scopes)})


@dataclass
class Setup:
    tenant: str
    issuer: str
    client: Any
    clock: Clock
    feed: RevocationFeed
    verifier: TokenVerifier
    app: httpx.AsyncClient
    statuses: list[int]

    async def token(self, http: httpx.AsyncClient, scope: str | None = None,
                    resource: str = MCP, key: Any = None) -> str:
        form = {"grant_type": "client_credentials", "resource": resource}
        if scope:
            form["scope"] = scope
        headers = {"DPoP": make_proof(key, htm="POST", htu=self.client.token_url)} if key else {}
        r = await http.post(self.client.token_url, auth=self.client.basic, data=form,
                            headers=headers)
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


async def protect(http: httpx.AsyncClient, broker: Any, *, require_dpop: bool = False,
                  required: tuple[str, ...] = ("mcp:read",)) -> Setup:
    tenant = await new_tenant(broker)
    issuer = broker.issuer(tenant)
    client = await new_client(broker, tenant, scopes=["mcp:read", "mcp:write"],
                              audiences=[OTHER])
    await ops.create_resource(broker, tenant, name="mcp", identifier=MCP,
                              scopes={"mcp:read": "", "mcp:write": ""},
                              default_scopes=["mcp:read"], require_dpop=require_dpop)
    clock, statuses = Clock(), []

    async def record(response: httpx.Response) -> None:
        if response.url.path.endswith("/revocations"):
            statuses.append(response.status_code)

    http.event_hooks["response"] = [record]
    jwks = RemoteJWKS(f"{issuer}/jwks", http, min_refetch=0, clock=clock)
    feed = RevocationFeed(issuer, http, jwks, poll_interval=15, max_staleness=60, clock=clock)
    verifier = TokenVerifier(ResourceConfig(MCP, issuer, required_scopes=required,
                                            scopes_supported=("mcp:read", "mcp:write")),
                             jwks, feed)
    inner = Starlette(routes=[Route("/mcp", tool, methods=["GET", "POST"])])
    app = TesseraAuthMiddleware(inner, verifier, dpop_required=require_dpop)
    client_app = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="https://mcp.example")
    return Setup(tenant, issuer, client, clock, feed, verifier, client_app, statuses)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_token_gets_the_challenge_with_resource_metadata(http, broker):
    s = await protect(http, broker)
    r = await s.app.get("/mcp")
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert ('Bearer resource_metadata="https://mcp.example/.well-known/oauth-protected-'
            'resource/mcp"') in challenge
    assert "error=" not in challenge and 'scope="mcp:read"' in challenge
    meta = await s.app.get("/.well-known/oauth-protected-resource/mcp")
    assert meta.status_code == 200
    assert meta.json()["resource"] == MCP and meta.json()["authorization_servers"] == [s.issuer]


async def test_valid_token_reaches_the_app(http, broker):
    s = await protect(http, broker)
    r = await s.app.get("/mcp", headers=bearer(await s.token(http)))
    assert r.status_code == 200, r.text
    assert r.json()["scopes"] == ["mcp:read"]


@pytest.mark.parametrize("case", ["other audience", "garbage", "tampered", "two headers"])
async def test_bad_tokens_are_invalid_token(http, broker, case):
    s = await protect(http, broker)
    good = await s.token(http)
    if case == "other audience":
        headers = bearer(await s.token(http, resource=OTHER))
    elif case == "garbage":
        headers = bearer("not.a.jwt")
    elif case == "tampered":
        headers = bearer(good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"))
    else:
        headers = [("Authorization", f"Bearer {good}"), ("Authorization", f"Bearer {good}")]
    r = await s.app.get("/mcp", headers=headers)
    assert r.status_code in (400, 401), r.text
    if r.status_code == 401:
        assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_insufficient_scope_is_403_naming_the_scope(http, broker):
    s = await protect(http, broker, required=("mcp:write",))
    r = await s.app.get("/mcp", headers=bearer(await s.token(http, scope="mcp:read")))
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp:write"' in challenge
    assert "resource_metadata=" in challenge


async def test_revocation_within_the_documented_staleness(http, broker):
    s = await protect(http, broker)
    token = await s.token(http)
    assert (await s.app.get("/mcp", headers=bearer(token))).status_code == 200
    r = await http.post(f"{s.issuer}/revoke", auth=s.client.basic, data={"token": token})
    assert r.status_code == 200
    s.clock.t += 16  # past poll_interval (15 s): the next request pulls the feed
    r = await s.app.get("/mcp", headers=bearer(token))
    assert r.status_code == 401 and "revoked" in r.json()["error_description"]
    # unchanged since: the next poll is a 304 that confirms the copy held
    s.clock.t += 16
    assert (await s.app.get("/mcp", headers=bearer(await s.token(http)))).status_code == 200
    assert s.statuses[-1] == 304 and 200 in s.statuses


async def test_feed_unreachable_fails_closed_after_max_staleness(http, broker):
    s = await protect(http, broker)
    token = await s.token(http)
    assert (await s.app.get("/mcp", headers=bearer(token))).status_code == 200

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("tessera unreachable", request=request)

    s.feed.http = httpx.AsyncClient(transport=httpx.MockTransport(down))
    s.clock.t += 30  # stale, but within max_staleness (60 s): still served
    assert (await s.app.get("/mcp", headers=bearer(token))).status_code == 200
    s.clock.t += 40
    r = await s.app.get("/mcp", headers=bearer(token))
    assert r.status_code == 503 and r.json()["error"] == "temporarily_unavailable"


async def test_key_rotation_is_followed(http, broker):
    s = await protect(http, broker)
    assert (await s.app.get("/mcp", headers=bearer(await s.token(http)))).status_code == 200
    await published_long_ago(broker, s.tenant)
    await ops.rotate_keys(broker, s.tenant)
    r = await s.app.get("/mcp", headers=bearer(await s.token(http)))
    assert r.status_code == 200, r.text


async def test_dpop_bound_token(http, broker):
    s = await protect(http, broker, require_dpop=True)
    key = new_key()
    token = await s.token(http, key=key)
    url = "https://mcp.example/mcp"
    proof = make_proof(key, htm="GET", htu=url, access_token=token)
    r = await s.app.get("/mcp", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert r.status_code == 200, r.text
    # replayed proof, proof without ath, another key, presented as Bearer
    r = await s.app.get("/mcp", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
    r = await s.app.get("/mcp", headers={"Authorization": f"DPoP {token}",
                                         "DPoP": make_proof(key, htm="GET", htu=url)})
    assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
    r = await s.app.get("/mcp", headers={"Authorization": f"DPoP {token}", "DPoP": make_proof(
        new_key(), htm="GET", htu=url, access_token=token)})
    assert r.status_code == 401
    r = await s.app.get("/mcp", headers=bearer(token))
    assert r.status_code == 401 and 'DPoP algs=' in r.headers["www-authenticate"]
    meta = await s.app.get("/.well-known/oauth-protected-resource/mcp")
    assert meta.json()["dpop_bound_access_tokens_required"] is True


async def test_certificate_bound_token_needs_that_certificate(http, broker):
    s = await protect(http, broker)
    token = await s.token(http)
    # a token without cnf passes whatever certificate; one with cnf.x5t#S256 needs it
    claims = {"cnf": {"x5t#S256": "abc"}}
    with pytest.raises(Refusal) as refused:
        s.verifier._check_binding(token, claims, "bearer", "GET", None, None, None)
    assert refused.value.error == "invalid_token"
    s.verifier._check_binding(token, claims, "bearer", "GET", None, None, "abc")


async def test_introspection_with_a_short_cache(http, broker):
    s = await protect(http, broker)
    token = await s.token(http)
    intro = Introspection(f"{s.issuer}/introspect", s.client.client_id, s.client.secret, http,
                          ttl=5, clock=s.clock)
    verifier = TokenVerifier(s.verifier.config, s.verifier.jwks, None, introspection=intro)
    assert (await verifier.verify(token)).subject == s.client.client_id
    await http.post(f"{s.issuer}/revoke", auth=s.client.basic, data={"token": token})
    assert (await verifier.verify(token)).client_id  # cached for ttl
    s.clock.t += 6
    with pytest.raises(Refusal) as refused:
        await verifier.verify(token)
    assert refused.value.status == 401


async def test_mcp_sdk_token_verifier(http, broker):
    pytest.importorskip("mcp", reason="the python mcp SDK is in the test extra")
    s = await protect(http, broker)
    adapter = TesseraTokenVerifier(s.verifier)
    access = await adapter.verify_token(await s.token(http))
    assert access is not None and access.resource == MCP and access.scopes == ["mcp:read"]
    assert await adapter.verify_token(await s.token(http, resource=OTHER)) is None
    assert await adapter.verify_token("junk") is None


async def test_revocation_feed_etag(http, broker):
    s = await protect(http, broker)
    url = f"{s.issuer}/revocations"
    first = await http.get(url)
    etag = first.headers["etag"]
    assert first.status_code == 200 and etag.startswith('"')
    same = await http.get(url, headers={"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    assert (await http.get(url, headers={"If-None-Match": '"other"'})).status_code == 200
    token = await s.token(http)
    await http.post(f"{s.issuer}/revoke", auth=s.client.basic, data={"token": token})
    changed = await http.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_revocation_list_rules():
    """Each reason the feed gives to refuse a token, on its own."""
    from broker.resource_server.feed import RevocationList

    token = {"jti": "g1.abc", "client_id": "agent", "sub": "alice", "iat": 100,
             "sub_id": {"format": "iss_sub", "iss": "https://idp.example", "sub": "a"}}
    assert RevocationList(tenant="t").revoked(token) is None
    assert RevocationList(jtis=frozenset({"g1.abc"})).revoked(token) == "token revoked"
    assert RevocationList(grants=frozenset({"g1"})).revoked(token) == "grant revoked"
    assert RevocationList(grants=frozenset({"g1.abc"})).revoked(token) is None
    assert RevocationList(inactive_clients=frozenset({"agent"})).revoked(token)
    assert RevocationList(inactive_issuers=frozenset({"https://idp.example"})).revoked(token)
    for kind, subject in (("client", "agent"), ("user", "alice"),
                          ("partner", "https://idp.example"), ("tenant", "t")):
        assert RevocationList(cutoffs=((kind, subject, 100.0),), tenant="t").revoked(token)
        assert RevocationList(cutoffs=((kind, subject, 99.0),), tenant="t").revoked(
            token) is None  # issued after the cutoff

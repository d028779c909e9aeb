"""Tenant isolation (ARCHITECTURE.md: "Tenant isolation is structural"): every endpoint of
tenant B refuses tenant A's secrets, client assertions, bearer and DPoP-bound tokens, and a
refusal writes nothing for B but its audit event (and nothing at all for A).

Also: the same client_id in both tenants, disjoint JWKS, a valid A token that is foreign to B,
and the ``TenantScope`` listener that filters ORM statements without a where-clause.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError
from joserfc.jwk import ECKey, Key, KeySet
from sqlalchemy import delete, func, select, update

from broker.admin.models.api_keys import ApiKeyCreate
from broker.admin.services import api_keys as api_keys_service
from broker.runtime import Broker
from tenants import users
from tenants.models import (
    AuditEvent,
    Client,
    ReplayRecord,
    ResourceServerRow,
    RevokedToken,
    SigningKey,
)
from tenants.scope import tenant_scope
from tests import admin_ops as ops
from tests.conftest import ADMIN_TOKEN, BASE_URL, new_client, new_tenant
from tests.conftest import TestClient as Registered
from tests.dpop_client import make_proof, new_key

CC = {"grant_type": "client_credentials"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ROW_TABLES = (Client, SigningKey, ReplayRecord, RevokedToken, ResourceServerRow)


# -- the two tenants --------------------------------------------------------------------

@dataclass(frozen=True)
class World:
    a: str
    b: str
    a_basic: Registered  # client_secret_basic; may also address B's demo audience
    a_post: Registered  # client_secret_post
    a_dpop: Registered  # dpop_bound_access_tokens
    a_pk: Registered  # private_key_jwt, client_id "same-pk"
    a_pk_key: ECKey
    a_same: Registered  # client_id "same"
    b_basic: Registered
    b_same: Registered  # client_id "same", its own secret
    b_pk: Registered  # private_key_jwt, client_id "same-pk", another key with the same kid
    b_pk_key: ECKey
    dpop_key: Key
    bearer: str  # A's token for A's demo
    bearer_for_b: str  # A's token whose aud is B's demo resource
    dpop_token: str  # A's DPoP-bound token
    same_token: str  # A's token of client "same"

    def url(self, tenant: str, path: str) -> str:
        return f"{BASE_URL}/t/{tenant}{path}"

    @property
    def b_demo(self) -> str:
        return self.url(self.b, "/demo/whoami")

    def secrets(self) -> list[str]:
        return [c.secret for c in (self.a_basic, self.a_post, self.a_dpop, self.a_same)
                if c.secret]


async def _token(http: httpx.AsyncClient, c: Registered, **form: str) -> str:
    r = await http.post(c.token_url, data={**CC, **form}, auth=c.basic)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _assertion(key: ECKey, client_id: str, aud: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
              "jti": secrets.token_urlsafe(16)}
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)


def _pk_form(w: World, aud: str, **extra: str) -> dict[str, str]:
    return {"client_id": w.a_pk.client_id, "client_assertion_type": JWT_BEARER,
            "client_assertion": _assertion(w.a_pk_key, w.a_pk.client_id, aud), **extra}


@pytest.fixture(scope="module")
async def w(broker: Broker, http: httpx.AsyncClient) -> World:
    a, b = await new_tenant(broker), await new_tenant(broker)
    b_demo = f"{broker.issuer(b)}/demo"
    a_basic = await new_client(broker, a, audiences=[f"{broker.issuer(a)}/demo", b_demo])
    a_post = await new_client(broker, a, auth_method="client_secret_post")
    a_dpop = await new_client(broker, a, dpop_bound_access_tokens=True)
    a_pk_key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    a_pk = await new_client(broker, a, client_id="same-pk", auth_method="private_key_jwt",
                            jwks={"keys": [a_pk_key.as_dict(private=False)]})
    a_same = await new_client(broker, a, client_id="same")
    b_basic = await new_client(broker, b)
    b_same = await new_client(broker, b, client_id="same")
    b_pk_key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    b_pk = await new_client(broker, b, client_id="same-pk", auth_method="private_key_jwt",
                            jwks={"keys": [b_pk_key.as_dict(private=False)]})
    assert a_same.secret != b_same.secret

    dpop_key = new_key()
    proof = make_proof(dpop_key, htm="POST", htu=a_dpop.token_url)
    r = await http.post(a_dpop.token_url, data=CC, auth=a_dpop.basic, headers={"DPoP": proof})
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP", r.text
    return World(
        a=a, b=b, a_basic=a_basic, a_post=a_post, a_dpop=a_dpop, a_pk=a_pk, a_pk_key=a_pk_key,
        a_same=a_same, b_basic=b_basic, b_same=b_same, b_pk=b_pk, b_pk_key=b_pk_key,
        dpop_key=dpop_key,
        bearer=await _token(http, a_basic),
        bearer_for_b=await _token(http, a_basic, resource=b_demo),
        dpop_token=r.json()["access_token"],
        same_token=await _token(http, a_same),
    )


# -- counting a tenant's rows -----------------------------------------------------------

async def snapshot(broker: Broker, tenant: str) -> dict[str, int]:
    out: dict[str, int] = {}
    async with broker.sessions() as session:
        for model in (*ROW_TABLES, AuditEvent):
            out[model.__tablename__] = (await session.execute(
                select(func.count()).select_from(model).where(model.tenant_id == tenant)
            )).scalar_one()
        out["audit_seq"] = (await session.execute(
            select(func.coalesce(func.max(AuditEvent.seq), 0))
            .where(AuditEvent.tenant_id == tenant)
        )).scalar_one()
    return out


async def events_after(broker: Broker, tenant: str, seq: int) -> list[AuditEvent]:
    async with broker.sessions() as session:
        return list((await session.execute(
            select(AuditEvent).where(AuditEvent.tenant_id == tenant, AuditEvent.seq > seq)
            .order_by(AuditEvent.seq)
        )).scalars())


async def _introspect_at_a(http: httpx.AsyncClient, w: World, c: Registered,
                           token: str) -> dict[str, Any]:
    r = await http.post(w.url(w.a, "/introspect"), data={"token": token}, auth=c.basic)
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- the walk: every endpoint of B, A's credentials ---------------------------------------

Send = Callable[[httpx.AsyncClient, World], Awaitable[httpx.Response]]
After = Callable[[httpx.AsyncClient, Broker, World], Awaitable[None]]


@dataclass(frozen=True)
class Case:
    send: Send
    status: int
    error: str | None = None  # the expected "error"; None: `body` (or an empty body)
    body: dict[str, Any] | None = None
    audit: str | None = None  # B gets exactly this one refusal event
    challenge: str | None = None  # substring of WWW-Authenticate
    after: After | None = None


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _admin(w: World, path: str = "") -> str:
    return f"{BASE_URL}/admin/v1/tenants/{w.b}{path}"


async def _still_active_at_a(http: httpx.AsyncClient, _b: Broker, w: World) -> None:
    body = await _introspect_at_a(http, w, w.a_basic, w.bearer)
    assert body["active"] is True and body["iss"] == w.url(w.a, "")


async def _same_still_active_at_a(http: httpx.AsyncClient, _b: Broker, w: World) -> None:
    body = await _introspect_at_a(http, w, w.a_same, w.same_token)
    assert body["active"] is True and body["client_id"] == "same"


async def _dpop_still_active_at_a(http: httpx.AsyncClient, _b: Broker, w: World) -> None:
    body = await _introspect_at_a(http, w, w.a_dpop, w.dpop_token)
    assert body["active"] is True and body["token_type"] == "DPoP"


async def _b_still_active(_h: httpx.AsyncClient, broker: Broker, w: World) -> None:
    assert (await ops.get_tenant(broker, w.b))["status"] == "active"


def _revoke_by_b(c: str, token: str) -> Send:
    def send(h: httpx.AsyncClient, w: World) -> Awaitable[httpx.Response]:
        return h.post(w.url(w.b, "/revoke"), data={"token": getattr(w, token)},
                      auth=getattr(w, c).basic)
    return send


def _introspect_by_b(c: str, token: str) -> Send:
    def send(h: httpx.AsyncClient, w: World) -> Awaitable[httpx.Response]:
        return h.post(w.url(w.b, "/introspect"), data={"token": getattr(w, token)},
                      auth=getattr(w, c).basic)
    return send


def _demo_dpop(h: httpx.AsyncClient, w: World) -> Awaitable[httpx.Response]:
    proof = make_proof(w.dpop_key, htm="GET", htu=w.b_demo, access_token=w.dpop_token)
    return h.get(w.b_demo, headers={"Authorization": f"DPoP {w.dpop_token}", "DPoP": proof})


def _token_dpop(h: httpx.AsyncClient, w: World) -> Awaitable[httpx.Response]:
    proof = make_proof(w.dpop_key, htm="POST", htu=w.url(w.b, "/token"))
    return h.post(w.url(w.b, "/token"), data=CC, auth=w.a_dpop.basic, headers={"DPoP": proof})


def _client_auth_cases(path: str, action: str, form: dict[str, str]) -> dict[str, Case]:
    """A's secret (basic, post), A's client assertion (aud = B's endpoint and B's issuer),
    and A's secret for client_id "same" -- all at B's ``path``."""

    def data(w: World, **extra: str) -> dict[str, str]:
        return {**form, **({"token": w.bearer} if "token" in form else {}), **extra}

    def post(path_aud: str | None) -> Send:
        def send(h: httpx.AsyncClient, w: World) -> Awaitable[httpx.Response]:
            aud = w.url(w.b, path_aud if path_aud is not None else "")
            return h.post(w.url(w.b, path), data=data(w, **_pk_form(w, aud)))
        return send

    fail = {"status": 401, "error": "invalid_client", "audit": action}
    return {
        f"{path}/a-secret-basic": Case(
            lambda h, w: h.post(w.url(w.b, path), data=data(w), auth=w.a_basic.basic),
            challenge="Basic", **fail),
        f"{path}/a-secret-post": Case(
            lambda h, w: h.post(w.url(w.b, path), data=data(
                w, client_id=w.a_post.client_id, client_secret=w.a_post.secret or "")),
            **fail),
        f"{path}/a-assertion-aud-b-endpoint": Case(post(path), **fail),
        f"{path}/a-assertion-aud-b-issuer": Case(post(None), **fail),
        f"{path}/a-secret-same-client-id": Case(
            lambda h, w: h.post(w.url(w.b, path), data=data(w),
                                auth=("same", w.a_same.secret or "")),
            challenge="Basic", **fail),
    }


CASES: dict[str, Case] = {
    **_client_auth_cases("/token", "token.refused", CC),
    "/token/a-dpop-client-valid-proof-for-b": Case(
        _token_dpop, 401, "invalid_client", audit="token.refused", challenge="Basic"),
    **_client_auth_cases("/introspect", "introspection.refused", {"token": ""}),
    "/introspect/b-client-a-bearer": Case(
        _introspect_by_b("b_basic", "bearer"), 200, body={"active": False}),
    "/introspect/b-client-a-token-for-b-demo": Case(
        _introspect_by_b("b_basic", "bearer_for_b"), 200, body={"active": False}),
    "/introspect/b-client-a-dpop-token": Case(
        _introspect_by_b("b_basic", "dpop_token"), 200, body={"active": False}),
    "/introspect/b-same-a-same-token": Case(
        _introspect_by_b("b_same", "same_token"), 200, body={"active": False}),
    **_client_auth_cases("/revoke", "token.revocation_refused", {"token": ""}),
    "/revoke/b-client-a-bearer": Case(
        _revoke_by_b("b_basic", "bearer"), 200, after=_still_active_at_a),
    "/revoke/b-same-a-same-token": Case(
        _revoke_by_b("b_same", "same_token"), 200, after=_same_still_active_at_a),
    "/revoke/b-client-a-dpop-token": Case(
        _revoke_by_b("b_basic", "dpop_token"), 200, after=_dpop_still_active_at_a),
    "/demo/a-bearer": Case(
        lambda h, w: h.get(w.b_demo, headers=_bearer(w.bearer)),
        401, "invalid_token", challenge='Bearer realm="{b}", error="invalid_token"'),
    "/demo/a-bearer-aud-b-demo": Case(
        lambda h, w: h.get(w.b_demo, headers=_bearer(w.bearer_for_b)),
        401, "invalid_token", challenge='Bearer realm="{b}", error="invalid_token"'),
    "/demo/a-same-token": Case(
        lambda h, w: h.get(w.b_demo, headers=_bearer(w.same_token)),
        401, "invalid_token", challenge='error="invalid_token"'),
    "/demo/a-dpop-token-valid-proof-for-b": Case(
        _demo_dpop, 401, "invalid_token", challenge='error="invalid_token"'),
    "/admin/a-secret-as-basic": Case(
        lambda h, w: h.get(_admin(w, "/clients"), auth=w.a_basic.basic),
        401, "invalid_token", challenge="Bearer"),
    "/admin/a-secret-as-bearer": Case(
        lambda h, w: h.get(_admin(w, "/clients"), headers=_bearer(w.a_basic.secret or "")),
        401, "invalid_token", challenge="Bearer"),
    "/admin/a-token-create-client": Case(
        lambda h, w: h.post(_admin(w, "/clients"), json={"name": "intruder"},
                            headers=_bearer(w.bearer)),
        401, "invalid_token", challenge="Bearer"),
    "/admin/a-token-rotate-keys": Case(
        lambda h, w: h.post(_admin(w, "/keys/rotate"), headers=_bearer(w.bearer)),
        401, "invalid_token"),
    "/admin/a-token-disable-tenant": Case(
        lambda h, w: h.post(_admin(w, "/disable"), headers=_bearer(w.dpop_token)),
        401, "invalid_token", after=_b_still_active),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_b_refuses_a_and_writes_only_refusal_events(http, broker, w, name):
    case = CASES[name]
    before_a, before_b = await snapshot(broker, w.a), await snapshot(broker, w.b)

    r = await case.send(http, w)

    assert r.status_code == case.status, r.text
    assert r.headers["cache-control"] == "no-store"
    if case.error is not None:
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"] == case.error, r.text
    elif case.body is not None:
        assert r.json() == case.body  # inactive, and nothing more
    else:
        assert r.content == b""
    if case.challenge is not None:
        assert case.challenge.format(b=w.url(w.b, "")) in r.headers["www-authenticate"]
    for secret in w.secrets():
        assert secret not in r.text

    after_b = await snapshot(broker, w.b)
    for model in ROW_TABLES:
        table = model.__tablename__
        assert after_b[table] == before_b[table], f"{name} wrote to {table} of tenant B"
    new = await events_after(broker, w.b, before_b["audit_seq"])
    assert after_b["audit_events"] - before_b["audit_events"] == len(new)
    assert all(e.outcome == "refused" for e in new), [(e.action, e.outcome) for e in new]
    if case.audit is not None:
        assert [e.action for e in new] == [case.audit]
    for e in new:
        assert not any(s in json.dumps(e.detail) for s in w.secrets())
    assert await snapshot(broker, w.a) == before_a, "a request at B changed tenant A's rows"
    if case.after is not None:
        await case.after(http, broker, w)


async def test_b_audit_chain_intact_after_the_walk(broker, w):
    report = await ops.verify_audit(broker, w.b)
    assert report["intact"] and report["first_broken_seq"] is None
    assert report["events"] >= 15  # at least the refusals at token, introspect, revoke


# -- one client_id, two tenants ----------------------------------------------------------

async def test_same_client_id_is_two_clients(http, broker, w):
    # each secret works at its own tenant only
    b_token = await _token(http, w.b_same)
    r = await http.post(w.url(w.a, "/token"), data=CC, auth=("same", w.b_same.secret or ""))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    a_claims = jwt.decode(w.same_token, KeySet.import_key_set(await broker.keys.jwks(w.a))).claims
    b_claims = jwt.decode(b_token, KeySet.import_key_set(await broker.keys.jwks(w.b))).claims
    assert a_claims["client_id"] == b_claims["client_id"] == "same"
    assert a_claims["iss"] == w.url(w.a, "") and b_claims["iss"] == w.url(w.b, "")
    # the admin API shows two different rows
    for tenant in (w.a, w.b):
        r = await http.get(f"/admin/v1/tenants/{tenant}/clients/same",
                           headers=_bearer(ADMIN_TOKEN))
        assert r.status_code == 200 and r.json()["tenant"] == tenant
    # B's "same" client cannot introspect A's "same" token at A either
    r = await http.post(w.url(w.a, "/introspect"), data={"token": w.same_token},
                        auth=w.b_same.basic)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    # "same-pk": B's key cannot authenticate as A's client, A's key can
    aud = w.url(w.a, "/token")
    b_assertion = _assertion(w.b_pk_key, "same-pk", aud)
    r = await http.post(aud, data={**CC, **_pk_form(w, aud, client_assertion=b_assertion)})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await http.post(aud, data={**CC, **_pk_form(w, aud)})
    assert r.status_code == 200, r.text


# -- keys and metadata -------------------------------------------------------------------

async def test_jwks_share_no_kid_and_no_key(http, w):
    sets = {}
    for tenant in (w.a, w.b):
        r = await http.get(w.url(tenant, "/jwks"))
        assert r.status_code == 200
        sets[tenant] = r.json()["keys"]
        assert len(sets[tenant]) >= 2  # active and next
    a_kids = {k["kid"] for k in sets[w.a]}
    b_kids = {k["kid"] for k in sets[w.b]}
    assert not a_kids & b_kids
    a_public = {(k.get("x"), k.get("y"), k.get("n")) for k in sets[w.a]}
    assert not a_public & {(k.get("x"), k.get("y"), k.get("n")) for k in sets[w.b]}
    kid = json.loads(base64.urlsafe_b64decode(w.bearer.split(".")[0] + "=="))["kid"]
    assert kid in a_kids and kid not in b_kids


@pytest.mark.parametrize("path", ["/t/{t}/.well-known/openid-configuration",
                                  "/.well-known/oauth-authorization-server/t/{t}"])
async def test_discovery_of_b_names_only_b(http, w, path):
    r = await http.get(path.format(t=w.b))
    assert r.status_code == 200
    meta = r.json()
    issuer = w.url(w.b, "")
    assert meta["issuer"] == issuer
    for name, value in meta.items():
        if name.endswith(("_endpoint", "_uri")):
            assert value.startswith(issuer + "/"), (name, value)
    assert f"/t/{w.a}" not in r.text


async def test_a_token_is_a_valid_jwt_but_foreign_to_b(http, broker, w):
    a_keys = KeySet.import_key_set(await broker.keys.jwks(w.a))
    claims = jwt.decode(w.bearer_for_b, a_keys).claims  # genuinely valid, signed by A
    assert claims["iss"] == w.url(w.a, "") and claims["aud"] == w.url(w.b, "/demo")
    b_keys = KeySet.import_key_set(await broker.keys.jwks(w.b))
    with pytest.raises(InvalidKeyIdError):  # no key of B has A's kid
        jwt.decode(w.bearer_for_b, b_keys)

    # iss rewritten to B, A's signature kept: not a token anywhere
    head, body, sig = w.bearer_for_b.split(".")
    forged = {**claims, "iss": w.url(w.b, "")}
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    spliced = f"{head}.{body}.{sig}"
    for tenant, c in ((w.b, w.b_basic), (w.a, w.a_basic)):
        r = await http.post(w.url(tenant, "/introspect"), data={"token": spliced}, auth=c.basic)
        assert r.status_code == 200 and r.json() == {"active": False}
    r = await http.get(w.b_demo, headers=_bearer(spliced))
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    # the untouched token is still fine at A
    assert (await _introspect_at_a(http, w, w.a_basic, w.bearer_for_b))["active"] is True


# -- admin paths name one tenant's clients -------------------------------------------------

async def test_admin_paths_do_not_reach_other_tenants_clients(http, broker, w):
    admin = _bearer(ADMIN_TOKEN)
    r = await http.get(_admin(w, f"/clients/{w.a_basic.client_id}"), headers=admin)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    before = await snapshot(broker, w.b)
    r = await http.post(_admin(w, f"/clients/{w.a_basic.client_id}/disable"), headers=admin)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert (await ops.get_client(broker, w.a, w.a_basic.client_id))["status"] == "active"
    assert await snapshot(broker, w.b) == before
    r = await http.get(_admin(w, "/clients"), headers=admin)
    assert r.status_code == 200
    assert {c["client_id"] for c in r.json()} == {w.b_basic.client_id, "same", "same-pk"}
    assert {c["tenant"] for c in r.json()} == {w.b}


# -- the structural guard: TenantScope and its do_orm_execute listener ------------------------

async def test_scope_reads_only_its_tenants_rows(broker, w):
    a_ids = {w.a_basic.client_id, w.a_post.client_id, w.a_dpop.client_id, "same-pk", "same"}
    async with tenant_scope(broker.sessions, w.a) as scope:
        rows = (await scope.session.execute(select(Client))).scalars().all()
        assert {c.client_id for c in rows} == a_ids and {c.tenant_id for c in rows} == {w.a}
        # an explicit where-clause naming B is ANDed with the scope: nothing
        named_b = select(Client).where(Client.tenant_id == w.b)
        assert (await scope.session.execute(named_b)).scalars().all() == []
        assert await scope.get(Client, w.b_basic.client_id) is None
        same = await scope.get(Client, "same")
        assert same is not None and same.tenant_id == w.a
        kids = set((await scope.session.execute(select(SigningKey.kid))).scalars())
        assert kids == {k.kid for k in await broker.keys.keys(w.a)} and kids
        tenants = set((await scope.session.execute(select(AuditEvent.tenant_id))).scalars())
        assert tenants == {w.a}
        count = (await scope.session.execute(select(func.count()).select_from(Client)))
        assert count.scalar_one() == len(a_ids)


class _Rollback(Exception):
    pass


async def test_scope_writes_only_its_tenants_rows(broker, w):
    with pytest.raises(_Rollback):
        async with tenant_scope(broker.sessions, w.a) as scope:
            changed = await scope.session.execute(
                update(Client).values(name="hijacked").execution_options(
                    synchronize_session=False))
            assert changed.rowcount == 5
            removed = await scope.session.execute(
                delete(Client).execution_options(synchronize_session=False))
            assert removed.rowcount == 5
            # add() stamps the scope's tenant, whatever the row says
            row = scope.add(Client(tenant_id=w.b, client_id="smuggled", name="x",
                                   auth_method="client_secret_basic", created_at=0.0))
            await scope.session.flush()
            assert row.tenant_id == w.a
            raise _Rollback
    for tenant, n in ((w.a, 5), (w.b, 3)):
        listed = await ops.list_clients(broker, tenant)
        assert len(listed) == n and "hijacked" not in {c["name"] for c in listed}
    async with broker.sessions() as session:
        smuggled = select(Client.tenant_id).where(Client.client_id == "smuggled")
        assert (await session.execute(smuggled)).all() == []


# -- every admin route that names an object: A's objects are 404 under B's path -------------

# a body each request model accepts, so a refusal can only be about the object's tenant
ADMIN_BODIES: dict[str, dict[str, Any]] = {
    "Empty": {}, "ReasonBody": {"reason": "isolation walk"}, "ClientPatch": {"name": "hijack"},
    "ClientSecretRotation": {"overlap_seconds": 0}, "AgentPut": {"owner": "mallory"},
    "TrustLinkPatch": {"scope_ceiling": None}, "DirectionsPut": {"directions": ["accept"]},
    "ManagedConnectionPatch": {"max_lifetime": 60}, "UpstreamPatch": {"display_name": "x"},
    "MetadataRefresh": {}, "ApiKeyRotation": {"overlap_seconds": 0},
    "LegacyAppPatch": {"name": "hijack"}, "KeyCompromise": {"reason": "isolation walk"},
    "ResourcePatch": {"access_token_lifetime": 60},
}


@dataclass(frozen=True)
class AdminObjects:
    """Tenant A's objects, one of each kind a path can name."""

    params: dict[str, str]

    def json(self, route: Any) -> dict[str, Any] | None:
        if route.request is None:
            return None
        if route.request.__name__ == "EntityRef":  # legacy-apps/disable|enable name it
            return {"entity_id": self.params["entity_id"]}
        return ADMIN_BODIES[route.request.__name__]


@pytest.fixture(scope="module")
async def a_objects(broker: Broker, w: World) -> AdminObjects:
    other = await new_tenant(broker)
    agent = await new_client(broker, w.a, name="walked agent")
    link = await ops.add_trust_link(broker, w.a, peer_tenant=other, accept=True)
    audience = "https://rs.example/api"
    await ops.put_managed_connection(broker, w.a, client_id=agent.client_id, audience=audience,
                                     remote_client_id="remote", rules={"read": "grant"})
    await ops.create_upstream(broker, w.a, {"name": "corp-a", "kind": "oidc", "oidc": {
        "issuer": "https://idp.a.example", "client_id": "tessera", "client_secret": "s"}})
    entity = "https://sp.a.example/metadata"
    await ops.create_legacy_app(broker, w.a, {"entity_id": entity,
                                              "acs_urls": ["https://sp.a.example/acs"]})
    await ops.create_resource(broker, w.a, name="walked-rs", identifier="https://rs.a.example/mcp",
                              scopes={"mcp:read": "read"})
    r = await api_keys_service.create_api_key(broker, w.a, ApiKeyCreate(
        client_id=agent.client_id, name="walked key"))
    async with tenant_scope(broker.sessions, w.a) as scope:
        user = await users.link(scope, "corp-a", users.Profile(subject="alice-a"),
                                broker.clock.now())
    kid = next(k.kid for k in await broker.keys.keys(w.a) if k.state == "active")
    return AdminObjects({"client_id": agent.client_id, "link": link["id"],
                         "audience": audience, "upstream": "corp-a", "key_id": r.key_id,
                         "entity_id": entity, "sub": user.id, "kid": kid,
                         "resource": "walked-rs"})


def _object_routes() -> list[Any]:
    """Admin routes under a tenant that name (or, by body, pick) one of its objects."""
    from broker.admin.openapi import path_parameters
    from broker.admin.routes import ROUTES

    return [r for r in ROUTES if "tenant" in path_parameters(r.path) and (
        len(path_parameters(r.path)) > 1
        or (r.request is not None and r.request.__name__ == "EntityRef"))]


def _url(route: Any, tenant: str, params: dict[str, str]) -> str:
    from urllib.parse import quote

    from broker.admin.openapi import template

    path = template(route.path).replace("{tenant}", tenant)
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


@pytest.mark.parametrize("route", _object_routes(), ids=lambda r: r.operation_id)
async def test_admin_routes_do_not_reach_other_tenants_objects(
    http: httpx.AsyncClient, broker: Broker, w: World, a_objects: AdminObjects, route: Any,
) -> None:
    admin = _bearer(ADMIN_TOKEN)
    a_view = [(r, _url(r, w.a, a_objects.params)) for r in _object_routes() if r.method == "GET"]
    before_a = [(await http.get(url, headers=admin)).json() for _, url in a_view]
    before_rows = await snapshot(broker, w.a), await snapshot(broker, w.b)

    r = await http.request(route.method, _url(route, w.b, a_objects.params), headers=admin,
                           json=a_objects.json(route))

    assert r.status_code == 404 and r.json()["error"] == "not_found", r.text
    assert [(await http.get(url, headers=admin)).json() for _, url in a_view] == before_a
    assert (await snapshot(broker, w.a), await snapshot(broker, w.b)) == before_rows


async def test_admin_lists_of_b_show_none_of_as_objects(
    http: httpx.AsyncClient, w: World, a_objects: AdminObjects,
) -> None:
    from broker.admin.openapi import path_parameters
    from broker.admin.routes import ROUTES

    lists = [r for r in ROUTES if r.method == "GET" and path_parameters(r.path) == ["tenant"]]
    assert len(lists) >= 10
    for route in lists:
        r = await http.get(_url(route, w.b, {}), headers=_bearer(ADMIN_TOKEN))
        assert r.status_code == 200, (route.operation_id, r.text)
        for value in a_objects.params.values():
            assert value not in r.text, (route.operation_id, value)

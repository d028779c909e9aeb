"""Role enforcement, generated from the route table: every admin route declares its roles,
and each principal (operator, tenant admin, tenant auditor, registry admin, a tenant admin of
another tenant) gets exactly what the declaration says over HTTP, with real admin clients
(client credentials + DPoP at the tenant's own token endpoint). A refusal writes nothing."""

from __future__ import annotations

import inspect

import httpx
import pytest
from sqlalchemy import func, select

from broker.admin import roles
from broker.admin.route import PREFIX, route
from broker.admin.routes import ROUTES, AdminRoute
from broker.runtime import Broker
from tenants.models import AuditEvent
from tests.admin.admin_helpers import ADMIN
from tests.admin.role_clients import AdminClient, admin_client, assign, path_of
from tests.conftest import BASE_URL, new_client, new_tenant
from tests.dpop_client import make_proof, new_key

VALUES = {"client_id": "no-such-client", "partner": "no-such-partner", "link": "no-such-link",
          "audience": "https://nowhere.example/api", "upstream": "nosuch",
          "key_id": "nosuch", "sub": "nosuch", "approval": "nosuch",
          "entity_id": "https://nowhere.example/sp", "kid": "nosuch", "resource": "nosuch",
          "invitation": "0123456789abcdef"}
IDS = [r.operation_id for r in ROUTES]


def test_every_route_declares_known_roles() -> None:
    assert "roles" in inspect.signature(route).parameters
    assert inspect.signature(route).parameters["roles"].default is inspect.Parameter.empty
    for r in ROUTES:
        assert isinstance(r.roles, frozenset), r.operation_id
        assert r.roles <= roles.ROLES, r.operation_id
        if r.roles & roles.TENANT_ROLES:  # tenant roles only where the path names the tenant
            assert "{tenant}" in r.path, r.operation_id
        if r.method != "GET":  # an auditor reads, never writes
            assert roles.TENANT_AUDITOR not in r.roles, r.operation_id


def test_a_route_without_roles_cannot_be_declared() -> None:
    with pytest.raises(TypeError):
        route("GET", "/x", "x", "x", lambda c: None, name="x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown roles"):
        route("GET", "/x", "x", "x", lambda c: None, name="x", roles=frozenset({"root"}))


@pytest.fixture(scope="module")
async def world(broker: Broker, http: httpx.AsyncClient) -> dict[str, object]:
    a, b, r = await new_tenant(broker), await new_tenant(broker), await new_tenant(broker)
    return {
        "a": a, "b": b,
        "admin": await admin_client(broker, http, a, roles.TENANT_ADMIN),
        "auditor": await admin_client(broker, http, a, roles.TENANT_AUDITOR),
        "other": await admin_client(broker, http, b, roles.TENANT_ADMIN),
        "registry": await admin_client(broker, http, r, roles.REGISTRY_ADMIN),
    }


async def _audit_count(broker: Broker) -> int:
    async with broker.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(AuditEvent)))
                   .scalar_one())


def _expected(r: AdminRoute, who: str) -> str:
    """allowed | 403 | 404 for a principal at tenant A's paths."""
    tenant_path = "{tenant}" in r.path
    if who == "other":  # a tenant admin of B: A's paths do not exist, the rest is not theirs
        return "404" if tenant_path else "403"
    role = {"admin": roles.TENANT_ADMIN, "auditor": roles.TENANT_AUDITOR,
            "registry": roles.REGISTRY_ADMIN}[who]
    if role in r.roles:
        return "allowed"
    if who == "registry" and tenant_path:
        return "404"
    return "403"


@pytest.mark.parametrize("who", ["admin", "auditor", "other", "registry"])
@pytest.mark.parametrize("r", ROUTES, ids=IDS)
async def test_route_enforces_role_and_tenant(broker: Broker, http: httpx.AsyncClient,
                                              world: dict[str, object], r: AdminRoute,
                                              who: str) -> None:
    caller = world[who]
    assert isinstance(caller, AdminClient)
    path = PREFIX + path_of(r.path, tenant=str(world["a"]), **VALUES)
    expected = _expected(r, who)
    before = await _audit_count(broker)
    if expected != "allowed" or r.method == "GET":
        got = await caller.call(http, r.method, path,
                                json={} if r.request is not None else None)
    else:  # an allowed change: only show the role passes (a body the model refuses)
        got = await caller.call(http, r.method, path, json={"no such member": True}
                                if r.request is not None else None)
    if expected == "allowed":
        assert got.status_code not in (401, 403), (r.operation_id, got.text)
        if got.status_code == 404:  # a missing object of A, named (not the tenant refusal)
            assert "no such tenant" not in got.text
        return
    assert got.status_code == int(expected), (r.operation_id, got.status_code, got.text)
    assert got.json()["error"] == ("not_found" if expected == "404" else "access_denied")
    assert await _audit_count(broker) == before  # nothing written on a refusal


async def test_operator_still_reaches_everything(http: httpx.AsyncClient,
                                                 world: dict[str, object]) -> None:
    r = await http.get(f"{PREFIX}/tenants/{world['a']}/role-assignments", headers=ADMIN)
    assert r.status_code == 200
    held = {(x["kind"], x["role"]) for x in r.json()}
    assert ("client", roles.TENANT_ADMIN) in held and ("client", roles.TENANT_AUDITOR) in held


async def test_admin_changes_name_the_client(broker: Broker, http: httpx.AsyncClient,
                                             world: dict[str, object]) -> None:
    admin = world["admin"]
    assert isinstance(admin, AdminClient)
    r = await admin.call(http, "POST", f"{PREFIX}/tenants/{admin.tenant}/clients",
                         json={"name": "made by an admin client", "scopes": ["read"]})
    assert r.status_code == 201, r.text
    async with broker.sessions() as session:
        last = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == admin.tenant).order_by(AuditEvent.seq.desc()).limit(1))
            ).scalar_one()
    assert last.detail["actor"] == f"client:{admin.tenant}/{admin.client_id}"


async def test_tenant_admin_cannot_give_registry_admin(http: httpx.AsyncClient,
                                                       world: dict[str, object]) -> None:
    admin = world["admin"]
    assert isinstance(admin, AdminClient)
    r = await admin.call(http, "POST", f"{PREFIX}/tenants/{admin.tenant}/role-assignments",
                         json={"kind": "group", "subject": "ops", "role": "registry_admin"})
    assert r.status_code == 403 and r.json()["error"] == "access_denied"
    r = await admin.call(http, "POST", f"{PREFIX}/tenants/{admin.tenant}/role-assignments",
                         json={"kind": "group", "subject": "ops", "role": "tenant_auditor"})
    assert r.status_code == 201, r.text


async def test_admin_tokens_must_be_dpop_bound_for_the_admin_audience(
        broker: Broker, http: httpx.AsyncClient, world: dict[str, object]) -> None:
    a = str(world["a"])
    issuer = broker.issuer(a)
    # a client holding a role, but whose token is for another audience
    plain = await new_client(broker, a, audiences=[f"{issuer}/demo"])
    await assign(broker, a, "client", plain.client_id, roles.TENANT_ADMIN)
    tok = await http.post(plain.token_url, data={"grant_type": "client_credentials"},
                          auth=plain.basic)
    assert tok.status_code == 200
    r = await http.get(f"{PREFIX}/tenants/{a}/clients",
                       headers={"Authorization": f"Bearer {tok.json()['access_token']}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    # a bearer (not DPoP) token for the admin audience
    bearer = await new_client(broker, a, audiences=[f"{issuer}/admin"])
    await assign(broker, a, "client", bearer.client_id, roles.TENANT_ADMIN)
    tok = await http.post(bearer.token_url, data={"grant_type": "client_credentials",
                                                  "resource": f"{issuer}/admin"},
                          auth=bearer.basic)
    r = await http.get(f"{PREFIX}/tenants/{a}/clients",
                       headers={"Authorization": f"Bearer {tok.json()['access_token']}"})
    assert r.status_code == 401
    # a DPoP token sent without its proof
    admin = world["admin"]
    assert isinstance(admin, AdminClient)
    r = await http.get(f"{PREFIX}/tenants/{a}/clients",
                       headers={"Authorization": f"DPoP {admin.token}"})
    assert r.status_code == 401
    # garbage
    for value in ("Bearer nope", "DPoP a.b.c", "Basic x", "Bearer " + "x" * 9000):
        r = await http.get(f"{PREFIX}/tenants/{a}/clients", headers={"Authorization": value})
        assert r.status_code == 401, (value[:20], r.text)


async def test_a_client_without_a_role_is_refused(broker: Broker,
                                                  http: httpx.AsyncClient) -> None:
    t = await new_tenant(broker)
    nobody = await admin_client(broker, http, t)
    r = await nobody.call(http, "GET", f"{PREFIX}/tenants/{t}/clients")
    assert r.status_code == 403 and r.json()["error"] == "access_denied"


async def test_removing_the_role_takes_effect_at_once(broker: Broker,
                                                      http: httpx.AsyncClient) -> None:
    t = await new_tenant(broker)
    admin = await admin_client(broker, http, t, roles.TENANT_ADMIN)
    assert (await admin.call(http, "GET", f"{PREFIX}/tenants/{t}/clients")).status_code == 200
    r = await http.post(f"{PREFIX}/tenants/{t}/role-assignments/remove", headers=ADMIN,
                        json={"kind": "client", "subject": admin.client_id,
                              "role": roles.TENANT_ADMIN})
    assert r.status_code == 200, r.text
    assert (await admin.call(http, "GET", f"{PREFIX}/tenants/{t}/clients")).status_code == 403


async def test_assigning_to_someone_missing_is_a_404_and_writes_nothing(
        broker: Broker, http: httpx.AsyncClient) -> None:
    t = await new_tenant(broker)
    before = await _audit_count(broker)
    for kind in ("user", "client"):
        r = await http.post(f"{PREFIX}/tenants/{t}/role-assignments", headers=ADMIN,
                            json={"kind": kind, "subject": "ghost", "role": "tenant_admin"})
        assert r.status_code == 404, r.text
    r = await http.post(f"{PREFIX}/tenants/{t}/role-assignments", headers=ADMIN,
                        json={"kind": "robot", "subject": "x", "role": "tenant_admin"})
    assert r.status_code == 400
    assert await _audit_count(broker) == before


async def test_an_admin_client_at_a_tenant_requiring_dpop_nonces(
        broker: Broker, http: httpx.AsyncClient) -> None:
    t = await new_tenant(broker, dpop_nonce_required=True)
    issuer = broker.issuer(t)
    c = await new_client(broker, t, audiences=[f"{issuer}/admin"],
                         dpop_bound_access_tokens=True)
    await assign(broker, t, "client", c.client_id, roles.TENANT_ADMIN)
    key = new_key()
    url = f"{issuer}/token"
    form = {"grant_type": "client_credentials", "resource": f"{issuer}/admin"}
    r = await http.post(url, data=form, auth=c.basic,
                        headers={"DPoP": make_proof(key, htm="POST", htu=url)})
    nonce = r.headers["dpop-nonce"]
    r = await http.post(url, data=form, auth=c.basic,
                        headers={"DPoP": make_proof(key, htm="POST", htu=url, nonce=nonce)})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    path = f"{PREFIX}/tenants/{t}/clients"
    r = await http.get(path, headers={"Authorization": f"DPoP {token}", "DPoP": make_proof(
        key, htm="GET", htu=BASE_URL + path, access_token=token)})
    assert r.status_code == 401 and r.json()["error"] == "use_dpop_nonce"
    nonce = r.headers["dpop-nonce"]
    r = await http.get(path, headers={"Authorization": f"DPoP {token}", "DPoP": make_proof(
        key, htm="GET", htu=BASE_URL + path, access_token=token, nonce=nonce)})
    assert r.status_code == 200, r.text

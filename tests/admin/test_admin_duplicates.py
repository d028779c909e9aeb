"""A create of what exists already is ``409 conflict`` (as Keycloak and Hydra answer it), not a
``400``: for every kind of thing the admin API creates under a name or id the caller chooses,
the second create is refused with a JSON error, writes nothing (no row, no audit event), and
the OpenAPI document declares the 409. A concurrent create that passes the check and then hits
the database's unique constraint is the same 409, never a 500; the command line exits 3."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.errors import Conflict
from broker.admin import dispatch, openapi, roles
from broker.admin.route import EXISTS, Call, route
from broker.runtime import Broker
from tenants.db import Base
from tenants.models import Tenant
from tests.admin.admin_helpers import ADMIN
from tests.conftest import BASE_URL, new_client, new_tenant, unique

PREFIX = "/admin/v1"
OIDC = {"issuer": "https://idp.corp.example", "client_id": "tessera", "client_secret": "s" * 32}


async def row_counts(broker: Broker) -> dict[str, int]:
    """How many rows every table holds (a refused create must leave each as it was)."""
    async with broker.sessions() as session:
        return {t.name: (await session.execute(select(func.count()).select_from(t)))
                .scalar_one() for t in Base.metadata.sorted_tables}


async def _partner(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await http.post(f"{PREFIX}/partners", headers=ADMIN, json={
        "display_name": "Partner", **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


# each kind: what to make first (given a fresh tenant) -> (path, first body, second body)
Setup = Callable[[Broker, httpx.AsyncClient, str], Awaitable[tuple[str, dict[str, Any],
                                                                   dict[str, Any]]]]


async def _tenant(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    return "/tenants", {"name": t}, {"name": t, "display_name": "another"}


async def _client(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    body = {"name": "agent", "client_id": "fixed-id"}
    return f"/tenants/{t}/clients", body, {**body, "name": "another"}


async def _upstream(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    body = {"name": "corp", "kind": "oidc", "oidc": OIDC}
    return f"/tenants/{t}/upstreams", body, {**body, "display_name": "another"}


async def _legacy_app(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    body = {"entity_id": "https://legacy.example/sp", "acs_urls": ["https://legacy.example/acs"]}
    return f"/tenants/{t}/legacy-apps", body, {**body, "name": "another"}


async def _resource(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    body = {"name": "prices", "identifier": "https://mcp.example/prices",
            "scopes": {"read": "Read"}}
    return f"/tenants/{t}/resource-servers", body, {**body, "display_name": "another"}


async def _resource_identifier(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    path, body, _ = await _resource(broker, http, t)
    return path, body, {**body, "name": "prices-2"}  # another name, the same identifier


async def _partner_id(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    pid = unique("p")
    return "/partners", {"id": pid, "display_name": "P", "issuer": f"https://{pid}.example",
                         "jwks_uri": f"https://{pid}.example/jwks"}, {
        "id": pid, "display_name": "P", "issuer": f"https://other-{pid}.example",
        "jwks_uri": f"https://other-{pid}.example/jwks"}


async def _partner_issuer(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    path, body, _ = await _partner_id(broker, http, t)
    return path, body, {**body, "id": unique("p")}


async def _trust_link_to_partner(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    pid = unique("p")
    await _partner(http, id=pid, issuer=f"https://{pid}.example",
                   jwks_uri=f"https://{pid}.example/jwks")
    r = await http.post(f"{PREFIX}/partners/{pid}/activate", headers=ADMIN)
    assert r.status_code == 200, r.text
    return f"/tenants/{t}/trust-links", {"partner": pid, "directions": ["accept"]}, {
        "partner": pid, "directions": ["send"]}


async def _trust_link_to_tenant(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    peer = await new_tenant(broker)
    return f"/tenants/{t}/trust-links", {"tenant": peer, "directions": ["accept"]}, {
        "tenant": peer, "directions": ["accept", "send"]}


async def _role(broker: Broker, http: httpx.AsyncClient, t: str) -> Any:
    c = await new_client(broker, t)
    body = {"kind": "client", "subject": c.client_id, "role": "tenant_auditor"}
    return f"/tenants/{t}/role-assignments", body, body


KINDS: dict[str, tuple[Setup, str]] = {  # kind -> (setup, the operation that answers 409)
    "tenant": (_tenant, "create_tenant"),
    "client": (_client, "create_client"),
    "upstream": (_upstream, "create_upstream"),
    "legacy app": (_legacy_app, "create_legacy_app"),
    "resource server": (_resource, "create_resource"),
    "resource identifier": (_resource_identifier, "create_resource"),
    "partner id": (_partner_id, "register_partner"),
    "partner issuer": (_partner_issuer, "register_partner"),
    "trust link to a partner": (_trust_link_to_partner, "add_trust_link"),
    "trust link to a tenant": (_trust_link_to_tenant, "add_trust_link"),
    "role assignment": (_role, "assign_role"),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_second_create_is_a_409_that_changes_nothing(
        kind: str, http: httpx.AsyncClient, broker: Broker) -> None:
    setup, _ = KINDS[kind]
    t = unique("t") if kind == "tenant" else await new_tenant(broker)
    path, first, second = await setup(broker, http, t)
    r = await http.post(PREFIX + path, headers=ADMIN, json=first)
    assert r.status_code == 201, r.text
    before = await row_counts(broker)
    listed = (await http.get(PREFIX + path, headers=ADMIN)).json()
    r = await http.post(PREFIX + path, headers=ADMIN, json=second)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"] == "conflict" and r.json()["error_description"], r.text
    assert await row_counts(broker) == before
    assert (await http.get(PREFIX + path, headers=ADMIN)).json() == listed


def test_the_openapi_document_declares_each_409() -> None:
    doc = openapi.document(BASE_URL)
    by_id = {op["operationId"]: op for ops in doc["paths"].values() for op in ops.values()}
    for _, operation in KINDS.values():
        assert "409" in by_id[operation]["responses"], operation
        assert by_id[operation]["responses"]["409"]["content"]["application/json"]
    conflicting = {oid for oid, op in by_id.items() if "409" in op["responses"]}
    assert conflicting == {name for _, name in KINDS.values()} | {
        "register_entity", "rotate_keys", "compromise_key"}


async def test_a_concurrent_duplicate_is_a_409_not_a_500(
        http: httpx.AsyncClient, broker: Broker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both requests find the name free, then both insert: the database's primary key lets
    one through and the other is the 409 (the suite fails any test that answered a 500)."""
    name, checked, both = unique("race"), [], asyncio.Event()
    get = AsyncSession.get

    async def get_after_both_checked(self: AsyncSession, entity: Any, ident: Any,
                                     *args: Any, **kwargs: Any) -> Any:
        found = await get(self, entity, ident, *args, **kwargs)
        if entity is Tenant and ident == name and len(checked) < 2:
            checked.append(found)
            if len(checked) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), 10)
        return found

    monkeypatch.setattr(AsyncSession, "get", get_after_both_checked)
    answers = await asyncio.gather(*(
        http.post(f"{PREFIX}/tenants", headers=ADMIN, json={"name": name}) for _ in range(2)))
    assert checked == [None, None], "both saw the name free"
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 409)
    assert refused.json()["error"] == "conflict", refused.text
    async with broker.sessions() as session:
        assert (await session.get(Tenant, name)) is not None


async def test_only_a_route_declaring_the_conflict_answers_a_constraint_as_409(
        broker: Broker) -> None:
    async def violates(_: Call) -> None:
        raise IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed"))

    call = Call(broker, {}, principal=roles.OPERATOR)
    declared = route("POST", "/x", "x", "x", violates, name="x", roles=frozenset(),
                     conflict=EXISTS)
    with pytest.raises(Conflict):
        await dispatch.call(declared, call)
    undeclared = route("POST", "/x", "x", "x", violates, name="x", roles=frozenset())
    with pytest.raises(IntegrityError):  # a bug elsewhere stays loud (a 500)
        await dispatch.call(undeclared, call)


def test_the_command_line_exits_3(cli: Any) -> None:
    cli("tenant", "create", "acme")
    cli("client", "create", "--tenant", "acme", "--name", "a", "--client-id", "agent")
    cli("role", "assign", "--tenant", "acme", "--client", "agent", "--role", "tenant_auditor")
    cli("resource", "add", "prices", "--tenant", "acme", "--identifier",
        "https://mcp.example/prices", "--scope", "read")
    for args in (("tenant", "create", "acme"),
                 ("client", "create", "--tenant", "acme", "--name", "b", "--client-id",
                  "agent"),
                 ("role", "assign", "--tenant", "acme", "--client", "agent", "--role",
                  "tenant_auditor"),
                 ("resource", "add", "prices", "--tenant", "acme", "--identifier",
                  "https://mcp.example/other", "--scope", "read")):
        proc = cli(*args, check=False)
        assert proc.returncode == 3, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr

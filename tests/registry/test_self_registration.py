"""Partner self-registration against the real app: invitations, Entity Configurations fetched
through the SSRF-guarded fetcher, approval, the partner's own signed requests, key refresh
(continuity, unknown kid, rate limit) and the registry admins' webhook.

The partners are outside our machine, so their web servers are an ``httpx.MockTransport`` and
their DNS a fake resolver (the same stand-ins as ``test_remote_keys``); everything of tessera
is real.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from sqlalchemy import func, select

from adapters.entity_statement import REQUEST_TYP, STATEMENT_TYP, verify_entity_configuration
from adapters.errors import InvalidRequest
from broker import partner_registration, peer_keys, webhooks
from broker.runtime import Broker
from registry.remote_keys import FetchPolicy, RemoteKeys
from registry.self_registration import Refresher
from tenants.models import AuditEvent, Partner, RegistryInvitation
from tests.conftest import ADMIN_TOKEN, OffsetClock, new_tenant, unique

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REGISTRY_ID = "http://tessera.test/registry"
PUBLIC_IP = "93.184.216.34"
PRIVATE = {"evil.example": "10.0.0.5", "metadata.example": "169.254.169.254",
           "mapped.example": "::ffff:10.0.0.1", "loop.example": "127.0.0.1"}


@dataclass
class Entity:
    """A partner organisation outside the machine: its keys and what its server answers."""

    host: str
    fed: ECKey = field(default_factory=lambda: ECKey.generate_key(
        "P-256", parameters={"kid": "fed-" + uuid.uuid4().hex[:6]}))
    token: ECKey = field(default_factory=lambda: ECKey.generate_key(
        "P-256", parameters={"kid": "tok-" + uuid.uuid4().hex[:6]}))
    extra_fed: list[ECKey] = field(default_factory=list)
    extra_token: list[ECKey] = field(default_factory=list)
    claims: dict[str, Any] = field(default_factory=dict)  # overrides
    header: dict[str, Any] = field(default_factory=dict)
    signer: ECKey | None = None
    answer: Callable[[httpx.Request], httpx.Response] | None = None
    jwks_path: str | None = None  # token keys by jwks_uri at this path instead of inline

    def token_jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in (self.token, *self.extra_token)]}

    @property
    def id(self) -> str:
        return f"https://{self.host}"

    def configuration(self) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.id, "sub": self.id, "iat": now, "exp": now + 3600,
            "jwks": {"keys": [k.as_dict(private=False) for k in (self.fed, *self.extra_fed)]},
            "metadata": {
                "federation_entity": {"organization_name": f"Org {self.host}",
                                      "contacts": ["ops@" + self.host]},
                "oauth_authorization_server": {
                    "issuer": self.id, "token_endpoint": f"{self.id}/token",
                    **({"jwks_uri": f"{self.id}{self.jwks_path}"} if self.jwks_path
                       else {"jwks": self.token_jwks()})}},
        }
        claims.update(self.claims)
        signer = self.signer or self.fed
        header = {"alg": "ES256", "typ": STATEMENT_TYP, "kid": signer.kid, **self.header}
        return jws.serialize_compact(header, json.dumps(claims).encode(), signer,
                                     algorithms=["ES256"])

    def request(self, *, key: ECKey | None = None, aud: str = REGISTRY_ID) -> str:
        now = int(time.time())
        key = key or self.fed
        return jws.serialize_compact(
            {"alg": "ES256", "typ": REQUEST_TYP, "kid": key.kid},
            json.dumps({"iss": self.id, "sub": self.id, "aud": aud, "iat": now,
                        "exp": now + 60, "jti": uuid.uuid4().hex}).encode(), key,
            algorithms=["ES256"])


@dataclass
class Web:
    """The internet as our broker sees it in these tests."""

    entities: dict[str, Entity] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    hooks: list[httpx.Request] = field(default_factory=list)

    def entity(self, **kw: Any) -> Entity:
        e = Entity(unique("org").replace("_", "-") + ".example", **kw)
        self.entities[e.host] = e
        return e

    def fetched(self, entity: Entity) -> int:
        return sum(1 for r in self.requests if r.url.host == entity.host)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "hooks.example":
            self.hooks.append(request)
            return httpx.Response(204)
        entity = self.entities.get(request.url.host)
        if entity is None:
            return httpx.Response(404)
        if entity.answer is not None:
            return entity.answer(request)
        if entity.jwks_path and request.url.path == entity.jwks_path:
            return httpx.Response(200, content=json.dumps(entity.token_jwks()).encode(),
                                  headers={"content-type": "application/json"})
        if request.url.path != "/.well-known/openid-federation":
            return httpx.Response(404)
        return httpx.Response(200, content=entity.configuration().encode(),
                              headers={"content-type": "application/entity-statement+jwt"})

    async def resolve(self, host: str) -> list[str]:
        return [PRIVATE.get(host, PUBLIC_IP)]


@pytest.fixture
async def web(broker: Broker) -> AsyncIterator[Web]:
    """Route the broker's outbound HTTP to ``Web`` (its fetcher keeps every guard)."""
    web = Web()
    client = httpx.AsyncClient(transport=httpx.MockTransport(web.handle))
    saved = broker.http, broker.remote_keys, broker.refresher
    broker.http = client
    broker.remote_keys = RemoteKeys(client, broker.clock, FetchPolicy(), resolver=web.resolve)
    broker.refresher = Refresher(broker.sessions, broker.remote_keys, broker.clock,
                                 on_change=broker._partner_keys_changed)
    partner_registration.REGISTRATIONS._times.clear()
    try:
        yield web
    finally:
        broker.http, broker.remote_keys, broker.refresher = saved
        await client.aclose()


async def invite(http: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await http.post("/admin/v1/registry/invitations", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_an_invitation_for_an_overlong_entity_id_is_refused(http):
    before = (await http.get("/admin/v1/registry/invitations", headers=ADMIN)).json()
    r = await http.post("/admin/v1/registry/invitations", headers=ADMIN,
                        json={"entity_id": "https://p.example/" + "e" * 600})
    assert r.status_code == 400 and "entity_id" in r.json()["error_description"], r.text
    assert (await http.get("/admin/v1/registry/invitations", headers=ADMIN)).json() == before


async def register(http: httpx.AsyncClient, entity: Entity, code: str) -> httpx.Response:
    return await http.post("/registry/register",
                           json={"entity_id": entity.id, "invitation_code": code})


async def table_counts(broker: Broker) -> tuple[int, int, int]:
    async with broker.sessions() as session:
        partners = (await session.execute(select(func.count()).select_from(Partner)))
        used = await session.execute(select(func.count()).select_from(RegistryInvitation)
                                     .where(RegistryInvitation.used_at.is_not(None)))
        events = await session.execute(select(func.count()).select_from(AuditEvent))
        return partners.scalar_one(), used.scalar_one(), events.scalar_one()


async def registry_actions(broker: Broker, issuer: str) -> list[str]:
    async with broker.sessions() as session:
        rows = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == "_registry").order_by(AuditEvent.seq))).scalars()
        return [e.action for e in rows if (e.detail or {}).get("issuer") == issuer]


# -- registration and approval ---------------------------------------------------------------

async def test_register_with_invitation_then_approve(http, broker, web):
    entity = web.entity()
    invitation = await invite(http, entity_id=entity.id, note="acme onboarding")
    assert invitation["code"].startswith("tri_") and invitation["state"] == "open"
    r = await register(http, entity, invitation["code"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["status"] == "pending" and body["entity_id"] == entity.id
    assert body["display_name"] == f"Org {entity.host}"
    assert body["federation_kids"] == [entity.fed.kid]
    assert body["token_kids"] == [entity.token.kid] and body["jwks_uri"] is None
    pid = body["partner_id"]
    assert await registry_actions(broker, entity.id) == [
        "partner.registered", "partner.registration_pending"]
    async with broker.sessions() as session:
        actors = {e.detail.get("actor") for e in (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == "_registry"))).scalars()
            if (e.detail or {}).get("issuer") == entity.id}
    assert actors == {f"entity {entity.id}"}

    # the code is now used, and shows who used it; it is never shown again
    listed = (await http.get("/admin/v1/registry/invitations", headers=ADMIN)).json()
    mine = next(i for i in listed if i["id"] == invitation["id"])
    assert mine["state"] == "used" and mine["partner"] == pid and mine["code"] is None

    pending = (await http.get("/admin/v1/registry/pending", headers=ADMIN)).json()
    assert pid in [p["id"] for p in pending]
    assert (await http.get("/registry/fetch", params={"sub": entity.id})).status_code == 404

    r = await http.post(f"/admin/v1/partners/{pid}/approve", json={"reason": "ok"},
                        headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "active", r.text
    assert r.json()["federation_jwks"]["keys"][0]["kid"] == entity.fed.kid
    # approving twice, or rejecting what is decided, is refused and writes nothing
    before = await table_counts(broker)
    for verb in ("approve", "reject"):
        r = await http.post(f"/admin/v1/partners/{pid}/{verb}", json={}, headers=ADMIN)
        assert r.status_code == 400 and "only a pending" in r.json()["error_description"]
    assert await table_counts(broker) == before

    assert entity.id in (await http.get("/registry/list")).json()
    # the Subordinate Statement carries its federation keys, its token keys in metadata
    r = await http.get("/registry/fetch", params={"sub": entity.id})
    assert r.status_code == 200
    claims = json.loads(jws.extract_compact(r.text.encode()).payload)
    assert claims["jwks"]["keys"][0]["kid"] == entity.fed.kid
    server = claims["metadata"]["oauth_authorization_server"]
    assert server["jwks"]["keys"][0]["kid"] == entity.token.kid
    assert server["token_endpoint"] == f"{entity.id}/token"


async def test_reject(http, broker, web):
    entity = web.entity()
    r = await http.post("/admin/v1/registry/entities", json={"entity_id": entity.id,
                                                             "id": unique("p")},
                        headers=ADMIN)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    pid = r.json()["id"]
    r = await http.post(f"/admin/v1/partners/{pid}/reject", json={"reason": "unknown org"},
                        headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    assert "partner.registration_rejected" in await registry_actions(broker, entity.id)
    # the partner learns it was rejected
    r = await http.post("/registry/status", data={"request": entity.request()})
    assert r.status_code == 200 and r.json()["status"] == "revoked"


async def test_registering_an_entity_twice_is_a_409(http, broker, web):
    entity, pid = web.entity(), unique("p")
    r = await http.post("/admin/v1/registry/entities", json={"entity_id": entity.id, "id": pid},
                        headers=ADMIN)
    assert r.status_code == 201, r.text
    before = await table_counts(broker)
    for body in ({"entity_id": entity.id}, {"entity_id": web.entity().id, "id": pid}):
        r = await http.post("/admin/v1/registry/entities", json=body, headers=ADMIN)
        assert r.status_code == 409 and r.json()["error"] == "conflict", r.text
    assert await table_counts(broker) == before


async def test_registration_form(http, web):
    r = await http.get("/registry/register")
    assert r.status_code == 200 and "<label for=invitation_code>" in r.text
    assert "unsafe-inline" not in r.headers["content-security-policy"].split("style-src")[0]
    entity = web.entity()
    code = (await invite(http))["code"]
    r = await http.post("/registry/register", data={"entity_id": entity.id,
                                                    "invitation_code": code})
    assert r.status_code == 201 and "pending" in r.text
    r = await http.post("/registry/register", data={"entity_id": entity.id,
                                                    "invitation_code": code})
    assert r.status_code == 400 and "invitation code is unknown, used" in r.text


# -- invitations -------------------------------------------------------------------------------

async def test_invitation_refusals_write_nothing_and_fetch_nothing(http, broker, web):
    entity, other = web.entity(), web.entity()
    bound = await invite(http, entity_id=other.id)
    revoked = await invite(http)
    r = await http.delete(f"/admin/v1/registry/invitations/{revoked['id']}", headers=ADMIN)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    r = await http.delete(f"/admin/v1/registry/invitations/{revoked['id']}", headers=ADMIN)
    assert r.status_code == 400
    before = await table_counts(broker)
    for code in ("", "tri_nope", bound["code"], revoked["code"], bound["code"][:-1] + "A",
                 "x" * 5000):
        r = await register(http, entity, code)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert await table_counts(broker) == before
    assert web.fetched(entity) == 0, "no fetch for a caller without a usable code"


async def test_expired_and_replayed_invitations(http, broker, web,
                                                clocked_broker: tuple[Broker, OffsetClock]):
    later, clock = clocked_broker
    entity = web.entity()
    code = (await invite(http, lifetime_seconds=60))["code"]
    clock.advance(61)
    with pytest.raises(InvalidRequest, match="expired"):
        await partner_registration.register(later, entity.id, invitation_code=code)
    assert web.fetched(entity) == 0
    # still open for the clock that has not moved: used once, then never again
    assert (await register(http, entity, code)).status_code == 201
    again = web.entity()
    before = await table_counts(broker)
    r = await register(http, again, code)
    assert r.status_code == 400 and "used" in r.json()["error_description"]
    assert await table_counts(broker) == before


async def test_concurrent_use_of_one_code_registers_once(http, broker, web):
    a, b = web.entity(), web.entity()
    code = (await invite(http))["code"]
    results = await asyncio.gather(register(http, a, code), register(http, b, code))
    assert sorted(r.status_code for r in results) == [201, 400]


async def test_concurrent_registrations_of_one_entity_register_it_once(http, broker, web):
    entity = web.entity()
    codes = [(await invite(http))["code"] for _ in range(3)]
    results = await asyncio.gather(*(register(http, entity, c) for c in codes))
    assert sorted(r.status_code for r in results) == [201, 409, 409], [r.text for r in results]
    listed = (await http.get("/admin/v1/registry/invitations", headers=ADMIN)).json()
    assert sum(1 for i in listed if i["state"] == "used" and i["entity_id"] is None
               and i["id"] in {c.split("_")[1] for c in codes}) == 1


# -- the statement --------------------------------------------------------------------------

@pytest.mark.parametrize("spoil, why", [
    (lambda e: setattr(e, "signer", ECKey.generate_key("P-256", parameters={"kid": e.fed.kid})),
     "signature does not verify"),
    (lambda e: e.claims.update(iss="https://evil.example"), "iss == sub"),
    (lambda e: e.claims.update(iss="https://x.example", sub="https://x.example"),
     "not the entity id"),
    (lambda e: e.claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
     "expired"),
    (lambda e: e.header.update(typ="JWT"), "typ"),
    (lambda e: setattr(e, "signer", ECKey.generate_key("P-256", parameters={"kid": "other"})),
     "not one of the entity's keys"),
    (lambda e: e.claims.update(metadata={"federation_entity": {}}),
     "no oauth_authorization_server"),
    (lambda e: e.claims.update(metadata={"openid_provider": {
        "issuer": "https://victim.example", "jwks_uri": "https://victim.example/jwks"}}),
     "issuer is not the entity id"),
    (lambda e: e.claims.update(metadata={"openid_provider": {
        "jwks_uri": "https://metadata.example/jwks"}}) or None, None),
    (lambda e: e.claims.update(metadata={"openid_provider": {
        "jwks_uri": "http://10.0.0.7/jwks"}}), "jwks_uri"),
    (lambda e: setattr(e, "answer", lambda r: httpx.Response(
        302, headers={"location": "https://elsewhere.example/.well-known/openid-federation"})),
     "redirected"),
    (lambda e: setattr(e, "answer", lambda r: httpx.Response(
        200, content=b"{}", headers={"content-type": "application/json"})), "content type"),
    (lambda e: setattr(e, "answer", lambda r: httpx.Response(
        200, content=b"\xff" * 10, headers={"content-type": "application/entity-statement+jwt"})),
     "compact JWS"),
    (lambda e: setattr(e, "answer", lambda r: httpx.Response(
        200, content=b"a" * 70_000,
        headers={"content-type": "application/entity-statement+jwt"})), "bytes"),
])
async def test_bad_statements_are_refused_and_leave_the_code_open(http, broker, web, spoil,
                                                                  why):
    entity = web.entity()
    code = (await invite(http))["code"]
    spoil(entity)
    before = await table_counts(broker)
    r = await register(http, entity, code)
    if why is None:  # a jwks_uri on a private address is taken (checked again when fetched)
        assert r.status_code == 201, r.text
        return
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert why in r.json()["error_description"], r.text
    assert await table_counts(broker) == before
    # the code still works once the partner fixes its statement
    fixed = web.entity()
    assert (await register(http, fixed, code)).status_code == 201


@pytest.mark.parametrize("entity_id", [
    "http://partner.example", "https://10.0.0.1", "https://[::1]", "https://127.0.0.1",
    "https://evil.example", "https://metadata.example", "https://mapped.example",
    "https://loop.example", "file:///etc/passwd", "https://user@partner.example",
    "https://partner.example/?q=1", "https://partner.example/#f", "javascript:alert(1)",
])
async def test_ssrf_targets_are_refused(http, broker, web, entity_id):
    code = (await invite(http))["code"]
    before = await table_counts(broker)
    r = await http.post("/registry/register",
                        json={"entity_id": entity_id, "invitation_code": code})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    r = await http.post("/admin/v1/registry/entities", json={"entity_id": entity_id},
                        headers=ADMIN)
    assert r.status_code == 400, r.text
    assert await table_counts(broker) == before
    assert web.requests == []


async def test_hostile_bodies(http, web):
    for body, ctype in ((b"[]", "application/json"), (b'{"entity_id": 5}', "application/json"),
                        (b'{"a":1,"a":2}', "application/json"), (b"\xff", "application/json"),
                        (b"entity_id=%zz", "application/x-www-form-urlencoded"),
                        (b"x" * 70_000, "application/json"), (b"{}", "text/plain"),
                        (b'{"entity_id":"https://a.example","invitation_code":"c","z":"1"}',
                         "application/json")):
        r = await http.post("/registry/register", content=body,
                            headers={"content-type": ctype})
        assert r.status_code == 400, (body[:40], r.text)
        r = await http.post("/registry/status", content=body, headers={"content-type": ctype})
        assert r.status_code in (400, 401), (body[:40], r.text)


# -- the partner's own requests, refresh -----------------------------------------------------

async def _approved(http: httpx.AsyncClient, web: Web, **kw: Any) -> tuple[Entity, str]:
    entity = web.entity(**kw)
    r = await http.post("/admin/v1/registry/entities", json={"entity_id": entity.id},
                        headers=ADMIN)
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    r = await http.post(f"/admin/v1/partners/{pid}/approve", json={}, headers=ADMIN)
    assert r.status_code == 200
    return entity, pid


async def test_status_needs_a_request_signed_with_the_registered_keys(http, web):
    entity, pid = await _approved(http, web)
    r = await http.post("/registry/status", data={"request": entity.request()})
    assert r.status_code == 200 and r.json()["partner_id"] == pid
    assert r.json()["status"] == "active"
    impostor = ECKey.generate_key("P-256", parameters={"kid": entity.fed.kid})
    for token in (entity.request(key=impostor), entity.request(aud="https://other.example"),
                  entity.configuration(), entity.request(key=entity.token), "junk", "a.b.c"):
        r = await http.post("/registry/status", data={"request": token})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        assert entity.fed.kid not in r.text or "kid" not in r.json()["error_description"]


async def test_refresh_follows_rotation_by_continuity_only(http, broker, web):
    entity, pid = await _approved(http, web)
    # the partner publishes a second federation key, signed with the first: taken
    new = ECKey.generate_key("P-256", parameters={"kid": "fed-new"})
    entity.extra_fed.append(new)
    r = await http.post(f"/admin/v1/partners/{pid}/refresh", headers=ADMIN)
    assert r.status_code == 200 and r.json()["changed"] == ["federation_jwks"], r.text
    # then signs with the new one and drops the old: taken (the new key is on record)
    entity.fed, entity.extra_fed = new, []
    r = await http.post(f"/admin/v1/partners/{pid}/refresh", headers=ADMIN)
    assert r.status_code == 200 and [k["kid"] for k in r.json()["federation_jwks"]["keys"]] \
        == ["fed-new"]
    # a host takeover: a statement signed by a key never on record changes nothing
    entity.fed = ECKey.generate_key("P-256", parameters={"kid": "fed-new"})
    before = await table_counts(broker)
    r = await http.post(f"/admin/v1/partners/{pid}/refresh", headers=ADMIN)
    assert r.status_code == 400 and "does not hold" in r.json()["error_description"]
    assert await table_counts(broker) == before
    # the partner itself may ask for a refresh, at most once per interval
    entity.fed = new
    r = await http.post("/registry/refresh", data={"request": entity.request()})
    assert r.status_code == 200, r.text
    r = await http.post("/registry/refresh", data={"request": entity.request()})
    assert r.status_code == 400 and "at most every" in r.json()["error_description"]


async def test_unknown_kid_refreshes_once_per_interval(http, broker, web):
    entity, pid = await _approved(http, web)
    tenant = await new_tenant(broker)
    r = await http.post(f"/admin/v1/tenants/{tenant}/trust-links", headers=ADMIN,
                        json={"partner": pid, "directions": ["accept"]})
    assert r.status_code == 201
    peer = await broker.live_peer(tenant, entity.id, direction="accept")
    assert peer is not None
    assert await peer_keys.peer_key(broker, peer, {"kid": entity.token.kid, "alg": "ES256"})
    # the partner rotates its token key in its Entity Configuration
    rotated = ECKey.generate_key("P-256", parameters={"kid": "tok-rotated"})
    entity.extra_token.append(rotated)
    fetched = web.fetched(entity)
    key = await peer_keys.peer_key(broker, peer, {"kid": "tok-rotated", "alg": "ES256"})
    assert key is not None and key.as_dict(private=False)["x"] == rotated.as_dict()["x"]
    assert web.fetched(entity) == fetched + 1
    # another unknown kid right away: no second fetch (rate-limited), no key
    peer = await broker.live_peer(tenant, entity.id, direction="accept")
    assert await peer_keys.peer_key(broker, peer, {"kid": "tok-other", "alg": "ES256"}) is None
    assert web.fetched(entity) == fetched + 1


async def test_unknown_kid_follows_a_new_jwks_uri(http, broker, web):
    entity, pid = await _approved(http, web, jwks_path="/jwks")
    tenant = await new_tenant(broker)
    r = await http.post(f"/admin/v1/tenants/{tenant}/trust-links", headers=ADMIN,
                        json={"partner": pid, "directions": ["accept"]})
    assert r.status_code == 201
    peer = await broker.live_peer(tenant, entity.id, direction="accept")
    assert peer is not None and peer.jwks_uri == f"{entity.id}/jwks"
    assert await peer_keys.peer_key(broker, peer, {"kid": entity.token.kid, "alg": "ES256"})
    # the partner moves its token keys to a new location with a new key
    entity.jwks_path, entity.token = "/keys-2027", ECKey.generate_key(
        "P-256", parameters={"kid": "tok-2027"})
    key = await peer_keys.peer_key(broker, peer, {"kid": "tok-2027", "alg": "ES256"})
    assert key is not None and key.as_dict(private=False)["x"] == entity.token.as_dict()["x"]
    async with broker.sessions() as session:
        assert (await session.get(Partner, pid)).jwks_uri == f"{entity.id}/keys-2027"


async def test_declared_names_are_cleaned(http, web):
    entity = web.entity()
    entity.claims["metadata"] = {
        "federation_entity": {"organization_name": "Acme\x00\n<script>", "contacts": [5]},
        "openid_provider": {"jwks": entity.token_jwks()}}
    r = await http.post("/admin/v1/registry/entities", json={"entity_id": entity.id},
                        headers=ADMIN)
    # a statement holding NUL is refused whole (the one JSON reader; PostgreSQL cannot store it)
    assert r.status_code == 400 and "NUL" in r.json()["error_description"], r.text
    entity = web.entity()
    entity.claims["metadata"] = {
        "federation_entity": {"organization_name": "Acme\x01\n<script>", "contacts": [5]},
        "openid_provider": {"jwks": entity.token_jwks()}}
    r = await http.post("/admin/v1/registry/entities", json={"entity_id": entity.id},
                        headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["display_name"] == "Acme<script>" and r.json()["contact"] == ""
    r = await http.post("/registry/register", json={
        "entity_id": web.entity().id, "invitation_code": (await invite(http))["code"],
        "display_name": "bad\x07name"})
    assert r.status_code == 400 and "printable" in r.json()["error_description"]


async def test_scheduled_refresh(http, broker, web, clocked_broker):
    entity, pid = await _approved(http, web)
    entity.extra_token.append(ECKey.generate_key("P-256", parameters={"kid": "tok-sched"}))
    later, clock = clocked_broker
    refresher = Refresher(later.sessions, broker.remote_keys, clock, per_tick=10_000)
    clock.advance(3601)
    assert await refresher.tick() >= 1
    async with broker.sessions() as session:
        partner = await session.get(Partner, pid)
    assert "tok-sched" in [k["kid"] for k in partner.jwks["keys"]]
    # a partner whose server fails is retried after retry_interval, not on every tick
    entity.answer = lambda _r: httpx.Response(503)
    clock.advance(3601)
    await refresher.tick()
    fetched = web.fetched(entity)
    clock.advance(60)
    await refresher.tick()
    assert web.fetched(entity) == fetched
    clock.advance(refresher.retry_interval)
    await refresher.tick()
    assert web.fetched(entity) == fetched + 1


# -- notification -----------------------------------------------------------------------------

async def test_registry_admins_are_notified(http, broker, web):
    r = await http.put("/admin/v1/registry/settings",
                       json={"webhook_url": "http://10.1.1.1/hook"}, headers=ADMIN)
    assert r.status_code == 400
    r = await http.put("/admin/v1/registry/settings",
                       json={"webhook_url": "https://hooks.example/registry"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    r2 = await http.put("/admin/v1/registry/settings",
                        json={"webhook_url": "https://hooks.example/registry"}, headers=ADMIN)
    assert r2.json()["secret"] is None and r2.json()["secret_revealed"] is True
    entity = web.entity()
    code = (await invite(http))["code"]
    assert (await register(http, entity, code)).status_code == 201
    for _ in range(100):
        if web.hooks:
            break
        await asyncio.sleep(0.02)
    hook = web.hooks[-1]
    body = json.loads(hook.content)
    assert body["type"] == "partner.registration_pending"
    assert body["data"]["entity_id"] == entity.id
    if secret is not None:  # another test of this session may have revealed it first
        assert webhooks.verify(secret, hook.headers["tessera-signature"], hook.content,
                               now=time.time())
    assert code not in hook.content.decode()
    # a change of keys is news too
    pid = body["data"]["partner"]
    entity.extra_fed.append(ECKey.generate_key("P-256", parameters={"kid": "fed-added"}))
    r = await http.post(f"/admin/v1/partners/{pid}/refresh", headers=ADMIN)
    assert r.json()["changed"] == ["federation_jwks"], r.text
    for _ in range(100):
        if len(web.hooks) > 1:
            break
        await asyncio.sleep(0.02)
    body = json.loads(web.hooks[-1].content)
    assert body["type"] == "partner.keys_refreshed" and body["data"]["partner"] == pid
    assert body["data"]["changed"] == ["federation_jwks"]
    await http.put("/admin/v1/registry/settings", json={"webhook_url": None}, headers=ADMIN)


async def test_fetches_are_rate_limited_for_code_holders_only(http, broker, web, monkeypatch):
    monkeypatch.setattr(partner_registration, "REGISTRATIONS",
                        partner_registration.Window(limit=1))
    first, second = web.entity(), web.entity()
    for _ in range(5):  # guessing codes does not use up the window
        assert (await register(http, first, "tri_guess")).status_code == 400
    code1, code2 = (await invite(http))["code"], (await invite(http))["code"]
    assert (await register(http, first, code1)).status_code == 201
    before = await table_counts(broker)
    r = await register(http, second, code2)
    assert r.status_code == 429 and r.json()["error"] == "temporarily_unavailable", r.text
    assert r.headers["retry-after"] == "60"
    assert await table_counts(broker) == before and web.fetched(second) == 0


async def test_tenant_entity_configuration(http, broker):
    tenant = await new_tenant(broker)
    issuer = broker.issuer(tenant)
    r = await http.get(f"/t/{tenant}/.well-known/openid-federation")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/entity-statement+jwt")
    claims = json.loads(jws.extract_compact(r.text.encode()).payload)
    statement = verify_entity_configuration(r.text, entity_id=issuer, now=time.time())
    assert statement.authority_hints == (REGISTRY_ID,)
    server = statement.metadata["oauth_authorization_server"]
    assert server["issuer"] == issuer and server["jwks_uri"] == f"{issuer}/jwks"
    token_kids = {k["kid"] for k in (await http.get(f"/t/{tenant}/jwks")).json()["keys"]}
    assert token_kids.isdisjoint(k["kid"] for k in claims["jwks"]["keys"])
    # the same keys on the next request (one slot per tenant, made once)
    again = verify_entity_configuration(
        (await http.get(f"/t/{tenant}/.well-known/openid-federation")).text,
        entity_id=issuer, now=time.time())
    assert again.jwks == statement.jwks
    # the registry's Subordinate Statement about the tenant names the same federation keys,
    # so the chain tenant -> registry verifies
    r = await http.get("/registry/fetch", params={"sub": issuer})
    assert r.status_code == 200
    assert json.loads(jws.extract_compact(r.text.encode()).payload)["jwks"] == statement.jwks
    for missing in ("no-such-tenant", "_registry", "%00"):
        r = await http.get(f"/t/{missing}/.well-known/openid-federation")
        assert r.status_code == 404 and r.json()["error"] == "not_found", r.text

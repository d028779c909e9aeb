"""Emergency rotation (``tessera keys compromise``, ``POST .../keys/{kid}/compromise``): a new
key signs at once, the compromised key leaves the JWKS, and everything it signed is refused by
tessera from the next request on every replica (two replicas here, on PostgreSQL too when
``TESSERA_TEST_POSTGRES_URL`` is set); the revocation feed lists it, the tenant's webhook is
told, the audit chain records it."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters import jose
from adapters.errors import Conflict, InvalidRequest, InvalidToken, NotFound
from broker import webhooks
from broker.admin.models.tenants import SecretRotation
from broker.admin.services import webhooks as admin_webhooks
from broker.endpoints.revocation_feed import revocation_list
from broker.id_jag import mint_id_token, verify_id_token
from broker.tokens import verify_access_token
from tests import admin_ops as ops
from tests.admin.admin_helpers import Receiver, events, loopback_replica
from tests.broker.runtime_helpers import access_token, active, admin, replica_http
from tests.conftest import new_client, new_tenant


async def _states(broker, tenant) -> dict[str, str]:
    return {k.kid: k.state for k in await broker.keys.custody(tenant)}


def _kid(token: str) -> str:
    return str(jose.unverified_header(token)["kid"])


async def test_compromise_refuses_old_tokens_on_both_replicas(broker, http, clocked_broker):
    """The acceptance test of the issue: after the emergency rotation a token signed by the
    old key is refused at both replicas on the next request, and a new token verifies with
    the new JWKS."""
    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant)
    async with replica_http(replica) as other:
        old_a = await access_token(http, client)
        old_b = await access_token(other, client)  # the replica's key cache is warm
        kid = _kid(old_a)
        assert _kid(old_b) == kid
        assert await active(http, client, old_a) and await active(other, client, old_a)
        assert kid in {k["kid"] for k in (await other.get(f"{client.issuer}/jwks")).json()[
            "keys"]}

        r = await admin(http, "POST", f"/tenants/{tenant}/keys/{kid}/compromise",
                        {"reason": "key file found on a laptop"})
        assert r.status_code == 200, r.text
        answer = r.json()
        assert answer["kid"] == kid and answer["was"] == "active"
        assert answer["active"] and answer["active"] != kid and answer["next"]

        for value in (old_a, old_b):  # the next request, at each replica
            assert not await active(http, client, value)
            assert not await active(other, client, value)
        for where in (http, other):
            jwks = (await where.get(f"{client.issuer}/jwks")).json()
            assert kid not in {k["kid"] for k in jwks["keys"]}
            assert answer["active"] in {k["kid"] for k in jwks["keys"]}
        # new tokens, from either replica, are signed by the new key and verify with the JWKS
        for where in (other, http):
            fresh = await access_token(where, client)
            assert _kid(fresh) == answer["active"]
            keys = KeySet.import_key_set((await where.get(f"{client.issuer}/jwks")).json())
            assert jwt.decode(fresh, keys).claims["client_id"] == client.client_id
            assert await active(http, client, fresh) and await active(other, client, fresh)


async def test_every_kind_of_token_by_the_key_is_refused(broker, clocked_broker):
    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant)
    view = await broker.tenant(tenant)
    id_token = await mint_id_token(broker, view, subject="alice", client_id=client.client_id)
    kid = _kid(id_token)
    assert (await verify_id_token(replica, await replica.tenant(tenant), id_token,
                                  client.client_id))["sub"] == "alice"
    # a peer tenant verifying this tenant's ID-JAGs asks for the key the same way
    assert await replica.keys.verification_key(tenant, kid) is not None

    await ops.compromise_key(broker, tenant, kid)
    for b in (broker, replica):
        with pytest.raises(InvalidRequest):
            await verify_id_token(b, view, id_token, client.client_id)
        assert await b.keys.verification_key(tenant, kid) is None
    crafted = await _signed_before(broker, tenant, kid)
    with pytest.raises(InvalidToken):
        await verify_access_token(replica, view, crafted)


async def _signed_before(broker, tenant: str, kid: str) -> str:
    """A token that claims the compromised key (its signature cannot be made any more: the
    key is erased): what an attacker holding the key would present."""
    header = {"typ": "at+jwt", "alg": "ES256", "kid": kid}
    claims = {"iss": "x", "sub": "s", "aud": "a", "exp": 2**31, "iat": 1, "jti": "j",
              "client_id": "c"}
    return jose.compact(jose.signing_input(header, claims), b"\x00" * 64)


async def test_key_material_erased_and_state_recorded(broker):
    tenant = await new_tenant(broker)
    kid = next(k.kid for k in await broker.keys.keys(tenant) if k.state == "active")
    await ops.compromise_key(broker, tenant, kid, reason="leaked")
    from tenants.models import SigningKey

    async with broker.sessions() as session:
        row = await session.get(SigningKey, (kid, tenant))
    assert row.state == "compromised" and row.private_blob == b""
    listed = {k["kid"]: k for k in await ops.list_keys(broker, tenant)}
    assert listed[kid]["state"] == "compromised"
    assert sorted(k["state"] for k in listed.values()) == ["active", "compromised", "next"]


async def test_revocation_feed_and_audit_say_so(broker):
    tenant = await new_tenant(broker)
    kid = next(k.kid for k in await broker.keys.keys(tenant) if k.state == "active")
    await ops.compromise_key(broker, tenant, kid, reason="leaked")
    feed = await revocation_list(broker, tenant)
    assert [k["kid"] for k in feed["compromised_keys"]] == [kid]
    assert feed["compromised_keys"][0]["jkt"]
    event = (await events(broker, tenant, "key.compromised"))[-1]
    assert event.outcome == "revoked"
    assert event.detail["kid"] == kid and event.detail["reason"] == "leaked"
    assert event.detail["was"] == "active" and event.detail["activated"]
    assert (await ops.verify_audit(broker, tenant))["intact"]


async def test_tenant_webhook_fires(broker):
    receiver = Receiver()
    replica, _ = loopback_replica(broker)
    try:
        tenant = await new_tenant(replica, webhook_url=receiver.url)
        secret = (await admin_webhooks.rotate_webhook_secret(
            replica, tenant, SecretRotation(overlap_seconds=0))).secret
        kid = next(k.kid for k in await replica.keys.keys(tenant) if k.state == "active")
        answer = await ops.compromise_key(replica, tenant, kid, reason="leaked")
        assert answer["webhook_delivered"] is True
        headers, body = await receiver.nth(1)
        event = json.loads(body)
        assert event["type"] == "key.compromised" and event["tenant"] == tenant
        assert event["data"]["kid"] == kid and event["data"]["active"] == answer["active"]
        assert webhooks.verify(secret, headers["tessera-signature"], body,
                               now=replica.clock.now())
    finally:
        receiver.stop()
        await replica.close()


async def test_compromising_next_or_retiring_keys(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    before = {s: k for k, s in (await _states(broker, tenant)).items()}
    answer = await ops.compromise_key(broker, tenant, before["next"])
    assert answer["was"] == "next" and answer["active"] is None and answer["next"]
    after = {s: k for k, s in (await _states(broker, tenant)).items()}
    assert after["active"] == before["active"]  # the active key is not touched
    assert after["next"] == answer["next"]
    clock.advance(broker.keys.publication_period)
    rotation = await ops.rotate_keys(broker, tenant)
    retiring = rotation["retiring"]
    answer = await ops.compromise_key(broker, tenant, retiring)
    assert answer["was"] == "retiring" and answer["active"] is None and answer["next"] is None
    kids = {k["kid"] for k in (await broker.keys.jwks(tenant))["keys"]}
    assert retiring not in kids and rotation["active"] in kids


async def test_refusals(broker, http):
    tenant = await new_tenant(broker)
    other = await new_tenant(broker)
    kid = next(k.kid for k in await broker.keys.keys(tenant) if k.state == "active")
    with pytest.raises(NotFound):
        await ops.compromise_key(broker, tenant, "no-such-kid")
    with pytest.raises(NotFound):  # tenant isolation: another tenant's key is not ours
        await ops.compromise_key(broker, other, kid)
    assert (await _states(broker, tenant))[kid] == "active"
    await ops.compromise_key(broker, tenant, kid)
    with pytest.raises(Conflict):
        await ops.compromise_key(broker, tenant, kid)
    # over HTTP: JSON errors, never a 500
    r = await admin(http, "POST", f"/tenants/{tenant}/keys/{kid}/compromise", {})
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    r = await admin(http, "POST", f"/tenants/{tenant}/keys/nope/compromise", {})
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = await admin(http, "POST", f"/tenants/{tenant}/keys/x/compromise", {"reason": 3})
    assert r.status_code == 400
    r = await admin(http, "POST", f"/tenants/{tenant}/keys/x/compromise", {"extra": "x"})
    assert r.status_code == 400
    r = await http.post(f"/admin/v1/tenants/{tenant}/keys/{kid}/compromise", json={})
    assert r.status_code == 401
    r = await admin(http, "POST", f"/tenants/ghost-{tenant}/keys/{kid}/compromise", {})
    assert r.status_code == 404
    # a rotation asked too early over HTTP: a 409 JSON error that says when
    r = await admin(http, "POST", f"/tenants/{other}/keys/rotate", {})
    assert r.status_code == 409 and "can sign in" in r.json()["error_description"]

"""The rules every rotation keeps (``tenants.keys.lifecycle``): a key signs only once it has
been published for the JWKS cache lifetime plus a margin; rotations are serialised (409, never
a 500); retiring keys are bounded; and the key custody the admin API shows."""

from __future__ import annotations

import asyncio
import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from adapters import jose
from adapters.errors import Conflict, InvalidToken
from broker.tokens import mint_access_token, verify_access_token
from tenants.keys.lifecycle import JWKS_MAX_AGE, RotationTooEarly
from tenants.models import Tenant
from tests import admin_ops as ops
from tests.admin.admin_helpers import events
from tests.conftest import new_client, new_tenant

HOUR = 3_600


async def _kids(broker, tenant) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key in await broker.keys.keys(tenant):
        out.setdefault(key.state, []).append(key.kid)
    return out


async def _access_token(broker, tenant: str, client_id: str) -> str:
    view = await broker.tenant(tenant)
    now = int(broker.clock.now())
    claims = {"iss": view.issuer, "sub": "u1", "aud": "https://api.example", "iat": now,
              "exp": now + 600, "client_id": client_id, "jti": f"j{time.monotonic_ns()}",
              "scope": "read"}
    return (await mint_access_token(broker, view, claims)).token


def test_publication_period_covers_the_jwks_caches(broker):
    """Relying parties may cache the JWKS for its max-age, replicas for their key cache."""
    assert broker.keys.publication_period >= JWKS_MAX_AGE + 10.0 + 1


async def test_rotation_refused_until_next_was_published_long_enough(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    before = await _kids(broker, tenant)
    with pytest.raises(RotationTooEarly) as refused:
        await ops.rotate_keys(broker, tenant)
    assert refused.value.status == 409 and refused.value.error == "conflict"
    assert before["next"][0] in refused.value.description
    assert "can sign in" in refused.value.description
    assert await _kids(broker, tenant) == before  # nothing changed
    clock.advance(broker.keys.publication_period - 5)
    with pytest.raises(RotationTooEarly):
        await ops.rotate_keys(broker, tenant)
    clock.advance(5)
    rotated = await ops.rotate_keys(broker, tenant)
    assert rotated["active"] == before["next"][0]


async def test_two_quick_rotations_never_activate_an_unpublished_key(clocked_broker):
    """The defect measured with two replicas: the second rotation promoted a key published a
    moment before, unknown to the other replica's JWKS. Now it is refused."""
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    clock.advance(broker.keys.publication_period)
    first = await ops.rotate_keys(broker, tenant)
    with pytest.raises(RotationTooEarly):
        await ops.rotate_keys(broker, tenant)
    assert (await _kids(broker, tenant))["active"] == [first["active"]]
    # what signs is a key published for at least the period
    active = next(k for k in await broker.keys.keys(tenant) if k.state == "active")
    assert active.activated_at - active.created_at >= broker.keys.publication_period


async def test_schedule_waits_for_publication_instead_of_failing(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker, key_rotation_seconds=HOUR)
    kids = await _kids(broker, tenant)
    clock.advance(HOUR - 30)
    # the next key is replaced (compromised) shortly before the rotation is due
    await ops.compromise_key(broker, tenant, kids["next"][0])
    fresh_next = (await _kids(broker, tenant))["next"][0]
    clock.advance(60)  # due now, but the fresh next key is 30 s old
    assert [r for r in await broker.keys.tick() if r.tenant_id == tenant] == []
    assert (await _kids(broker, tenant))["active"] == kids["active"]
    clock.advance(broker.keys.publication_period)
    rotated = [r for r in await broker.keys.tick() if r.tenant_id == tenant]
    assert len(rotated) == 1 and rotated[0].activated == fresh_next


async def test_schedule_follows_each_tenants_period(clocked_broker):
    """The schedule reads each tenant's stored period (not whole rows): a tenant that sets one
    rotates on it, the others on the default, and a stored value the settings model refuses
    counts as the default, as everywhere else."""
    broker, clock = clocked_broker
    hourly = await new_tenant(broker, key_rotation_seconds=HOUR)
    daily = await new_tenant(broker)
    refused = await new_tenant(broker)
    async with broker.sessions() as session, session.begin():
        row = await session.get(Tenant, refused)
        assert row is not None
        row.settings = {**(row.settings or {}), "key_rotation_seconds": 5}  # below the minimum
    clock.advance(HOUR + broker.keys.publication_period)
    rotated = {r.tenant_id for r in await broker.keys.tick()}
    assert hourly in rotated
    assert daily not in rotated and refused not in rotated
    clock.advance(24 * HOUR)
    rotated = {r.tenant_id for r in await broker.keys.tick()}
    assert {hourly, daily, refused} <= rotated


async def test_concurrent_rotations_are_serialised(clocked_broker, broker):
    """Two replicas rotate the same tenant at once: one rotation happens, the other is a 409
    (too early or concurrent), never an error of another kind; one active and one next key."""
    replica, clock = clocked_broker
    tenant = await new_tenant(replica)
    clock.advance(replica.keys.publication_period)
    broker.clock.advance(replica.keys.publication_period)  # type: ignore[attr-defined]
    try:
        outcomes = await asyncio.gather(replica.keys.rotate(tenant), broker.keys.rotate(tenant),
                                        replica.keys.rotate(tenant), return_exceptions=True)
    finally:
        broker.clock.advance(-replica.keys.publication_period)  # type: ignore[attr-defined]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    failed = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(done) == 1, outcomes
    assert all(isinstance(f, Conflict) and f.status == 409 for f in failed), failed
    kids = await _kids(replica, tenant)
    assert len(kids["active"]) == 1 and len(kids["next"]) == 1
    assert kids["active"] == [done[0].activated]


async def test_retiring_keys_are_bounded(clocked_broker):
    broker, clock = clocked_broker
    broker.keys.max_retiring = 2
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant)
    signed_by: dict[str, str] = {}
    for _ in range(4):
        token = await _access_token(broker, tenant, client.client_id)
        signed_by[jose.unverified_header(token)["kid"]] = token
        clock.advance(broker.keys.publication_period)
        rotation = await broker.keys.rotate(tenant)
    kids = await _kids(broker, tenant)
    assert len(kids["retiring"]) == 2
    first, second = list(signed_by)[:2]
    assert rotation.dropped == (second,)  # the oldest retiring key goes first
    published = {k["kid"] for k in (await broker.keys.jwks(tenant))["keys"]}
    assert first not in published and second not in published
    # a token of a key dropped early no longer verifies, though it has not expired
    view = await broker.tenant(tenant)
    with pytest.raises(InvalidToken):
        await verify_access_token(broker, view, signed_by[first])
    third = list(signed_by)[2]
    assert (await verify_access_token(broker, view, signed_by[third]))["iss"] == view.issuer
    detail = (await events(broker, tenant, "key.rotated"))[-1].detail
    assert detail["dropped"] == [second]


def test_max_retiring_must_be_positive(broker):
    from tenants.keys.service import KeyService

    with pytest.raises(ValueError):
        KeyService(broker.sessions, broker.keys._backend, broker.clock, max_retiring=0)


async def test_custody_shows_backend_state_and_dates(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    clock.advance(broker.keys.publication_period)
    await ops.rotate_keys(broker, tenant)
    listed = await ops.list_keys(broker, tenant)
    by_state = {k["state"]: k for k in listed}
    assert set(by_state) == {"active", "next", "retiring"}
    for key in listed:
        assert key["backend"] == "software" and key["created_at"] > 0
        assert key["age_seconds"] >= 0
    assert by_state["active"]["activated_at"] is not None
    assert by_state["retiring"]["retiring_at"] is not None
    assert by_state["retiring"]["retire_after"] > by_state["retiring"]["retiring_at"]
    assert by_state["next"]["activated_at"] is None


async def test_signature_still_verifies_with_published_jwks_after_rotation(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    clock.advance(broker.keys.publication_period)
    await ops.rotate_keys(broker, tenant)
    token = await broker.keys.sign(tenant, {"typ": "JWT"}, {"a": 1})
    assert jwt.decode(token, KeySet.import_key_set(await broker.keys.jwks(tenant))).claims == {
        "a": 1}

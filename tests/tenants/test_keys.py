"""The key service: states, JWKS, signing without exposing keys, rotation by hand and schedule."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select, update

from adapters import jose
from tenants.keys.software import SoftwareBackend
from tenants.models import SigningKey
from tests import admin_ops as ops
from tests.conftest import new_tenant

DAY = 86_400


async def _states(broker, tenant):
    return sorted(k.state for k in await broker.keys.keys(tenant))


async def test_new_tenant_has_active_and_next_key(broker):
    tenant = await new_tenant(broker)
    assert await _states(broker, tenant) == ["active", "next"]
    jwks = await broker.keys.jwks(tenant)
    assert len(jwks["keys"]) == 2
    for key in jwks["keys"]:
        assert key["use"] == "sig" and key["alg"] == "ES256" and key["kid"]
        assert "d" not in key


async def test_signature_verifies_with_published_jwks(broker):
    tenant = await new_tenant(broker)
    token = await broker.keys.sign(tenant, {"typ": "JWT"}, {"hello": "world"})
    keys = KeySet.import_key_set(await broker.keys.jwks(tenant))
    assert jwt.decode(token, keys).claims == {"hello": "world"}
    active = next(k for k in await broker.keys.keys(tenant) if k.state == "active")
    assert jose.unverified_header(token)["kid"] == active.kid


@pytest.mark.parametrize("alg", ["EdDSA", "RS256"])
async def test_other_algorithms(broker, alg):
    tenant = await new_tenant(broker, key_alg=alg)
    token = await broker.keys.sign(tenant, {}, {"a": 1})
    assert jose.unverified_header(token)["alg"] == alg
    keys = KeySet.import_key_set(await broker.keys.jwks(tenant))
    assert jwt.decode(token, keys, algorithms=[alg]).claims == {"a": 1}


async def test_private_keys_stored_wrapped_and_bound_to_their_row(broker):
    tenant = await new_tenant(broker)
    async with broker.sessions() as session:
        row = (await session.execute(select(SigningKey).where(
            SigningKey.tenant_id == tenant, SigningKey.state == "active"))).scalar_one()
    assert b"PRIVATE" not in row.private_blob and len(row.private_blob) > 40
    other = SoftwareBackend(b"\x01" * 32)
    with pytest.raises(Exception):  # noqa: B017 - any unwrap failure
        other.sign(row.alg, row.private_blob, b"x", context=f"{tenant}|{row.kid}".encode())
    # the same master key refuses the handle when it is presented for another tenant
    with pytest.raises(Exception):  # noqa: B017
        broker.keys._backend.sign(row.alg, row.private_blob, b"x",
                                  context=f"other|{row.kid}".encode())


async def test_rotation_promotes_next_and_old_tokens_keep_validating(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    before = {k.state: k.kid for k in await broker.keys.keys(tenant)}
    old_token = await broker.keys.sign(tenant, {}, {"n": 1})

    clock.advance(broker.keys.publication_period)  # the next key has been published long enough
    result = await ops.rotate_keys(broker, tenant)
    after = {k.state: k.kid for k in await broker.keys.keys(tenant)}
    assert result["active"] == before["next"] == after["active"]
    assert result["retiring"] == before["active"] == after["retiring"]
    assert after["next"] not in before.values()
    new_token = await broker.keys.sign(tenant, {}, {"n": 2})
    assert jose.unverified_header(new_token)["kid"] == after["active"]
    # the old token's key is still published and verifies
    kid = jose.unverified_header(old_token)["kid"]
    assert await broker.keys.verification_key(tenant, kid) is not None
    assert len((await broker.keys.jwks(tenant))["keys"]) == 3

    # once every token it signed has expired, the retiring key leaves the JWKS
    clock.advance(3_600 + broker.keys.retire_margin + 1)
    await broker.keys.tick()
    broker.keys.invalidate(tenant)
    kids = {k["kid"] for k in (await broker.keys.jwks(tenant))["keys"]}
    assert kid not in kids and after["active"] in kids
    assert await broker.keys.verification_key(tenant, kid) is None
    async with broker.sessions() as session:
        row = await session.get(SigningKey, (kid, tenant))
    assert row.state == "retired" and row.private_blob == b""


async def test_schedule_rotates_after_the_period_only(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker, key_rotation_seconds=DAY)
    active = next(k.kid for k in await broker.keys.keys(tenant) if k.state == "active")
    clock.advance(DAY - 60)
    rotated = [r.tenant_id for r in await broker.keys.tick()]
    assert tenant not in rotated
    clock.advance(120)
    rotated = [r for r in await broker.keys.tick() if r.tenant_id == tenant]
    assert len(rotated) == 1 and rotated[0].retiring == active
    assert await _states(broker, tenant) == ["active", "next", "retiring"]


async def test_rotation_without_an_active_key_leaves_exactly_one(clocked_broker):
    broker, clock = clocked_broker
    tenant = await new_tenant(broker)
    active = next(k.kid for k in await broker.keys.keys(tenant) if k.state == "active")
    # another replica demoted the key before this one rotated
    async with broker.sessions() as session, session.begin():
        await session.execute(update(SigningKey).where(
            SigningKey.tenant_id == tenant, SigningKey.kid == active).values(state="retiring"))
    clock.advance(broker.keys.publication_period)
    await ops.rotate_keys(broker, tenant)  # still one active key afterwards
    assert (await _states(broker, tenant)).count("active") == 1


async def test_system_slot_keys_rotate_on_the_schedule(clocked_broker):
    """The registry's federation keys (slot ``_registry``-like) rotate like a tenant's."""
    broker, clock = clocked_broker
    slot = "_test-slot-" + str(id(clock))
    await broker.keys.ensure(slot)
    active = next(k.kid for k in await broker.keys.keys(slot) if k.state == "active")
    clock.advance(DAY + 1)
    rotated = [r for r in await broker.keys.tick() if r.tenant_id == slot]
    assert len(rotated) == 1 and rotated[0].retiring == active
    assert await _states(broker, slot) == ["active", "next", "retiring"]


def test_software_handle_stays_bound_after_its_key_was_unwrapped():
    """The unwrapped-key cache must not let a handle sign for another row once used."""
    backend = SoftwareBackend(b"\x02" * 32)
    generated = backend.generate("ES256", context=b"acme|k1")
    assert len(backend.sign("ES256", generated.handle, b"x", context=b"acme|k1")) == 64
    with pytest.raises(Exception):  # noqa: B017 - the AEAD refuses the other context
        backend.sign("ES256", generated.handle, b"x", context=b"other|k1")


def test_software_keys_sign_only_their_own_algorithm():
    """A handle signs with the algorithm of the key it wraps and nothing else, also once the
    key is unwrapped (its algorithm is found then and kept with it)."""
    backend = SoftwareBackend(b"\x03" * 32)
    keys = {alg: backend.generate(alg, context=f"acme|{alg}".encode())
            for alg in ("ES256", "EdDSA", "RS256")}
    for _ in range(2):
        for alg, generated in keys.items():
            context = f"acme|{alg}".encode()
            signature = backend.sign(alg, generated.handle, b"x", context=context)
            assert len(signature) == {"ES256": 64, "EdDSA": 64, "RS256": 256}[alg]
            for other in ("ES256", "EdDSA", "RS256", "ES384", "none"):
                if other != alg:
                    with pytest.raises(ValueError, match=f"key does not sign {other}"):
                        backend.sign(other, generated.handle, b"x", context=context)

"""Master-key rotation (``tenants.master_key_rotation``): prepare, re-wrap interrupted halfway
and resumed, with no signing key, sealed secret or secret hash lost; the old key accepted until
the re-wrap is done and refused after; the key-check values follow. On a SQLite file of its own
(the rotation re-wraps a whole database)."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from broker import webhooks
from broker.config import Settings, StartupError, create_secret_file, parse_master_key
from broker.deployment import Mode, open_deployment
from broker.runtime import Broker
from tenants import deployment, master_key_rotation, sealed_values
from tenants.db import create_engine
from tenants.keys.software import SoftwareBackend
from tenants.master_key_rotation import RotationError
from tenants.models import Client, SigningKey, Upstream, WebhookSecret
from tenants.scope import tenant_scope
from tenants.secrets import Sealer
from tests import admin_ops as ops
from tests.conftest import ADMIN_TOKEN, BASE_URL

TENANTS = ("acme", "globex", "initech")


async def _populate(broker: Broker) -> dict[str, dict[str, str]]:
    """Tenants with keys, webhook secrets (one rotated: a previous sealed value too), clients
    with secrets and an upstream's sealed client secret; what each secret is in clear."""
    known: dict[str, dict[str, str]] = {}
    for name in TENANTS:
        await ops.create_tenant(broker, name)
        client = await ops.create_client(broker, name, name="agent")
        async with tenant_scope(broker.sessions, name) as scope:
            scope.add(Upstream(name="corp", kind="oidc", display_name="Corp", config={
                "issuer": "https://idp.corp.example",
                sealed_values.UPSTREAM_SECRET: broker.sealer.seal(
                    f"upstream-secret-{name}",
                    sealed_values.upstream_secret_context(name, "corp"))},
                mapping={}, domains=[], status="active", created_at=time.time()))
        known[name] = {"client_id": client["client_id"], "secret": client["client_secret"],
                       "webhook": (await webhooks.signing_secrets(broker, name))[0]}
    return known


async def _check_everything(broker: Broker, known: dict[str, dict[str, str]]) -> None:
    """Every tenant signs with its keys, and every sealed value and hash still works."""
    for name, values in known.items():
        token = await broker.keys.sign(name, {"typ": "JWT"}, {"t": name})
        assert jwt.decode(token, KeySet.import_key_set(await broker.keys.jwks(name))).claims == {
            "t": name}
        assert values["webhook"] in await webhooks.signing_secrets(broker, name)
        async with broker.sessions() as session:
            client = await session.get(Client, (values["client_id"], name))
            upstream = await session.get(Upstream, ("corp", name))
        assert broker.hasher.verify(values["secret"], client.secret_hash)
        assert broker.sealer.open(upstream.config[sealed_values.UPSTREAM_SECRET],
                                  sealed_values.upstream_secret_context(name, "corp")) == \
            f"upstream-secret-{name}"


async def _under(engine, key: bytes) -> tuple[int, int]:
    """(values under ``key``, values not under it): signing keys and webhook secrets."""
    backend, sealer = SoftwareBackend(key), Sealer(key)
    async with engine.connect() as conn:
        keys = (await conn.execute(select(SigningKey.tenant_id, SigningKey.kid,
                                          SigningKey.private_blob).where(
            SigningKey.backend == "software", SigningKey.state != "retired"))).all()
        hooks = (await conn.execute(select(WebhookSecret.tenant_id,
                                           WebhookSecret.sealed))).all()
    yes = sum(backend.opens(bytes(b), f"{t}|{k}".encode()) for t, k, b in keys)
    for tenant, sealed in hooks:
        try:
            sealer.open(sealed, sealed_values.webhook_context(tenant))
            yes += 1
        except Exception:
            pass
    return yes, len(keys) + len(hooks) - yes


async def test_rotation_interrupted_halfway_then_resumed_loses_nothing(tmp_path):
    old_file, new_file = tmp_path / "master.key", tmp_path / "master.key.new"
    base = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/tessera.db",
                    base_url=BASE_URL, master_key_file=str(old_file),
                    admin_token=ADMIN_TOKEN, demo=False)
    opened = await open_deployment(base, Mode.INIT, admin_token=True)
    first = Broker.build(opened.settings)
    known = await _populate(first)
    await first.close()
    old = parse_master_key(old_file.read_text(), "old")
    new = parse_master_key(create_secret_file(new_file, "new master key"), "new")

    # 1. prepare (with the old key): the new key becomes a key of the database
    engine = create_engine(base.database_url)
    try:
        with pytest.raises(RotationError):
            await master_key_rotation.prepare(engine, old, old, time.time())
        check = await master_key_rotation.prepare(engine, old, new, time.time())
        found = await deployment.inspect_database(engine)
        assert found.matches(check) and found.matches(deployment.key_check(old))
        # a rewrap with the keys the wrong way round is refused, nothing changed
        with pytest.raises(RotationError, match="swap"):
            await master_key_rotation.rewrap(engine, old, new)

        # 2. replicas hold both keys: first old + accepted new, then new + accepted old
        both_old = base.replace(master_key_accepted_file=str(new_file))
        both_new = base.replace(master_key_file=str(new_file),
                                master_key_accepted_file=str(old_file))
        replica = Broker.build((await open_deployment(both_new, Mode.USE)).settings)
        await _check_everything(replica, known)

        # 3. the re-wrap, interrupted after 4 values: half the values under each key
        progress = await master_key_rotation.rewrap(engine, new, old, batch=2, stop_after=4)
        assert not progress.finished and progress.rewrapped == 4
        moved, left = await _under(engine, new)
        assert moved == 4 and left > 0
        # meanwhile: every replica still works, and a process with only the old key starts
        replica.keys.invalidate("acme")
        await _check_everything(replica, known)
        other = Broker.build((await open_deployment(both_old, Mode.USE)).settings)
        await _check_everything(other, known)
        await other.close()
        only_old = await open_deployment(base, Mode.USE)  # old key accepted until done
        assert only_old.key_id == deployment.key_check(old).key_id

        # 4. resumed: everything under the new key; the old key's check value is gone
        progress = await master_key_rotation.rewrap(engine, new, old, batch=2)
        assert progress.finished
        assert progress.by_kind["upstreams"] == len(TENANTS)
        assert (await _under(engine, new))[1] == 0
        found = await deployment.inspect_database(engine)
        assert found.matches(deployment.key_check(new))
        assert not found.matches(deployment.key_check(old))
        facts = await master_key_rotation._facts(engine)
        assert master_key_rotation.ROTATION not in facts
        await replica.close()
    finally:
        await engine.dispose()

    # 5. the new key alone does everything; secret hashes, NameIDs and derived webhook
    #    secrets keep their root; the old key is refused now
    only_new = await open_deployment(base.replace(master_key_file=str(new_file)), Mode.USE)
    assert only_new.settings.key_root  # the root carried over from the first key
    assert parse_master_key(only_new.settings.key_root, "root") == old
    after = Broker.build(only_new.settings)
    await _check_everything(after, known)
    await after.close()
    with pytest.raises(StartupError, match="not the key"):
        await open_deployment(base, Mode.USE)
    # an accepted key the database no longer knows is ignored, not fatal
    leftover = await open_deployment(base.replace(master_key_file=str(new_file),
                                                  master_key_accepted_file=str(old_file)),
                                     Mode.USE)
    assert leftover.settings.master_key_accepted == ""


async def test_rewrap_without_a_rotation_is_refused(tmp_path):
    base = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/tessera.db",
                    base_url=BASE_URL, master_key_file=str(tmp_path / "master.key"),
                    admin_token=ADMIN_TOKEN, demo=False)
    opened = await open_deployment(base, Mode.INIT, admin_token=True)
    b = Broker.build(opened.settings)
    try:
        master = opened.settings.master_key_bytes()
        with pytest.raises(RotationError, match="no master-key rotation"):
            await master_key_rotation.rewrap(b.engine, master, b"\x01" * 32)
    finally:
        await b.close()

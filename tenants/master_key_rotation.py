"""Master-key rotation, online and resumable: every value wrapped or sealed under the old master
key (``tenants.sealed_values``) is re-wrapped under the new one while the deployment serves.

The steps (``tessera master-key``, README "Rotating the master key"):

1. ``prepare`` (run with the current key): records the new key's check value in the next
   ``master_key_check:<n>`` slot, so processes accept it, and carries the **key root** over to
   it (below). Nothing is re-wrapped yet; ``master_key_rotation`` names the two keys.
2. Every replica restarts holding both keys: first ``master key = old, accepted = new``, then
   ``master key = new, accepted = old``. A process opens values under either key and writes
   under its master key, so no replica ever meets a value it cannot open.
3. ``rewrap`` (run with master key = new, accepted = old): walks every wrapped value in
   batches, each batch its own transaction; a value already under the new key is left alone,
   and each update is conditional on the value still being the one read (a replica that
   changed it meanwhile wins). Interrupted, it is simply run again. When a whole pass finds
   nothing left under the old key, the old key's check value and key root are deleted, and the
   rotation fact: from then on the old key is refused at startup.

The key root. Secret hashes (client secrets, API keys), persistent SAML NameIDs, the DPoP nonce
key and legacy webhook secrets are derived from a root secret that must not change, or every
client secret would stop verifying. The root is the deployment's first master key; once a
rotation happened it is stored as ``key_root:<key id>``, sealed under that key. Rotating the
master key re-protects what is encrypted; it does not change these derived values (an attacker
who held the old key can still compute them: they protect hashes of 256-bit random secrets and
pseudonymous identifiers, nothing that decrypts).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants import sealed_values
from tenants.deployment import CHECK_PREFIX, KeyCheck, key_check
from tenants.keys.software import SoftwareBackend
from tenants.models import CibaRequest, DeploymentFact, SigningKey, Upstream, WebhookSecret
from tenants.secrets import Sealer

ROTATION = "master_key_rotation"
ROOT_PREFIX = "key_root:"
_F = DeploymentFact.__table__


class RotationError(Exception):
    """The rotation cannot go on as asked (message says why and what to do)."""


@dataclass(frozen=True)
class Progress:
    rewrapped: int  # values moved onto the new key by this run
    finished: bool  # nothing left under the old key; the old key is no longer accepted
    by_kind: dict[str, int]


async def _facts(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as conn:
        return {n: v for n, v in await conn.execute(select(_F.c.name, _F.c.value))}


async def key_root(engine: AsyncEngine, master_key: bytes) -> bytes:
    """The root of the derived secrets for a process holding ``master_key``."""
    sealed = (await _facts(engine)).get(ROOT_PREFIX + key_check(master_key).key_id)
    if sealed is None:
        return master_key
    opened = Sealer(master_key).open(sealed, sealed_values.KEY_ROOT_CONTEXT)
    return base64.b64decode(opened)


def rotation_of(facts: dict[str, str]) -> dict[str, Any] | None:
    raw = facts.get(ROTATION)
    return json.loads(raw) if raw else None


async def prepare(engine: AsyncEngine, current: bytes, new: bytes, now: float) -> KeyCheck:
    """Make ``new`` a key of this deployment beside ``current`` (which the caller proved)."""
    if new == current:
        raise RotationError("the new master key is the current one")
    if len(new) < 32:
        raise RotationError("the new master key must be at least 32 bytes")
    old_check, new_check = key_check(current), key_check(new)
    facts = await _facts(engine)
    under_way = rotation_of(facts)
    if under_way is not None and under_way["to"] != new_check.key_id:
        raise RotationError(f"a rotation to key {under_way['to']} is under way; finish it "
                            "(`tessera master-key rewrap`) first")
    root = await key_root(engine, current)
    slots = [int(n.removeprefix(CHECK_PREFIX)) for n in facts if n.startswith(CHECK_PREFIX)
             and n.removeprefix(CHECK_PREFIX).isdigit()]
    rows: dict[str, str] = {
        ROOT_PREFIX + new_check.key_id: Sealer(new).seal(
            base64.b64encode(root).decode(), sealed_values.KEY_ROOT_CONTEXT),
        ROTATION: json.dumps({"from": old_check.key_id, "to": new_check.key_id,
                              "started_at": now}),
    }
    if new_check.value not in facts.values():
        rows[f"{CHECK_PREFIX}{max(slots, default=0) + 1}"] = new_check.value
    async with engine.begin() as conn:
        for name, value in rows.items():
            await conn.execute(delete(_F).where(_F.c.name == name))
            await conn.execute(_F.insert().values(name=name, value=value, created_at=now))
    return new_check


Step = Callable[[Connection, SoftwareBackend, Sealer, int, int], int]


async def rewrap(engine: AsyncEngine, master: bytes, old: bytes, *, batch: int = 100,
                 stop_after: int | None = None,
                 on_batch: Callable[[int], Awaitable[None]] | None = None) -> Progress:
    """Move every value onto ``master`` (the new key) from ``old``; see the module docstring.
    ``stop_after``: stop once that many values were moved (to resume later; tests use it)."""
    facts = await _facts(engine)
    under_way = rotation_of(facts)
    new_id, old_id = key_check(master).key_id, key_check(old).key_id
    if under_way is None:
        raise RotationError("no master-key rotation is under way (`tessera master-key "
                            "prepare` starts one)")
    if under_way["to"] != new_id or under_way["from"] != old_id:
        raise RotationError(f"the rotation under way goes from key {under_way['from']} to "
                            f"{under_way['to']}; this process holds {new_id} as master key "
                            f"and {old_id} as the old one (swap them?)")
    backend = SoftwareBackend(master, accepted=(old,))
    sealer = Sealer(master, accepted=(old,))
    moved: dict[str, int] = {}
    total = 0
    while True:
        in_pass = 0
        for kind, step in _STEPS:
            offset = 0
            while True:
                async with engine.begin() as conn:
                    done, seen = await conn.run_sync(step, backend, sealer, offset, batch)
                moved[kind] = moved.get(kind, 0) + done
                total += done
                in_pass += done
                offset += batch
                if on_batch is not None:
                    await on_batch(done)
                if stop_after is not None and total >= stop_after:
                    return Progress(total, False, moved)
                if seen < batch:
                    break
        if in_pass == 0:
            break
    async with engine.begin() as conn:
        slot = next((n for n, v in facts.items() if n.startswith(CHECK_PREFIX)
                     and v == key_check(old).value), None)
        if slot is not None:
            await conn.execute(delete(_F).where(_F.c.name == slot))
        await conn.execute(delete(_F).where(_F.c.name.in_([ROOT_PREFIX + old_id, ROTATION])))
    return Progress(total, True, moved)


def _signing_keys(conn: Connection, backend: SoftwareBackend, _sealer: Sealer, offset: int,
                  limit: int) -> tuple[int, int]:
    K = SigningKey.__table__
    rows = conn.execute(select(K.c.tenant_id, K.c.kid, K.c.private_blob)
                        .where(K.c.backend == "software", func.length(K.c.private_blob) > 0)
                        .order_by(K.c.tenant_id, K.c.kid).offset(offset).limit(limit)).all()
    done = 0
    for tenant_id, kid, blob in rows:
        try:
            fresh = backend.rewrap(bytes(blob), f"{tenant_id}|{kid}".encode())
        except InvalidTag:
            raise _lost(f"signing key {tenant_id}/{kid}") from None
        if fresh is not None:
            done += conn.execute(update(K).where(
                K.c.tenant_id == tenant_id, K.c.kid == kid, K.c.private_blob == blob)
                .values(private_blob=fresh)).rowcount
    return done, len(rows)


def _webhook_secrets(conn: Connection, _backend: SoftwareBackend, sealer: Sealer, offset: int,
                     limit: int) -> tuple[int, int]:
    W = WebhookSecret.__table__
    rows = conn.execute(select(W.c.tenant_id, W.c.sealed, W.c.previous_sealed)
                        .order_by(W.c.tenant_id).offset(offset).limit(limit)).all()
    done = 0
    for tenant_id, sealed, previous in rows:
        context = sealed_values.webhook_context(tenant_id)
        values: dict[str, Any] = {}
        for column, value in (("sealed", sealed), ("previous_sealed", previous)):
            if value:
                fresh = _reseal(sealer, value, context, f"webhook secret of {tenant_id}")
                if fresh is not None:
                    values[column] = fresh
        if values:
            done += conn.execute(update(W).where(
                W.c.tenant_id == tenant_id, W.c.sealed == sealed,
                W.c.previous_sealed.is_(None) if previous is None
                else W.c.previous_sealed == previous).values(**values)).rowcount
    return done, len(rows)


def _upstreams(conn: Connection, _backend: SoftwareBackend, sealer: Sealer, offset: int,
               limit: int) -> tuple[int, int]:
    U = Upstream.__table__
    rows = conn.execute(select(U.c.tenant_id, U.c.name, U.c.config)
                        .order_by(U.c.tenant_id, U.c.name).offset(offset).limit(limit)).all()
    done = 0
    for tenant_id, name, config in rows:
        sealed = (config or {}).get(sealed_values.UPSTREAM_SECRET)
        if not sealed:
            continue
        fresh = _reseal(sealer, sealed, sealed_values.upstream_secret_context(tenant_id, name),
                        f"upstream {tenant_id}/{name}")
        if fresh is not None:
            current = conn.execute(select(U.c.config).where(
                U.c.tenant_id == tenant_id, U.c.name == name)).scalar()
            if current == config:  # unchanged since read
                done += conn.execute(update(U).where(U.c.tenant_id == tenant_id,
                                                     U.c.name == name).values(
                    config={**config, sealed_values.UPSTREAM_SECRET: fresh})).rowcount
    return done, len(rows)


def _ciba(conn: Connection, _backend: SoftwareBackend, sealer: Sealer, offset: int,
          limit: int) -> tuple[int, int]:
    C = CibaRequest.__table__
    rows = conn.execute(select(C.c.tenant_id, C.c.handle, C.c.client_id,
                               C.c.notification_token_sealed, C.c.context)
                        .order_by(C.c.tenant_id, C.c.handle).offset(offset).limit(limit)).all()
    done = 0
    for tenant_id, handle, client_id, token, context in rows:
        values: dict[str, Any] = {}
        if token:
            fresh = _reseal(sealer, token, sealed_values.ciba_context(tenant_id, client_id, "cnt"),
                            f"CIBA request of {tenant_id}")
            if fresh is not None:
                values["notification_token_sealed"] = fresh
        sealed_id = (context or {}).get(sealed_values.CIBA_ID)
        if sealed_id:
            fresh = _reseal(sealer, sealed_id, sealed_values.ciba_context(tenant_id, client_id,
                                                                          "id"),
                            f"CIBA request of {tenant_id}")
            if fresh is not None:
                values["context"] = {**context, sealed_values.CIBA_ID: fresh}
        if values:
            done += conn.execute(update(C).where(C.c.tenant_id == tenant_id,
                                                 C.c.handle == handle).values(**values)).rowcount
    return done, len(rows)


def _reseal(sealer: Sealer, value: str, context: str, what: str) -> str | None:
    try:
        return sealer.reseal(value, context)
    except (InvalidTag, ValueError):
        raise _lost(what) from None


def _lost(what: str) -> RotationError:
    return RotationError(f"the {what} opens with neither the new nor the old master key; "
                         "nothing more was changed (restore it from a backup, or remove it, "
                         "and run again)")


_STEPS: tuple[tuple[str, Any], ...] = (
    ("signing_keys", _signing_keys), ("webhook_secrets", _webhook_secrets),
    ("upstreams", _upstreams), ("ciba_requests", _ciba))

"""API keys of a tenant: issue, rotate with an overlap window, revoke, list, and check a
presented key (the format is ``adapters.api_keys``).

At rest a key is its public ``key_id`` and a keyed hash (``SecretHasher``) of the whole key;
the key itself is returned once, by ``create`` or ``rotate``. After a rotation the previous
key keeps working until ``previous_valid_until``. Audit events name keys by their redacted
form (``tsk_<tenant>_<key_id>_…``), never with the secret.

``check`` is on the hot path: one indexed read (the key joined with its client), the hash
comparison, and a write of ``last_used_at`` at most once per ``TOUCH_INTERVAL`` per key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from adapters import api_keys as fmt
from tenants import audit
from tenants.hotpath import HotPath
from tenants.models import ApiKey, Client
from tenants.scope import TenantScope
from tenants.secrets import SecretHasher

TOUCH_INTERVAL = 60.0  # seconds between two writes of a key's last_used_at
MAX_OVERLAP = 7 * 86_400  # how long a rotated-out key may keep working
MAX_NAME = 200


class ApiKeyError(ValueError):
    """An administrative request about API keys that cannot be honoured."""


class ApiKeyRefused(Exception):
    """A presented key does not authenticate; ``reason`` is safe to show its presenter:
    ``unknown`` (no such key, or the secret does not match), ``revoked``, ``expired``,
    ``client disabled``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ActiveKey:
    """A key that checked out, with what requests are judged by."""

    tenant_id: str
    key_id: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: float | None
    client_scopes: tuple[str, ...]
    client_audiences: tuple[str, ...]
    via_previous: bool  # presented the rotated-out secret, inside the overlap window


def key_json(row: ApiKey, now: float) -> dict[str, Any]:
    """What may be shown of a key (never its hashes)."""
    expired = row.expires_at is not None and row.expires_at <= now
    return {
        "tenant": row.tenant_id, "key_id": row.key_id,
        "redacted": fmt.ParsedKey(row.tenant_id, row.key_id, "").redacted,
        "client_id": row.client_id, "name": row.name, "scopes": list(row.scopes or []),
        "status": "expired" if row.status == "active" and expired else row.status,
        "expires_at": _int(row.expires_at), "created_at": _int(row.created_at),
        "rotated_at": _int(row.rotated_at), "last_used_at": _int(row.last_used_at),
        "previous_valid_until": _int(row.previous_valid_until)
        if row.previous_valid_until and row.previous_valid_until > now else None,
    }


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


async def create(
    scope: TenantScope, *, client_id: str, name: str, scopes: Sequence[str],
    expires_at: float | None, hasher: SecretHasher, now: float,
) -> tuple[ApiKey, str]:
    """A new key for ``client_id`` (the client it acts as); returns the row and the key,
    which is shown this once. No ``scopes``: all of the client's."""
    client = await scope.get(Client, client_id)
    if client is None:
        raise ApiKeyError(f"no client {client_id!r} in tenant {scope.tenant_id!r}")
    if client.status != "active":
        raise ApiKeyError(f"client {client_id!r} is not active")
    if not name or len(name) > MAX_NAME:
        raise ApiKeyError(f"name: 1-{MAX_NAME} characters")
    wanted = list(dict.fromkeys(scopes)) if scopes else list(client.scopes or [])
    outside = [s for s in wanted if s not in (client.scopes or [])]
    if outside:
        raise ApiKeyError(f"scope not allowed for this client: {' '.join(outside)}")
    if expires_at is not None and expires_at <= now:
        raise ApiKeyError("expires_at must be in the future")
    while True:
        key_id, _, key = fmt.new_key(scope.tenant_id)
        if await scope.get(ApiKey, key_id) is None:
            break
    row = scope.add(ApiKey(
        key_id=key_id, client_id=client_id, name=name, scopes=wanted,
        secret_hash=hasher.hash(key), status="active", expires_at=expires_at, created_at=now,
    ))
    await scope.session.flush()
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "api_key.created", "changed", client_id,
        detail={"key_id": key_id, "key": _redacted(row), "name": name, "scopes": wanted,
                "expires_at": expires_at})], now)
    return row, key


async def rotate(
    scope: TenantScope, key_id: str, *, overlap_seconds: int, hasher: SecretHasher, now: float,
) -> tuple[ApiKey, str]:
    """A fresh secret under the same key id; the previous key works for ``overlap_seconds``
    more (0: not at all). A second rotation inside a window ends the first window."""
    if not 0 <= overlap_seconds <= MAX_OVERLAP:
        raise ApiKeyError(f"overlap: 0..{MAX_OVERLAP} seconds")
    row = await _existing(scope, key_id)
    if row.status != "active":
        raise ApiKeyError(f"API key {key_id!r} is {row.status}")
    if row.expires_at is not None and row.expires_at <= now:
        raise ApiKeyError(f"API key {key_id!r} has expired")
    _, key = fmt.with_new_secret(scope.tenant_id, key_id)
    row.previous_secret_hash = row.secret_hash if overlap_seconds else None
    row.previous_valid_until = now + overlap_seconds if overlap_seconds else None
    row.secret_hash = hasher.hash(key)
    row.rotated_at = now
    await scope.session.flush()
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "api_key.rotated", "changed", row.client_id,
        detail={"key_id": key_id, "key": _redacted(row), "overlap_seconds": overlap_seconds,
                "previous_valid_until": row.previous_valid_until})], now)
    return row, key


async def revoke(scope: TenantScope, key_id: str, now: float) -> ApiKey:
    """Revoke at once (the previous key of a rotation with it); revoking again changes
    nothing."""
    row = await _existing(scope, key_id)
    if row.status == "revoked":
        return row
    row.status = "revoked"
    row.previous_secret_hash, row.previous_valid_until = None, None
    await scope.session.flush()
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "api_key.revoked", "revoked", row.client_id,
        detail={"key_id": key_id, "key": _redacted(row)})], now)
    return row


async def list_keys(scope: TenantScope, client_id: str | None = None) -> Sequence[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
    if client_id is not None:
        stmt = stmt.where(ApiKey.client_id == client_id)
    return (await scope.session.execute(stmt)).scalars().all()


async def get(scope: TenantScope, key_id: str) -> ApiKey:
    return await _existing(scope, key_id)


async def _existing(scope: TenantScope, key_id: str) -> ApiKey:
    row = await scope.get(ApiKey, key_id) if fmt.is_key_id(key_id) else None
    if row is None:
        raise LookupError(key_id)
    return row


def _redacted(row: ApiKey) -> str:
    return fmt.ParsedKey(row.tenant_id, row.key_id, "").redacted


# -- the hot path ------------------------------------------------------------------------

_K, _C = ApiKey.__table__, Client.__table__
_CHECK = (
    select(_K.c.key_id, _K.c.client_id, _K.c.scopes, _K.c.secret_hash,
           _K.c.previous_secret_hash, _K.c.previous_valid_until, _K.c.status, _K.c.expires_at,
           _K.c.last_used_at, _C.c.status.label("client_status"),
           _C.c.scopes.label("client_scopes"), _C.c.audiences.label("client_audiences"))
    .select_from(_K.outerjoin(_C, and_(_C.c.tenant_id == _K.c.tenant_id,
                                       _C.c.client_id == _K.c.client_id)))
    .where(_K.c.tenant_id == bindparam("tenant_id"), _K.c.key_id == bindparam("key_id"))
)


def judge(tenant_id: str, row: Any, key: fmt.ParsedKey, hasher: SecretHasher,
          now: float) -> ActiveKey:
    """The rules, in order (pure): the secret must match the current key, or the previous
    one inside its overlap window, before anything else about the key is told; then the key
    must be active and unexpired and its client active."""
    if row is None or key.tenant != tenant_id:
        raise ApiKeyRefused("unknown")
    current = hasher.verify(key.value, row.secret_hash)
    previous = not current and row.previous_valid_until is not None \
        and now < row.previous_valid_until and hasher.verify(key.value, row.previous_secret_hash)
    if not (current or previous):
        raise ApiKeyRefused("unknown")
    if row.status != "active":
        raise ApiKeyRefused("revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise ApiKeyRefused("expired")
    if row.client_status != "active":
        raise ApiKeyRefused("client disabled")
    return ActiveKey(tenant_id, row.key_id, row.client_id, tuple(row.scopes or ()),
                     row.expires_at, tuple(row.client_scopes or ()),
                     tuple(row.client_audiences or ()), previous)


async def check(hot: HotPath, tenant_id: str, key: fmt.ParsedKey, hasher: SecretHasher,
                now: float, *, client_id: str | None = None) -> ActiveKey:
    """Authenticate a presented key of ``tenant_id`` (raises ``ApiKeyRefused``; with
    ``client_id``, ``other client`` when the key is another client's) and note its use."""
    if key.tenant != tenant_id:
        raise ApiKeyRefused("unknown")
    row = await hot.read_one(_CHECK, {"tenant_id": tenant_id, "key_id": key.key_id})
    active = judge(tenant_id, row, key, hasher, now)
    if client_id is not None and active.client_id != client_id:
        raise ApiKeyRefused("other client")
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_INTERVAL:
        await touch(hot, tenant_id, key.key_id, now)
    return active


async def touch(hot: HotPath, tenant_id: str, key_id: str, now: float) -> None:
    """Set ``last_used_at`` unless another request (or replica) did within the interval."""
    stmt = (
        update(_K)
        .where(_K.c.tenant_id == tenant_id, _K.c.key_id == key_id,
               or_(_K.c.last_used_at.is_(None), _K.c.last_used_at <= now - TOUCH_INTERVAL))
        .values(last_used_at=now)
    )
    await hot.unit_of_work(lambda conn: conn.execute(stmt))

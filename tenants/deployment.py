"""Which master key a database belongs to: the key-check values in the ``deployment`` table.

A check value is HMAC-SHA-256 of a fixed constant under a key derived (HKDF) from the master
key; it proves possession without revealing anything usable about the key. Its first eight hex
digits name the key in messages. Rows are ``master_key_check:<slot>``: the first key of a
deployment is slot 1 (a fixed primary key, so two processes racing to record different keys
cannot both win), and a later master-key rotation can add slot 2 and hold both.

A database from before this table existed has no check value. There the key proves itself by
opening (AES-GCM, ``SoftwareBackend.opens``) the live signing keys it wrapped: every one of
them, because the bug this guards against planted keys wrapped under a stray master key (a
``tessera keys rotate`` run in another directory), and such a stray key opens what it planted.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tenants.keys.service import key_context
from tenants.models import DeploymentFact, SigningKey, Tenant

TABLE = DeploymentFact.__tablename__
CHECK_PREFIX = "master_key_check:"
_VERSION = "v1"
_CONSTANT = b"tessera master key check|v1"


FIRST_SLOT = CHECK_PREFIX + "1"


@dataclass(frozen=True)
class KeyCheck:
    key_id: str  # 8 hex digits, for messages
    value: str  # "v1:<64 hex digits>"


def key_check(master_key: bytes) -> KeyCheck:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                   info=b"tessera master key check v1").derive(master_key)
    digest = hmac.new(derived, _CONSTANT, hashlib.sha256).hexdigest()
    return KeyCheck(digest[:8], f"{_VERSION}:{digest}")


@dataclass(frozen=True)
class Found:
    """What a database holds, read without writing anything."""

    tables: frozenset[str]
    checks: dict[str, str]  # row name -> value

    @property
    def empty(self) -> bool:
        return not self.tables

    @property
    def initialised(self) -> bool:
        """Migrated at least once (``alembic_version`` exists)."""
        return "alembic_version" in self.tables

    @property
    def can_record(self) -> bool:
        """Migrated far enough to hold check values (revision 0009)."""
        return TABLE in self.tables

    def matches(self, check: KeyCheck) -> bool:
        return any(hmac.compare_digest(value, check.value) for value in self.checks.values())

    def known_ids(self) -> list[str]:
        return sorted(value.partition(":")[2][:8] for value in self.checks.values())


async def inspect_database(engine: AsyncEngine) -> Found:
    async with engine.connect() as conn:
        tables = frozenset(await conn.run_sync(_table_names))
        checks: dict[str, str] = {}
        if TABLE in tables:
            rows = await conn.execute(select(DeploymentFact.name, DeploymentFact.value).where(
                DeploymentFact.name.startswith(CHECK_PREFIX)))
            checks = {name: value for name, value in rows}
    return Found(tables, checks)


def _table_names(conn: Connection) -> list[str]:
    return list(inspect(conn).get_table_names())


class Proof(enum.Enum):
    PROVEN = "proven"  # every live software-wrapped signing key opens
    WRONG = "wrong"  # none opens: another deployment's key
    MIXED = "mixed"  # some open, some do not: keys were wrapped under two master keys
    NOTHING = "nothing"  # no tenants and no keys: nothing depends on the key yet
    UNPROVABLE = "unprovable"  # tenants but no software-wrapped key to try


@dataclass(frozen=True)
class KeyProof:
    proof: Proof
    opened: int = 0
    failed: tuple[str, ...] = ()  # "tenant/kid" of keys that did not open


async def prove_by_signing_keys(engine: AsyncEngine,
                                opens: Callable[[bytes, bytes], bool]) -> KeyProof:
    """For a database without check values: does the key open the wrapped signing keys?
    Reads only (the columns exist since the first revision)."""
    K = SigningKey.__table__
    async with engine.connect() as conn:
        rows = (await conn.execute(select(K.c.tenant_id, K.c.kid, K.c.private_blob).where(
            K.c.backend == "software", K.c.state != "retired"))).all()
        tenants = (await conn.execute(select(func.count()).select_from(Tenant))).scalar_one()
    live = [(t, k, bytes(blob)) for t, k, blob in rows if blob]
    if not live:
        return KeyProof(Proof.UNPROVABLE if tenants else Proof.NOTHING)
    failed = tuple(f"{t}/{k}" for t, k, blob in live if not opens(blob, key_context(t, k)))
    opened = len(live) - len(failed)
    if not failed:
        return KeyProof(Proof.PROVEN, opened)
    return KeyProof(Proof.WRONG if opened == 0 else Proof.MIXED, opened, failed)


async def record_first_check(engine: AsyncEngine, check: KeyCheck, now: float) -> Found:
    """Record ``check`` as the deployment's first key (slot 1) and return what the database
    holds afterwards: a process that raced us may have recorded its own key first, so the
    caller checks once more."""
    try:
        async with engine.begin() as conn:
            await conn.execute(DeploymentFact.__table__.insert().values(
                name=FIRST_SLOT, value=check.value, created_at=now))
    except IntegrityError:
        pass  # slot 1 is taken: whoever took it decides
    return await inspect_database(engine)

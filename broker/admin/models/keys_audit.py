"""Signing keys, RAR detail types and the audit chain of a tenant."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints

from adapters import rar
from broker.admin.models.common import Body, JsonObject, Out, Text


def _schema(schema: dict[str, Any]) -> dict[str, Any]:
    try:
        rar.check_schema(schema)  # ValueError names the problem
    except ValueError:
        raise
    except Exception:  # jsonschema's meta-validation on hostile input: refuse, never fail
        raise ValueError("not a usable JSON Schema") from None
    return schema


class DetailTypePut(Body):
    """An RFC 9396 ``authorization_details`` type and its JSON Schema (2020-12)."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=128,
                                           pattern=r"^[^\x00-\x1f\x7f]+$")]
    schema_: Annotated[JsonObject, AfterValidator(_schema)] = Field(alias="schema")
    description: Text = ""


class DetailTypeOut(Out):
    type: str
    schema_: dict[str, Any] = Field(alias="schema")
    description: str


class KeyOut(Out):
    """A signing key's custody: where it is held and its dates (Unix seconds)."""

    kid: str
    alg: str
    state: str  # next | active | retiring | compromised
    backend: str  # software (wrapped under the master key) | pkcs11 (in the token)
    created_at: float  # published in the JWKS since (a next key)
    activated_at: float | None
    retiring_at: float | None  # demoted (or compromised) at
    retire_after: float | None  # leaves the JWKS after (retiring); compromised at
    age_seconds: int  # since created


class RotationOut(Out):
    tenant: str
    active: str
    retiring: str | None
    next: str
    retired: list[str]
    dropped: list[str]  # retiring keys retired early: past ``max_retiring_keys``


class KeyCompromise(Body):
    """Why the key is taken out of service (recorded in the audit chain and the webhook)."""

    reason: Text = ""


class CompromiseOut(Out):
    tenant: str
    kid: str
    was: str  # the state it was in
    active: str | None  # the key that signs now, when the compromised one was active
    next: str | None  # the fresh next key, when one was made
    compromised_at: float
    webhook_delivered: bool


class AuditEventOut(Out):
    """One event of the hash chain, as ``audit export`` writes it (one JSON line each)."""

    tenant: str
    seq: int
    at: float
    action: str
    outcome: str
    client_id: str | None
    subject: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditReport(Out):
    tenant: str
    events: int
    intact: bool
    first_broken_seq: int | None
    reason: str


class AdminTokenRotation(Body):
    overlap_seconds: int = Field(
        3600, ge=0, le=7 * 86_400,
        description="how long the current admin token keeps working (0: not at all)")


class AdminTokenOut(Out):
    """The new admin bearer token: shown in this answer only."""

    admin_token: str
    previous_valid_until: float | None

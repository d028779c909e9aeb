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
    kid: str
    alg: str
    state: str
    activated_at: float | None
    retire_after: float | None


class RotationOut(Out):
    tenant: str
    active: str
    retiring: str | None
    next: str
    retired: list[str]


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

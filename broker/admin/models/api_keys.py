"""API keys of a tenant (``tsk_<tenant>_<key_id>_<secret>``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from broker.admin.models.common import Body, ClientId, DisplayName, Out, Scopes
from tenants.api_keys import MAX_OVERLAP

MAX_EXPIRES_IN = 2 * 366 * 86_400
DEFAULT_OVERLAP = 3600


class ApiKeyCreate(Body):
    client_id: ClientId
    name: DisplayName
    scopes: Scopes = Field([], description="default: all of the client's")
    expires_in: Annotated[int, Field(ge=1, le=MAX_EXPIRES_IN)] | None = Field(
        None, description="seconds; null: the key does not expire")


class ApiKeyRotation(Body):
    overlap_seconds: int = Field(DEFAULT_OVERLAP, ge=0, le=MAX_OVERLAP,
                                 description="how long the rotated-out key keeps working")


class ApiKeyQuery(Body):
    client_id: ClientId | None = None


class ApiKeyOut(Out):
    tenant: str
    key_id: str
    redacted: str
    client_id: str
    name: str
    scopes: list[str]
    status: Literal["active", "revoked", "expired"]
    expires_at: int | None
    created_at: int | None
    rotated_at: int | None
    last_used_at: int | None
    previous_valid_until: int | None


class ApiKeyWithSecret(ApiKeyOut):
    api_key: str = Field(description="the key, in this answer only")

"""The trust registry: partners (registry-wide) and a tenant's trust links."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from broker.admin.models.common import (
    JWKS,
    Body,
    DisplayName,
    EpochSeconds,
    IssuerUrl,
    JsonObject,
    Out,
    PartnerId,
    Scopes,
    TenantName,
    omitted,
)

Contact = Annotated[str, StringConstraints(max_length=320, pattern=r"^[^\x00-\x1f\x7f]*$")]
Direction = Literal["accept", "send"]


def _directions(directions: list[Direction]) -> list[Direction]:
    if not directions:
        raise ValueError("name at least one direction: accept (redeem what the peer issues), "
                         "send (issue ID-JAGs to the peer), or both; to end a link, revoke it")
    if len(set(directions)) != len(directions):
        raise ValueError("each direction once")
    return directions


Directions = Annotated[list[Direction], Field(
    max_length=2, json_schema_extra={"minItems": 1, "uniqueItems": True},
    description="accept: redeem what the peer issues; send: issue ID-JAGs to the peer"),
    AfterValidator(_directions)]


class PartnerCreate(Body):
    issuer: IssuerUrl
    display_name: DisplayName
    id: PartnerId | None = Field(None, description="default: random")
    jwks_uri: IssuerUrl | None = None
    jwks: JWKS | None = None
    contact: Contact = ""
    metadata: JsonObject = {}
    expires_at: EpochSeconds | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> PartnerCreate:
        if (self.jwks_uri is None) == (self.jwks is None):
            raise ValueError("give exactly one of jwks_uri and jwks")
        return self


class PartnerPatch(Body):
    """Merge patch; setting one of ``jwks_uri`` / ``jwks`` clears the other."""

    display_name: DisplayName = omitted()
    contact: Contact = omitted()
    jwks_uri: IssuerUrl = omitted()
    jwks: JWKS = omitted()
    metadata: JsonObject = omitted()
    expires_at: EpochSeconds | None = omitted()

    @model_validator(mode="after")
    def _one_key_source(self) -> PartnerPatch:
        if {"jwks_uri", "jwks"} <= self.model_fields_set:
            raise ValueError("give at most one of jwks_uri and jwks")
        return self

    def changes(self) -> dict[str, Any]:
        out = self.model_dump(include=self.model_fields_set)
        if "jwks" in out:
            out["jwks"], out["jwks_uri"] = self.jwks.as_dict() if self.jwks else None, None
        elif "jwks_uri" in out:
            out["jwks"] = None
        return out


class PartnerOut(Out):
    id: str
    issuer: str
    display_name: str
    contact: str
    jwks_uri: str | None
    jwks: dict[str, Any] | None
    metadata: dict[str, Any]
    status: Literal["pending", "active", "suspended", "revoked"]
    expires_at: float | None
    created_at: int
    updated_at: int
    self_registered: bool = Field(
        description="registered from its OpenID Federation Entity Configuration (its "
                           "keys are refreshed from it)")


class TrustLinkCreate(Body):
    partner: PartnerId | None = Field(None, description="a partner of the registry, or ...")
    tenant: TenantName | None = Field(None, description="... another tenant of this broker")
    directions: Directions
    scope_ceiling: Scopes | None = Field(None, description="null: no ceiling")
    expires_at: EpochSeconds | None = None


    @model_validator(mode="after")
    def _one_peer(self) -> TrustLinkCreate:
        if (self.partner is None) == (self.tenant is None):
            raise ValueError("name exactly one of partner and tenant")
        return self


class DirectionsPut(Body):
    directions: Directions


class TrustLinkPatch(Body):
    directions: Directions = omitted()
    scope_ceiling: Scopes | None = omitted()
    expires_at: EpochSeconds | None = omitted()


class TrustLinkOut(Out):
    id: str
    tenant: str
    issuer: str
    partner: str | None
    peer_tenant: str | None
    directions: list[Direction]
    accept: bool
    send: bool
    scope_ceiling: list[str] | None
    status: Literal["active", "suspended", "revoked"]
    expires_at: float | None
    created_at: int

"""Resource servers of a tenant: identifier, scopes it defines, clients, lifetime, binding."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from broker.admin.models.common import (
    Body,
    ClientId,
    DisplayName,
    HttpsUrl,
    Out,
    Scope,
    Scopes,
    Text,
    named,
    omitted,
)

ResourceName = named(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$",
                     "a resource server name: 1-64 of a-z, 0-9, '-' and '_'", 64)
# RFC 8707 §2: an absolute URI without a fragment (https; http to loopback in development)
Identifier = Annotated[HttpsUrl, StringConstraints(max_length=512)]
ScopeTable = Annotated[dict[Scope, Text], Field(max_length=100,
                                                description="scope -> description")]
AllowedClients = Annotated[list[ClientId], Field(
    max_length=100, description="clients that may get tokens for it; empty: any client")]
Lifetime = Annotated[int, Field(ge=1, le=86_400, description="access token lifetime ceiling, "
                                "seconds")]


def _defaults_defined(scopes: dict[str, str] | None, defaults: list[str] | None) -> None:
    if scopes is not None and defaults:
        unknown = [s for s in defaults if s not in scopes]
        if unknown:
            raise ValueError(f"default_scopes not among scopes: {' '.join(unknown)}")


class ResourceCreate(Body):
    name: ResourceName
    identifier: Identifier = Field(description="the resource's URL: its RFC 8707 resource "
                                   "indicator and the access tokens' aud")
    display_name: DisplayName | None = None
    scopes: ScopeTable = {}
    default_scopes: Scopes = Field([], description="granted when a request names no scope")
    allowed_clients: AllowedClients = []
    access_token_lifetime: Lifetime = 300
    require_dpop: bool = False
    require_mtls: bool = False

    @model_validator(mode="after")
    def _check(self) -> ResourceCreate:
        _defaults_defined(self.scopes, self.default_scopes)
        return self


class ResourcePatch(Body):
    display_name: DisplayName = omitted()
    scopes: ScopeTable = omitted()
    default_scopes: Scopes = omitted()
    allowed_clients: AllowedClients = omitted()
    access_token_lifetime: Lifetime = omitted()
    require_dpop: bool = omitted()
    require_mtls: bool = omitted()


class ResourceOut(Out):
    tenant: str
    name: str
    identifier: str
    display_name: str
    scopes: dict[str, str]
    default_scopes: list[str]
    allowed_clients: list[str]
    access_token_lifetime: int
    require_dpop: bool
    require_mtls: bool
    authorization_server: str = Field(description="the issuer that grants its tokens")
    resource_metadata_url: str = Field(description="RFC 9728 metadata served by tessera for "
                                       "it: put it in the 401 WWW-Authenticate")

"""OAuth clients of a tenant (agents are clients too: ``runtime`` has their lifecycle)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints

from broker.admin.models.common import (
    JWKS,
    Audiences,
    Body,
    ClientId,
    DisplayName,
    HttpsUrl,
    Out,
    Scopes,
    omitted,
)
from broker.admin.models.tenants import DEFAULT_OVERLAP
from tenants import clients
from tenants.directory import DirectoryError

AuthMethod = Literal["client_secret_basic", "client_secret_post", "private_key_jwt", "none",
                     "tls_client_auth", "self_signed_tls_client_auth"]
DeliveryMode = Literal["poll", "ping", "push"]


def _redirect(uri: str) -> str:
    try:
        clients.check_redirect_uri(uri)
    except DirectoryError as exc:
        raise ValueError(str(exc)) from None
    return uri


# https, http on a loopback host, or a reverse-DNS private-use scheme (RFC 8252 §7);
# never javascript:, data:, file: ...
RedirectUri = Annotated[str, StringConstraints(min_length=3, max_length=2000),
                        AfterValidator(_redirect)]
RedirectUris = Annotated[list[RedirectUri], Field(max_length=20)]
DetailTypes = Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=128)]],
                        Field(max_length=50)]
CertName = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Lifetime = Annotated[int, Field(ge=1, le=86_400, description="seconds, 1..86400")]


class ClientCreate(Body):
    name: DisplayName
    client_id: ClientId | None = Field(None, description="default: a random id")
    token_endpoint_auth_method: AuthMethod = "client_secret_basic"
    scopes: Scopes = []
    audiences: Audiences = []
    jwks: JWKS | None = None
    access_token_lifetime: Lifetime = 300
    dpop_bound_access_tokens: bool = False
    redirect_uris: RedirectUris = []
    post_logout_redirect_uris: RedirectUris = []
    first_party: bool = True
    require_pushed_authorization_requests: bool = False
    authorization_details_types: DetailTypes = []
    tls_client_auth_subject_dn: CertName | None = None
    tls_client_auth_san_uri: CertName | None = None
    tls_client_auth_san_dns: CertName | None = None
    tls_client_certificate_bound_access_tokens: bool = False
    backchannel_token_delivery_mode: DeliveryMode | None = None
    backchannel_client_notification_endpoint: HttpsUrl | None = None

    def registration(self) -> dict[str, Any]:
        """The keyword arguments of ``tenants.clients.create``."""
        return to_columns(self, exclude={"client_id", "token_endpoint_auth_method", "name"})


class ClientPatch(Body):
    """JSON merge patch of a client: absent leaves a setting, null clears an optional one.
    The auth method and client_id are fixed (register a new client instead)."""

    name: DisplayName = omitted()
    scopes: Scopes = omitted()
    audiences: Audiences = omitted()
    jwks: JWKS | None = omitted()
    access_token_lifetime: Lifetime = omitted()
    dpop_bound_access_tokens: bool = omitted()
    redirect_uris: RedirectUris = omitted()
    post_logout_redirect_uris: RedirectUris = omitted()
    first_party: bool = omitted()
    require_pushed_authorization_requests: bool = omitted()
    authorization_details_types: DetailTypes = omitted()
    tls_client_auth_subject_dn: CertName | None = omitted()
    tls_client_auth_san_uri: CertName | None = omitted()
    tls_client_auth_san_dns: CertName | None = omitted()
    tls_client_certificate_bound_access_tokens: bool = omitted()
    backchannel_token_delivery_mode: DeliveryMode | None = omitted()
    backchannel_client_notification_endpoint: HttpsUrl | None = omitted()

    def changes(self) -> dict[str, Any]:
        """The given fields under their column names (``tenants.clients.CHANGEABLE``)."""
        return to_columns(self, include=self.model_fields_set)


def to_columns(body: ClientCreate | ClientPatch, *, include: set[str] | None = None,
               exclude: set[str] | None = None) -> dict[str, Any]:
    values = body.model_dump(include=include, exclude=exclude)
    if "require_pushed_authorization_requests" in values:
        values["require_par"] = values.pop("require_pushed_authorization_requests")
    if values.get("jwks") is not None:
        values["jwks"] = body.jwks.as_dict() if body.jwks else None
    return values


class ClientOut(Out):
    tenant: str
    client_id: str
    name: str
    status: Literal["active", "disabled", "suspended", "retired"]
    token_endpoint_auth_method: AuthMethod
    scopes: list[str]
    audiences: list[str]
    jwks: dict[str, Any] | None
    access_token_lifetime: int
    dpop_bound_access_tokens: bool
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    first_party: bool
    require_pushed_authorization_requests: bool
    authorization_details_types: list[str]
    tls_client_auth_subject_dn: str | None
    tls_client_auth_san_uri: str | None
    tls_client_auth_san_dns: str | None
    tls_client_certificate_bound_access_tokens: bool
    backchannel_token_delivery_mode: DeliveryMode | None
    backchannel_client_notification_endpoint: str | None
    owner: str | None
    purpose: str | None
    expires_at: float | None = Field(description="an ephemeral agent stops working then")
    created_at: int
    secret_rotated_at: int | None
    previous_secret_valid_until: int | None = Field(
        description="the rotated-out secret works until then")


class ClientWithSecret(ClientOut):
    client_secret: str | None = Field(description="shown in this answer only; stored as a "
                                      "keyed hash (null for methods without a secret)")


class ClientSecretRotation(Body):
    overlap_seconds: int = Field(DEFAULT_OVERLAP, ge=0, le=clients.MAX_OVERLAP,
                                 description="how long the current secret keeps working")

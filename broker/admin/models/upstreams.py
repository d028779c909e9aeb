"""Upstream IdPs of a tenant (OIDC, SAML) and how their claims map to the tenant's users."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from broker.admin.models.common import (
    Body,
    DisplayName,
    HttpsUrl,
    IssuerUrl,
    Out,
    Scopes,
    UpstreamName,
    omitted,
)

ClaimName = Annotated[str, StringConstraints(min_length=1, max_length=256,
                                             pattern=r"^[^\x00-\x1f\x7f]+$")]
Sources = ClaimName | Annotated[list[ClaimName], Field(min_length=1, max_length=20)]
Domain = Annotated[str, StringConstraints(
    max_length=253, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                            r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")]
IdTokenAlg = Literal["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"]
ParamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ParamValue = Annotated[str, StringConstraints(max_length=512)]
MAX_METADATA = 512 * 1024


class ClaimMapping(Body):
    """Which upstream claim (OIDC) or attribute (SAML) becomes what; each a name or a list
    tried in order (``broker.claim_mapping``)."""

    subject: Sources = omitted()
    email: Sources = omitted()
    name: Sources = omitted()
    groups: Sources = omitted()
    claims: Annotated[dict[ClaimName, Sources], Field(max_length=50)] = omitted()

    def stored(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class OidcSettings(Body):
    issuer: IssuerUrl
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    client_secret: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = \
        Field(None, description="sealed at rest, never returned")
    client_auth: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] = \
        "client_secret_basic"
    scopes: Scopes = omitted()
    allowed_algs: Annotated[list[IdTokenAlg], Field(min_length=1, max_length=6)] = omitted()
    use_userinfo: bool = False
    extra_auth_params: Annotated[list[tuple[ParamName, ParamValue]], Field(
        max_length=20, strict=False)] = omitted()
    authorization_endpoint: HttpsUrl = omitted()
    token_endpoint: HttpsUrl = omitted()
    jwks_uri: HttpsUrl = omitted()
    userinfo_endpoint: HttpsUrl = omitted()

    def stored(self) -> dict[str, Any]:
        """What is stored (the secret is sealed separately)."""
        values = self.model_dump(exclude_unset=True, exclude={"client_secret"})
        values.setdefault("client_auth", self.client_auth)
        if "extra_auth_params" in values:
            values["extra_auth_params"] = [list(p) for p in values["extra_auth_params"]]
        return values


class OidcPatch(Body):
    """Changed OIDC settings, merged over the stored ones and checked whole; null removes
    an optional one (``client_secret``: null keeps the stored secret out of use)."""

    issuer: IssuerUrl = omitted()
    client_id: Annotated[str, StringConstraints(min_length=1, max_length=256)] = omitted()
    client_secret: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = \
        omitted()
    client_auth: Literal["client_secret_basic", "client_secret_post",
                         "private_key_jwt"] = omitted()
    scopes: Scopes | None = omitted()
    allowed_algs: Annotated[list[IdTokenAlg], Field(min_length=1, max_length=6)] | None = \
        omitted()
    use_userinfo: bool = omitted()
    extra_auth_params: Annotated[list[tuple[ParamName, ParamValue]], Field(
        max_length=20, strict=False)] | None = omitted()
    authorization_endpoint: HttpsUrl | None = omitted()
    token_endpoint: HttpsUrl | None = omitted()
    jwks_uri: HttpsUrl | None = omitted()
    userinfo_endpoint: HttpsUrl | None = omitted()


MetadataXml = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA)]


class SamlSettings(Body):
    metadata_xml: MetadataXml | None = None
    metadata_url: HttpsUrl | None = Field(None, description="fetched now, and again by "
                                          "refresh-metadata")
    allow_sha1: bool = False
    name_id_format: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = \
        None

    @model_validator(mode="after")
    def _one_source(self) -> SamlSettings:
        if (self.metadata_xml is None) == (self.metadata_url is None):
            raise ValueError("give exactly one of metadata_xml and metadata_url")
        return self


class SamlPatch(Body):
    allow_sha1: bool = omitted()
    name_id_format: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = \
        omitted()


class UpstreamCreate(Body):
    name: UpstreamName
    kind: Literal["oidc", "saml"]
    display_name: DisplayName | None = None
    domains: Annotated[list[Domain], Field(max_length=50)] = []
    mapping: ClaimMapping = Field(default_factory=ClaimMapping)
    oidc: OidcSettings | None = None
    saml: SamlSettings | None = None

    @model_validator(mode="after")
    def _settings_of_kind(self) -> UpstreamCreate:
        mine, other = (self.oidc, self.saml) if self.kind == "oidc" else (self.saml, self.oidc)
        if mine is None or other is not None:
            raise ValueError(f"a {self.kind} upstream takes {self.kind} settings (only)")
        return self


class UpstreamPatch(Body):
    display_name: DisplayName = omitted()
    domains: Annotated[list[Domain], Field(max_length=50)] = omitted()
    mapping: ClaimMapping = omitted()
    oidc: OidcPatch = omitted()
    saml: SamlPatch = omitted()


class MetadataRefresh(Body):
    """New IdP metadata: as XML, from a URL, or (empty body) again from the stored URL."""

    metadata_xml: MetadataXml = omitted()
    metadata_url: HttpsUrl = omitted()

    @model_validator(mode="after")
    def _at_most_one(self) -> MetadataRefresh:
        if {"metadata_xml", "metadata_url"} <= self.model_fields_set:
            raise ValueError("give at most one of metadata_xml and metadata_url")
        return self


class SamlOut(Out):
    idp_entity_id: str | None
    allow_sha1: bool
    name_id_format: str | None
    metadata_url: str | None
    metadata_updated_at: int | None


class UpstreamOut(Out):
    tenant: str
    name: str
    kind: Literal["oidc", "saml"]
    display_name: str
    status: Literal["active", "disabled", "deleted"]
    domains: list[str]
    mapping: dict[str, Any]
    oidc: dict[str, Any] | None = Field(description="the settings, without the secret")
    saml: SamlOut | None
    redirect_uri: str | None = Field(description="OIDC: register it at the IdP")
    sp_entity_id: str | None
    acs_url: str | None
    sp_metadata_url: str | None

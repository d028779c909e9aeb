"""Legacy apps: SAML service providers a tenant issues assertions to."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_validator

from broker.admin.models.common import Body, DisplayName, HttpsUrl, Out, omitted
from tenants.legacy_apps import MAX_ACS, MAX_ATTRIBUTES, MAX_LIFETIME, MIN_LIFETIME

EntityId = Annotated[str, StringConstraints(
    min_length=3, max_length=512, pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")]
NameIdFormat = Literal["persistent", "emailAddress", "transient", "unspecified"]
AcsUrls = Annotated[list[HttpsUrl], Field(min_length=1, max_length=MAX_ACS)]
AttributeMapping = Annotated[dict[
    Annotated[str, StringConstraints(min_length=1, max_length=256)],
    Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]],
    Field(max_length=MAX_ATTRIBUTES, description="SAML attribute name -> the user claim")]
PemCerts = Annotated[list[Annotated[str, StringConstraints(max_length=16_384)]],
                     Field(max_length=10)]
Lifetime = Annotated[int, Field(ge=MIN_LIFETIME, le=MAX_LIFETIME, description="seconds")]
SpMetadata = Annotated[str, StringConstraints(min_length=1, max_length=512 * 1024)]


class LegacyAppCreate(Body):
    """From fields, or from the app's SP ``metadata`` (fields given beside it win)."""

    entity_id: EntityId = omitted()
    acs_urls: AcsUrls = omitted()
    metadata: SpMetadata = omitted()
    name: DisplayName = omitted()
    name_id_format: NameIdFormat = omitted()
    attribute_mapping: AttributeMapping = omitted()
    want_authn_requests_signed: bool = omitted()
    sp_certs: PemCerts = omitted()
    assertion_lifetime: Lifetime = omitted()

    @model_validator(mode="after")
    def _fields_or_metadata(self) -> LegacyAppCreate:
        if "metadata" not in self.model_fields_set and not (
                {"entity_id", "acs_urls"} <= self.model_fields_set):
            raise ValueError("give entity_id and acs_urls, or metadata")
        return self

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class LegacyAppPatch(Body):
    name: DisplayName = omitted()
    acs_urls: AcsUrls = omitted()
    name_id_format: NameIdFormat = omitted()
    attribute_mapping: AttributeMapping = omitted()
    want_authn_requests_signed: bool = omitted()
    sp_certs: PemCerts = omitted()
    assertion_lifetime: Lifetime = omitted()

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class EntityRef(Body):
    entity_id: EntityId


class LegacyAppOut(Out):
    tenant: str
    entity_id: str
    name: str
    acs_urls: list[str]
    name_id_format: str
    attribute_mapping: dict[str, str]
    want_authn_requests_signed: bool
    sp_certs: int = Field(description="how many certificates are registered")
    assertion_lifetime: int
    status: Literal["active", "disabled"]
    idp_metadata_url: str
    idp_sso_url: str

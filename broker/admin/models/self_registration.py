"""Partner self-registration in the registry: invitations, registration from an Entity
Configuration, approval, the registry's notification webhook."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints

from broker.admin.models.common import Body, DisplayName, IssuerUrl, Out, PartnerId
from broker.admin.models.registry import PartnerOut
from registry.invitations import DEFAULT_LIFETIME, MAX_LIFETIME
from tenants.settings import HttpsUrl

Note = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Reason = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]


class InvitationCreate(Body):
    entity_id: IssuerUrl | None = Field(
        None, description="the only entity the code may register (null: any)")
    lifetime_seconds: int = Field(DEFAULT_LIFETIME, ge=60, le=MAX_LIFETIME)
    note: Note = ""


class InvitationOut(Out):
    id: str
    code: str | None = Field(description="the invitation code, in the answer that issues it only")
    entity_id: str | None
    note: str
    state: Literal["open", "used", "revoked", "expired"]
    partner: str | None = Field(description="the partner that used it")
    created_at: int
    expires_at: int
    used_at: int | None


class EntityRegistration(Body):
    """Point the registry at an Entity Configuration (``{entity_id}/.well-known/
    openid-federation``): fetched, verified, recorded pending."""

    entity_id: IssuerUrl
    id: PartnerId | None = Field(None, description="default: fed-<random>")
    display_name: DisplayName | None = Field(
        None, description="default: the organization_name it declares")


class Decision(Body):
    reason: Reason = ""


class SelfRegisteredOut(PartnerOut):
    federation_jwks: dict[str, Any] | None = Field(
        description="its federation keys (they sign its Entity Configuration and its requests "
                    "to the registry)")
    keys_refreshed_at: int | None
    changed: list[str] = Field(description="what the last refresh changed (refresh only)")


class RegistrySettingsPut(Body):
    webhook_url: HttpsUrl | None = Field(
        description="where registry admins are told of registrations; null: nowhere")


class RegistrySettingsOut(Out):
    webhook_url: str | None
    secret: str | None = Field(description="the webhook signing secret, in the answer that "
                               "first sets a URL only")
    secret_revealed: bool

"""Tenants, their settings (``tenants.settings.TenantSettings``) and their webhook."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, create_model
from pydantic.fields import FieldInfo

from broker.admin.models.common import (
    Body,
    DisplayName,
    HttpsUrl,
    Out,
    TenantName,
    omitted,
)
from tenants.settings import TenantSettings
from tenants.webhook_secrets import MAX_OVERLAP

DEFAULT_OVERLAP = 3600


class TenantCreate(Body):
    name: TenantName
    display_name: DisplayName | None = Field(None, description="default: the name")
    settings: TenantSettings = Field(default_factory=TenantSettings)


def _patch_field(info: FieldInfo) -> tuple[Any, Any]:
    field = FieldInfo.merge_field_infos(info, default=None, default_factory=None,
                                        json_schema_extra=None)
    return info.annotation | None, field


# Every setting, optional: absent leaves it, null resets it to its default (RFC 7396).
TenantSettingsPatch = create_model(  # type: ignore[call-overload]
    "TenantSettingsPatch", __base__=Body,
    **{name: _patch_field(info) for name, info in TenantSettings.model_fields.items()})


class TenantPatch(Body):
    """JSON merge patch (RFC 7396) of a tenant: the merged settings are validated whole."""

    display_name: DisplayName = omitted()
    settings: TenantSettingsPatch = omitted()  # type: ignore[valid-type]


class TenantOut(Out):
    id: str
    display_name: str
    status: Literal["active", "disabled", "archived"]
    issuer: str
    created_at: int
    settings: TenantSettings


class WebhookPut(Body):
    url: HttpsUrl | None = Field(description="where signed events go; null: nowhere")


class SecretRotation(Body):
    overlap_seconds: int = Field(
        DEFAULT_OVERLAP, ge=0, le=MAX_OVERLAP,
        description="how long the previous secret keeps working (0: not at all)")


class WebhookOut(Out):
    tenant: str
    url: str | None
    secret: str | None = Field(description="the signing secret, in this answer only: on the "
                               "first PUT (if never shown) and after each rotation")
    secret_revealed: bool
    rotated_at: int | None
    previous_valid_until: int | None = Field(
        description="until then events are signed with the previous secret too")

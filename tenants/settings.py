"""Per-tenant configuration with defaults, stored as JSON on the tenant row.

One pydantic model, ``TenantSettings``, is both what an administrator may send (unknown keys
refused, types strict, every number in range, the webhook URL https) and what the token
endpoint, the key service and the rest read (frozen, plain attributes). Validation context
``{"allow_http_loopback": True}`` lets the webhook go to ``http://127.0.0.1`` (development).

Stored rows are read with ``TenantSettings.load``, which never fails: a key this version does
not know (an older or newer tessera wrote it), or a value out of range (written before these
checks existed), is dropped with a logged warning and its default applies. A tenant with a bad
row keeps issuing tokens; the administrator sees the warning and fixes it with a PATCH.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
)

from adapters.urls import check_https_url
from tenants.models import Tenant

log = logging.getLogger("tessera.settings")

MINUTE, HOUR, DAY = 60, 3_600, 86_400
KEY_ALGS = ("ES256", "EdDSA", "RS256")
MAX_RULES = 16
MAX_RULE_LIMIT = 1_000_000
MAX_RULE_WINDOW = HOUR  # bounds the anomaly counters' memory and the audit range scanned
STRICT = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                    str_max_length=4096)


def loopback_allowed(info: ValidationInfo) -> bool:
    context = info.context
    return bool(isinstance(context, Mapping) and context.get("allow_http_loopback"))


def _https(url: str, info: ValidationInfo) -> str:
    return check_https_url(url, allow_http_loopback=loopback_allowed(info))


HttpsUrl = Annotated[
    str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://\S+$"),
    AfterValidator(_https), Field(json_schema_extra={"format": "uri"})]


class AnomalyRule(BaseModel):
    """Suspend an agent whose ``metric`` goes over ``limit`` in ``window`` seconds
    (``broker.anomaly``)."""

    model_config = STRICT
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    metric: Literal["token_requests", "resource_reads"]
    limit: int = Field(ge=1, le=MAX_RULE_LIMIT)
    window: int = Field(ge=1, le=MAX_RULE_WINDOW, description="seconds")
    action: Literal["suspend"] = "suspend"


def unique_rule_names(rules: tuple[AnomalyRule, ...] | list[AnomalyRule] | None
                      ) -> tuple[AnomalyRule, ...] | list[AnomalyRule] | None:
    if rules is None:  # a merge patch's null (the default applies)
        return rules
    names = [r.name for r in rules]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate rule names: {', '.join(duplicates)}")
    return rules


def _seconds(default: int, low: int, high: int, what: str) -> Any:
    return Field(default, ge=low, le=high, description=f"{what}; seconds, {low}..{high}")


class TenantSettings(BaseModel):
    model_config = STRICT

    key_alg: Literal["ES256", "EdDSA", "RS256"] = "ES256"
    key_rotation_seconds: int = _seconds(DAY, HOUR, 90 * DAY, "signing key rotation period")
    max_token_lifetime: int = _seconds(HOUR, 1, DAY, "ceiling for any token this tenant issues")
    dpop_nonce_required: bool = False
    # OpenID Provider role
    require_pushed_authorization_requests: bool = False
    session_lifetime: int = _seconds(8 * HOUR, MINUTE, 30 * DAY,
                                     "the browser session after an upstream login")
    code_lifetime: int = _seconds(60, 1, 10 * MINUTE, "authorization codes (RFC 6749 §4.1.2)")
    id_token_lifetime: int = _seconds(300, 1, DAY, "ID tokens")
    refresh_token_lifetime: int = _seconds(30 * DAY, MINUTE, 365 * DAY,
                                           "a grant's whole life; rotation keeps it")
    par_lifetime: int = _seconds(60, 5, 10 * MINUTE, "pushed authorization request URIs")
    # OAuth Client ID Metadata Documents: a URL client_id names its own metadata, fetched
    # through the SSRF guards (broker.client_metadata_document)
    client_id_metadata_documents: bool = False
    # runtime control (CIBA approvals, anomaly response)
    webhook_url: HttpsUrl | None = Field(
        None, description="signed JSON events: approvals pending, anomalies")
    ciba_request_lifetime: int = _seconds(600, 10, DAY, "CIBA requests (expires_in)")
    ciba_poll_interval: int = _seconds(5, 1, MINUTE, "CIBA polling interval")
    anomaly_rules: Annotated[tuple[AnomalyRule, ...], AfterValidator(unique_rule_names)] = \
        Field((), strict=False, max_length=MAX_RULES)

    @classmethod
    def of(cls, tenant: Tenant) -> TenantSettings:
        return cls.load(tenant.settings or {}, tenant=tenant.id)

    @classmethod
    def load(cls, raw: Mapping[str, Any], *, tenant: str) -> TenantSettings:
        """A stored row, never failing: unknown keys and invalid values are dropped (their
        defaults apply) with one warning naming them (not their values)."""
        context = {"allow_http_loopback": True}  # judged when stored; fetches are guarded
        try:
            return cls.model_validate(raw, context=context)
        except ValidationError as exc:
            bad = sorted({str(e["loc"][0]) for e in exc.errors() if e["loc"]})
        log.warning("tenant %s: stored settings %s are unknown or invalid and were ignored "
                    "(defaults apply); set them again with PATCH /admin/v1/tenants/%s",
                    tenant, ", ".join(bad) or "(all)", tenant)
        kept = {k: v for k, v in raw.items() if k not in bad}
        try:
            return cls.model_validate(kept, context=context)
        except ValidationError:
            return cls()

    def to_dict(self) -> dict[str, Any]:
        """The JSON stored on the tenant row."""
        return self.model_dump(mode="json")

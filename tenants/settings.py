"""Per-tenant configuration with defaults, stored as JSON on the tenant row."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from tenants.models import Tenant

DAY = 86_400


@dataclass(frozen=True)
class TenantSettings:
    key_alg: str = "ES256"
    key_rotation_seconds: int = DAY
    max_token_lifetime: int = 3_600  # ceiling for any token this tenant issues
    dpop_nonce_required: bool = False
    # OpenID Provider role
    require_pushed_authorization_requests: bool = False
    session_lifetime: int = 8 * 3_600  # the browser session after an upstream login
    code_lifetime: int = 60
    id_token_lifetime: int = 300
    refresh_token_lifetime: int = 30 * DAY  # a grant's whole life; rotation keeps it
    par_lifetime: int = 60
    # runtime control (CIBA approvals, anomaly response)
    webhook_url: str | None = None  # signed JSON events: approvals pending, anomalies
    ciba_request_lifetime: int = 600
    ciba_poll_interval: int = 5
    anomaly_rules: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, tenant: Tenant) -> TenantSettings:
        return cls.from_dict(tenant.settings or {})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TenantSettings:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        if "anomaly_rules" in values:
            values["anomaly_rules"] = tuple(values["anomaly_rules"] or ())
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["anomaly_rules"] = list(self.anomaly_rules)
        return values

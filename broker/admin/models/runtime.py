"""Runtime control: agent lifecycle, users, revocation, anomaly rules."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from broker.admin.models.common import Body, EpochSeconds, Out, Reason, omitted
from tenants.settings import MAX_RULES, AnomalyRule, unique_rule_names

RevokeBy = Literal["token", "grant", "agent", "user", "partner", "tenant"]


class ReasonBody(Body):
    reason: Reason = ""


class AgentPut(Body):
    """Describe an agent: any of owner, purpose, expires_at (null clears)."""

    owner: Annotated[str, StringConstraints(max_length=320)] | None = omitted()
    purpose: Annotated[str, StringConstraints(max_length=500)] | None = omitted()
    expires_at: EpochSeconds | None = omitted(description="an ephemeral agent stops then")

    @model_validator(mode="after")
    def _something(self) -> AgentPut:
        if not self.model_fields_set:
            raise ValueError("give at least one of owner, purpose, expires_at")
        return self


class RevokeRequest(Body):
    by: RevokeBy
    value: Annotated[str, StringConstraints(min_length=1, max_length=8192)] | None = Field(
        None, description="the token, grant id, client_id, sub, partner id or issuer "
        "(not for by=tenant)")
    reason: Reason = ""
    issuer: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None, description="by=user only: the user's issuer; value is their sub there")

    @model_validator(mode="after")
    def _value(self) -> RevokeRequest:
        if self.by != "tenant" and self.value is None:
            raise ValueError(f"by={self.by} needs a value")
        if self.by not in ("token", "tenant") and self.value is not None \
                and len(self.value) > 512:
            raise ValueError(f"by={self.by}: a value of at most 512 characters")
        if self.issuer is not None and self.by != "user":
            raise ValueError("issuer names a user of another issuer: only with by=user")
        return self


class RevokeOut(Out):
    tenant: str
    by: RevokeBy
    value: str | None = None
    jti: str | None = None
    grant: str | None = None
    revoked_at: float | None = None


class UserOut(Out):
    sub: str
    email: str | None
    name: str | None
    groups: list[str]
    status: Literal["active", "disabled"]
    created_at: int
    last_login_at: int | None


class UserStatusOut(Out):
    tenant: str
    sub: str
    status: Literal["active", "disabled"]
    email: str | None


class AnomalyRulesPut(Body):
    rules: Annotated[list[AnomalyRule], Field(max_length=MAX_RULES,
                                              description="[] removes every rule"),
                     AfterValidator(unique_rule_names)]


class AnomalyRulesOut(Out):
    tenant: str
    rules: list[AnomalyRule]

"""Managed connections: for (tenant, client, audience) the rule per scope."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from broker.admin.models.common import Audience, Audiences, Body, ClientId, Out, Scope, omitted

Rule = Literal["grant", "approve", "deny"]
Rules = Annotated[dict[Scope, Rule], Field(max_length=100, description="scope -> rule")]
Approver = Annotated[str, StringConstraints(pattern=r"^group:[^\s]{1,128}$")]
RemoteClientId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")]
MaxLifetime = Annotated[int, Field(ge=1, le=300, description="seconds (an ID-JAG is short)")]


class ConnectionSettings(Body):
    rules: Rules = {}
    remote_client_id: RemoteClientId
    resources: Audiences = []
    max_lifetime: MaxLifetime = 300
    default_rule: Rule = "deny"
    approver: Approver | None = Field(None, description="group:<name> approves the approve "
                                      "scopes; null: the user themself")


class ManagedConnectionPut(ConnectionSettings):
    """Create or replace the connection of (client_id, audience)."""

    client_id: ClientId
    audience: Audience


class ManagedConnectionPatch(Body):
    rules: Rules = omitted()
    remote_client_id: RemoteClientId = omitted()
    resources: Audiences = omitted()
    max_lifetime: MaxLifetime = omitted()
    default_rule: Rule = omitted()
    approver: Approver | None = omitted()


class ManagedConnectionOut(Out):
    tenant: str
    client_id: str
    audience: str
    rules: dict[str, Rule]
    default_rule: Rule
    resources: list[str]
    remote_client_id: str
    max_lifetime: int
    approver: str | None

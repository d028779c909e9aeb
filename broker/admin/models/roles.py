"""Administrative roles given inside a tenant (``broker.admin.roles`` says what each allows)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from broker.admin.models.common import Body, Out

Role = Literal["tenant_admin", "tenant_auditor", "registry_admin"]
Kind = Literal["user", "group", "client"]
Subject = Annotated[str, StringConstraints(min_length=1, max_length=256,
                                           pattern=r"^[^\x00-\x1f\x7f]+$")]


class RoleAssignmentIn(Body):
    kind: Kind = Field(description="user (its sub at this tenant), group (every user the "
                       "upstream puts in it) or client (an admin client: client credentials "
                       "+ DPoP, audience {issuer}/admin)")
    subject: Subject
    role: Role


class RoleAssignmentOut(Out):
    tenant: str
    kind: Kind
    subject: str
    role: Role
    created_at: int
    created_by: str

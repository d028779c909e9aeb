"""Pending approvals: CIBA requests and managed-connection ``approve`` scopes waiting for a
human (what the approver is shown)."""

from __future__ import annotations

from typing import Literal

from broker.admin.models.common import Out


class ApprovalOut(Out):
    id: str
    client_id: str
    user_id: str | None
    approver: str | None
    kind: str
    audience: str | None
    scope: list[str]
    scope_words: list[str]
    binding_message: str | None
    authorization_details: list[str]
    expires_at: int


class DecisionOut(Out):
    id: str
    status: Literal["approved", "denied"]

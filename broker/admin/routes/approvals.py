"""Routes of a tenant's pending approvals (CIBA, managed-connection ``approve`` scopes)."""

from __future__ import annotations

from broker.admin.models.approvals import ApprovalOut, DecisionOut
from broker.admin.roles import READ, WRITE
from broker.admin.route import AdminRoute, T, route
from broker.admin.services import approvals

AP = T + "/approvals/{approval}"

APPROVALS: tuple[AdminRoute, ...] = (
    route("GET", T + "/approvals", "List pending approvals", "approvals",
          lambda c: approvals.list_pending(c.broker, c["tenant"]),
          response=list[ApprovalOut], roles=READ, name="list_pending_approvals"),
    *(route("POST", f"{AP}/{verb}", f"{verb.capitalize()} a pending request", "approvals",
            lambda c, approve=approve: approvals.decide(c.broker, c["tenant"], c["approval"],
                                                        approve),
            response=DecisionOut, roles=WRITE, name=f"{verb}_request")
      for verb, approve in (("approve", True), ("deny", False))),
)

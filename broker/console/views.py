"""What each console page shows, read through the admin operations as the signed-in
administrator (so an auditor sees what the API would show them, and nothing more)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from broker.admin import dispatch
from broker.console.session import Admin
from broker.runtime import Broker

Loader = Callable[[Broker, Admin, Mapping[str, str]], Awaitable[dict[str, Any]]]
AUDIT_PAGE = 200  # events shown at once (newest first)


async def run(broker: Broker, admin: Admin, operation: str, body: Any = None,
              query: Mapping[str, str] | None = None, **params: str) -> Any:
    """One admin operation as this administrator (role and tenant checked as over HTTP); a
    route of a tenant is run at the administrator's own tenant."""
    if "{tenant}" in dispatch.route_named(operation).path:
        params = {"tenant": admin.tenant.id, **params}
    return await dispatch.run(broker, operation, params, body=body, query=query,
                              principal=admin.principal)


async def overview(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    if not admin.tenant_roles:  # a registry administrator only
        return {"tenant_row": None, "pending": 0}
    return {"tenant_row": await run(broker, admin, "get_tenant"),
            "pending": len(await run(broker, admin, "list_pending_approvals"))}


async def upstreams(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_upstreams")}


async def clients(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_clients")}


async def connections(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_managed_connections"),
            "clients": [c for c in await run(broker, admin, "list_clients")
                        if c["status"] != "retired"],
            "blank_rows": range(4)}


async def approvals(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_pending_approvals")}


async def keys(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_keys")}


def matches(event: Mapping[str, Any], text: str) -> bool:
    """Whether an audit event mentions ``text`` (action, outcome, client, subject, actor)."""
    detail = event.get("detail") or {}
    fields = (event.get("action"), event.get("outcome"), event.get("client_id"),
              event.get("subject"), detail.get("actor") if isinstance(detail, dict) else None)
    return any(isinstance(f, str) and text.lower() in f.lower() for f in fields)


async def audit(broker: Broker, admin: Admin, q: Mapping[str, str]) -> dict[str, Any]:
    text = (q.get("q") or "")[:200]
    events = await run(broker, admin, "export_audit")
    found = [e for e in reversed(events) if not text or matches(e, text)]
    report = await run(broker, admin, "verify_audit") if q.get("verify") else None
    return {"items": found[:AUDIT_PAGE], "total": len(found), "q": text, "report": report}


async def roles(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_role_assignments"),
            "users": await run(broker, admin, "list_users")}


async def trust_links(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_trust_links")}


async def legacy_apps(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_legacy_apps")}


async def api_keys(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    return {"items": await run(broker, admin, "list_api_keys", query={}),
            "clients": [c for c in await run(broker, admin, "list_clients")
                        if c["status"] == "active"]}


async def partners(broker: Broker, admin: Admin, _q: Mapping[str, str]) -> dict[str, Any]:
    """The registry's partners, the registrations waiting for a decision, the open
    invitations (codes are never shown again) and how many others there were."""
    invitations = await run(broker, admin, "list_invitations")
    return {"items": await run(broker, admin, "list_partners"),
            "pending": await run(broker, admin, "list_pending_registrations"),
            "invitations": [i for i in invitations if i["state"] == "open"],
            "closed_invitations": sum(1 for i in invitations if i["state"] != "open")}


# path segment -> (title, loader); the order is the navigation's
SECTIONS: dict[str, tuple[str, Loader]] = {
    "": ("Overview", overview),
    "upstreams": ("Upstream IdPs", upstreams),
    "clients": ("Clients and agents", clients),
    "connections": ("Managed connections", connections),
    "approvals": ("Pending approvals", approvals),
    "trust-links": ("Trust links", trust_links),
    "legacy-apps": ("Legacy SAML apps", legacy_apps),
    "api-keys": ("API keys", api_keys),
    "keys": ("Signing keys", keys),
    "audit": ("Audit", audit),
    "roles": ("Administrators", roles),
    "partners": ("Registry partners", partners),
}
REGISTRY_SECTIONS = frozenset({"", "partners"})  # what a registry administrator uses

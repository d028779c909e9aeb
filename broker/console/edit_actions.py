"""The console's inline edit forms of existing rows, each one admin ``PATCH`` operation: a
trust link's directions and scope ceiling, a legacy SAML app's name, ACS URLs, NameID format,
assertion lifetime, attribute mapping and whether its requests must be signed. The forms are
filled with the row's current values, so what they send is the row as the administrator wants
it (an emptied field is cleared, where the model allows it)."""

from __future__ import annotations

from typing import Any

from broker.console.kit import checked, pairs, whole_number, words
from broker.console.session import Admin
from broker.console.views import run
from broker.forms import Form
from broker.runtime import Broker


def trust_link_fields(form: Form) -> dict[str, Any]:
    """Directions (the ticked boxes) and scope ceiling (empty: none) of a trust link form."""
    return {"directions": checked(form, "accept", "send"),
            "scope_ceiling": words(form.get("scope_ceiling")) or None}


async def edit_trust_link(broker: Broker, admin: Admin, form: Form, p: dict[str, str]) -> None:
    await run(broker, admin, "update_trust_link", body=trust_link_fields(form), link=p["link"])


def legacy_app_changes(form: Form) -> dict[str, Any]:
    body: dict[str, Any] = {
        "acs_urls": (form.get("acs_urls") or "").split(),  # URLs may hold commas
        "attribute_mapping": pairs(form.get("attribute_mapping"), "attribute mapping"),
        "want_authn_requests_signed": form.get("want_authn_requests_signed") == "on"}
    if form.get("name"):
        body["name"] = form.get("name")
    if form.get("name_id_format"):
        body["name_id_format"] = form.get("name_id_format")
    lifetime = whole_number(form, "assertion_lifetime", "assertion lifetime")
    if lifetime is not None:
        body["assertion_lifetime"] = lifetime
    return body


async def edit_legacy_app(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    await run(broker, admin, "update_legacy_app", body=legacy_app_changes(form),
              entity_id=form.require("entity_id"))

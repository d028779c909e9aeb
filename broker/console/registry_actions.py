"""The registry partners page's forms (registry administrators): a partner's status, the
decision on a pending self-registration, a refresh of a self-registered partner's keys,
invitation codes (issued: the code is in the answering page only; revoked) and registering an
entity by its entity ID or Entity Configuration URL. Each is the admin operation of the same
name; the operations check the role."""

from __future__ import annotations

from typing import Any

from adapters.errors import InvalidRequest
from broker.console.kit import Action, Done, verb_action, whole_number, without_suffix
from broker.console.session import Admin
from broker.console.views import run
from broker.forms import Form
from broker.runtime import Broker

ENTITY_CONFIGURATION = "/.well-known/openid-federation"
DAY = 86_400
DEFAULT_DAYS, MAX_DAYS = 7, 30  # the model's bounds, in the unit the form asks for


partner_status = verb_action("partner action", "partner", ("activate", "suspend", "revoke"),
                             "partner")


async def approve(broker: Broker, admin: Admin, form: Form, p: dict[str, str]) -> None:
    await run(broker, admin, "approve_partner", body={"reason": form.get("reason") or ""},
              partner=p["partner"])


async def reject(broker: Broker, admin: Admin, form: Form, p: dict[str, str]) -> None:
    await run(broker, admin, "reject_partner", body={"reason": form.get("reason") or ""},
              partner=p["partner"])


async def refresh(broker: Broker, admin: Admin, _f: Form, p: dict[str, str]) -> Done:
    done = await run(broker, admin, "refresh_partner", partner=p["partner"])
    return Done("refreshed" if done["changed"] else "unchanged")


async def invite(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]
                 ) -> dict[str, Any]:
    days = whole_number(form, "days", "valid for (days)")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise InvalidRequest(f"valid for (days): 1 to {MAX_DAYS}")
    entity_id = form.get("entity_id")
    made = await run(broker, admin, "issue_invitation", body={
        "entity_id": without_suffix(entity_id, ENTITY_CONFIGURATION) if entity_id else None,
        "lifetime_seconds": (days or DEFAULT_DAYS) * DAY, "note": form.get("note") or ""})
    return {"secret": made["code"], "secret_of": f"invitation {made['id']}"}


async def uninvite(broker: Broker, admin: Admin, _f: Form, p: dict[str, str]) -> None:
    await run(broker, admin, "revoke_invitation", invitation=p["invitation"])


async def register_entity(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]
                          ) -> Done:
    """Fetch, verify and record the entity pending (it then waits for Approve)."""
    body: dict[str, Any] = {
        "entity_id": without_suffix(form.require("entity_id"), ENTITY_CONFIGURATION)}
    for field in ("id", "display_name"):
        if form.get(field):
            body[field] = form.get(field)
    await run(broker, admin, "register_entity", body=body)
    return Done("registered")


# matched in order: the fixed verbs before "{partner}/{verb}"
ACTIONS: dict[tuple[str, str], Action] = {
    ("partners", "invite"): invite,
    ("partners", "register-entity"): register_entity,
    ("partners", "invitations/{invitation}/revoke"): uninvite,
    ("partners", "{partner}/approve"): approve,
    ("partners", "{partner}/reject"): reject,
    ("partners", "{partner}/refresh"): refresh,
    ("partners", "{partner}/{verb}"): partner_status,
}

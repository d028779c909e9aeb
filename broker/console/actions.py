"""What the console's forms do: each turns form fields into one or two admin operations'
JSON bodies (typed as the API's models want them) and runs them as the administrator. An
action answers ``None`` (done: back to its page) or what its page must show once (a new
secret). Refusals are the operations' own ``OAuthError``s."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.responses import RedirectResponse, Response

from adapters.errors import AccessDenied, InvalidRequest, NotFound
from broker import login_flow
from broker.console import edit_actions, registry_actions
from broker.console.kit import Action, Done, verb_action, without_suffix, words
from broker.console.session import Admin
from broker.console.views import run
from broker.forms import Form
from broker.runtime import Broker

DISCOVERY = "/.well-known/openid-configuration"
MAX_RULE_ROWS = 50


def issuer_of(discovery_url: str) -> str:
    """An issuer from what an administrator pastes: the issuer, or its discovery URL."""
    return without_suffix(discovery_url, DISCOVERY)


async def add_oidc(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    oidc: dict[str, Any] = {"issuer": issuer_of(form.require("discovery_url")),
                            "client_id": form.require("client_id"),
                            "scopes": words(form.get("scopes")) or ["openid", "email",
                                                                   "profile"]}
    if form.get("client_secret"):
        oidc["client_secret"] = form.get("client_secret")
    await run(broker, admin, "create_upstream", body={
        "name": form.require("name"), "kind": "oidc",
        "display_name": form.get("display_name"), "domains": words(form.get("domains")),
        "oidc": oidc})


async def add_saml(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    url, xml = form.get("metadata_url"), form.get("metadata_xml")
    if (url is None) == (xml is None):
        raise InvalidRequest("give the IdP's metadata URL or paste its metadata XML (one)")
    saml = {"metadata_url": url} if url else {"metadata_xml": xml}
    await run(broker, admin, "create_upstream", body={
        "name": form.require("name"), "kind": "saml",
        "display_name": form.get("display_name"), "domains": words(form.get("domains")),
        "saml": saml})


async def test_login(broker: Broker, admin: Admin, _f: Form, p: dict[str, str]) -> Response:
    """A login through one upstream that comes back to the upstreams page ("test login"):
    a tenant administrator's, like any change (it replaces this browser's session)."""
    if not admin.can_write:
        raise AccessDenied("only a tenant administrator tests a login")
    name = p["name"]
    if name not in {u["name"] for u in await run(broker, admin, "list_upstreams")
                    if u["status"] == "active"}:
        raise NotFound(f"no active upstream {name[:64]!r}")
    tenant = admin.tenant
    start = f"{tenant.issuer}/login/{quote(name, safe='')}?flow="
    return await login_flow.park_return(
        broker, tenant, f"/t/{tenant.id}/console/upstreams?notice=tested",
        lambda h: RedirectResponse(start + h, status_code=303))


async def upstream_status(broker: Broker, admin: Admin, _f: Form, p: dict[str, str]) -> None:
    verb = p["verb"]
    operation = {"disable": "disable_upstream", "enable": "enable_upstream",
                 "delete": "delete_upstream"}.get(verb)
    if operation is None:
        raise InvalidRequest(f"no upstream action {verb!r}")
    await run(broker, admin, operation, upstream=p["name"])


async def create_client(broker: Broker, admin: Admin, form: Form,
                        _p: dict[str, str]) -> dict[str, Any]:
    made = await run(broker, admin, "create_client", body={
        "name": form.require("name"), "scopes": words(form.get("scopes")),
        "audiences": words(form.get("audiences")),
        "dpop_bound_access_tokens": form.get("dpop") == "on"})
    described = {k: form.get(k) for k in ("owner", "purpose") if form.get(k)}
    if described:
        await run(broker, admin, "describe_agent", body=described,
                  client_id=made["client_id"])
    return {"secret": made["client_secret"], "secret_of": made["client_id"]}


async def rotate_client(broker: Broker, admin: Admin, _f: Form,
                        p: dict[str, str]) -> dict[str, Any]:
    made = await run(broker, admin, "rotate_client_secret", body={},
                     client_id=p["client_id"])
    return {"secret": made["client_secret"], "secret_of": made["client_id"]}


async def agent_action(broker: Broker, admin: Admin, form: Form, p: dict[str, str]) -> None:
    verb = p["verb"]
    if verb not in ("suspend", "resume", "retire"):
        raise InvalidRequest(f"no agent action {verb!r}")
    await run(broker, admin, f"{verb}_agent", body={"reason": form.get("reason") or ""},
              client_id=p["client_id"])


async def put_connection(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    rules: dict[str, str] = {}
    for i in range(MAX_RULE_ROWS):
        scope, rule = form.get(f"scope_{i}"), form.get(f"rule_{i}")
        if scope is not None and rule is not None:
            rules[scope] = rule
    body: dict[str, Any] = {
        "client_id": form.require("client_id"), "audience": form.require("audience"),
        "remote_client_id": form.require("remote_client_id"), "rules": rules,
        "default_rule": form.get("default_rule") or "deny"}
    if form.get("approver"):
        body["approver"] = form.get("approver")
    await run(broker, admin, "put_managed_connection", body=body)


async def delete_connection(broker: Broker, admin: Admin, form: Form,
                            _p: dict[str, str]) -> None:
    await run(broker, admin, "delete_managed_connection", client_id=form.require("client_id"),
              audience=form.require("audience"))


decide = verb_action("decision", "request", ("approve", "deny"), "approval", "id")


async def rotate_keys(broker: Broker, admin: Admin, _f: Form, _p: dict[str, str]) -> None:
    await run(broker, admin, "rotate_keys")


async def compromise_key(broker: Broker, admin: Admin, form: Form, p: dict[str, str]) -> Done:
    """Emergency rotation of one key (the page asks first): out of the JWKS, every token it
    signed refused, a new key signs."""
    await run(broker, admin, "compromise_key", body={"reason": form.get("reason") or ""},
              kid=p["kid"])
    return Done("compromised")


async def assign_role(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    await run(broker, admin, "assign_role", body={
        "kind": form.require("kind"), "subject": form.require("subject"),
        "role": form.require("role")})


async def remove_role(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    await run(broker, admin, "remove_role", body={
        "kind": form.require("kind"), "subject": form.require("subject"),
        "role": form.require("role")})


async def revoke_api_key(broker: Broker, admin: Admin, _f: Form, p: dict[str, str]) -> None:
    await run(broker, admin, "revoke_api_key", key_id=p["key_id"])


async def add_trust_link(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    peer = form.require("peer")
    kind, _, name = peer.partition(":")
    if kind not in ("partner", "tenant") or not name:
        raise InvalidRequest("peer: partner:<id> or tenant:<name>")
    await run(broker, admin, "add_trust_link", body={
        kind: name, **edit_actions.trust_link_fields(form)})


trust_link_status = verb_action("trust link action", "trust_link",
                                ("suspend", "resume", "revoke"), "link")


async def add_legacy_app(broker: Broker, admin: Admin, form: Form, _p: dict[str, str]) -> None:
    body: dict[str, Any] = {}
    if form.get("metadata"):
        body["metadata"] = form.get("metadata")
    if form.get("entity_id"):
        body["entity_id"] = form.get("entity_id")
    if form.get("acs_url"):
        body["acs_urls"] = [form.get("acs_url")]
    if form.get("name"):
        body["name"] = form.get("name")
    await run(broker, admin, "create_legacy_app", body=body)


async def legacy_app_status(broker: Broker, admin: Admin, form: Form,
                            p: dict[str, str]) -> None:
    verb = p["verb"]
    entity_id = form.require("entity_id")
    if verb == "delete":
        await run(broker, admin, "delete_legacy_app", entity_id=entity_id)
    elif verb in ("disable", "enable"):
        await run(broker, admin, f"{verb}_legacy_app", body={"entity_id": entity_id})
    else:
        raise InvalidRequest(f"no legacy app action {verb!r}")


async def create_api_key(broker: Broker, admin: Admin, form: Form,
                         _p: dict[str, str]) -> dict[str, Any]:
    made = await run(broker, admin, "create_api_key", body={
        "client_id": form.require("client_id"), "name": form.require("name"),
        "scopes": words(form.get("scopes"))})
    return {"secret": made["api_key"], "secret_of": made["redacted"]}


async def rotate_api_key(broker: Broker, admin: Admin, _f: Form,
                         p: dict[str, str]) -> dict[str, Any]:
    made = await run(broker, admin, "rotate_api_key", body={}, key_id=p["key_id"])
    return {"secret": made["api_key"], "secret_of": made["redacted"]}


# (page, path under the page) -> action; the page is where the answer is shown. Routes are
# matched in this order: a fixed path ("edit") before the "{verb}" of the same shape.
ACTIONS: dict[tuple[str, str], Action] = {
    ("upstreams", "add-oidc"): add_oidc,
    ("upstreams", "add-saml"): add_saml,
    ("upstreams", "{name}/test"): test_login,
    ("upstreams", "{name}/{verb}"): upstream_status,
    ("clients", "create"): create_client,
    ("clients", "{client_id}/rotate"): rotate_client,
    ("clients", "{client_id}/{verb}"): agent_action,
    ("connections", "put"): put_connection,
    ("connections", "delete"): delete_connection,
    ("approvals", "{id}/{verb}"): decide,
    ("keys", "rotate"): rotate_keys,
    ("keys", "{kid}/compromise"): compromise_key,
    ("roles", "assign"): assign_role,
    ("roles", "remove"): remove_role,
    ("trust-links", "add"): add_trust_link,
    ("trust-links", "{link}/edit"): edit_actions.edit_trust_link,
    ("trust-links", "{link}/{verb}"): trust_link_status,
    ("legacy-apps", "add"): add_legacy_app,
    ("legacy-apps", "edit"): edit_actions.edit_legacy_app,
    ("legacy-apps", "{verb}"): legacy_app_status,
    ("api-keys", "create"): create_api_key,
    ("api-keys", "{key_id}/rotate"): rotate_api_key,
    ("api-keys", "{key_id}/revoke"): revoke_api_key,
    **registry_actions.ACTIONS,
}

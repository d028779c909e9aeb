"""broker.policy: managed-connection decisions for the ID-JAG token exchange (pure, no I/O)."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from adapters.errors import InvalidScope, InvalidTarget, OAuthError
from broker import policy
from broker.policy import ConnectionIndex, Decision, ManagedConnection, decide

TENANT = "acme"
CLIENT = "agent-1"
AUD = "https://as.partner.example"
API = "https://api.partner.example/v1"
REMOTE = "acme-agent-1-at-partner"
RULES: dict[str, Any] = {
    "read": "grant",
    "write": "grant",
    "admin": "deny",
    "pay": "approve",
    "delete": "approve",
    "calendar": "grant",
}
# RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5B\x5D-\x7E]+")


def conn(**overrides: Any) -> ManagedConnection:
    fields: dict[str, Any] = {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "audience": AUD,
        "rules": dict(RULES),
        "remote_client_id": REMOTE,
        "resources": frozenset({API}),
    }
    fields.update(overrides)
    return ManagedConnection(**fields)


def run(*connections: ManagedConnection, **kwargs: Any) -> Decision:
    index = ConnectionIndex(connections or [conn()])
    kwargs.setdefault("client_id", CLIENT)
    kwargs.setdefault("audience", AUD)
    return decide(index, **kwargs)


def refused(error: type[OAuthError], *connections: ManagedConnection, **kwargs: Any) -> OAuthError:
    with pytest.raises(error) as info:
        run(*connections, **kwargs)
    body = info.value.body()
    assert body["error"] == error.error
    assert DESCRIPTION.fullmatch(body["error_description"]), body
    return info.value


# 1. the managed connection for (client_id, audience)


def test_known_connection_decides_with_its_remote_client_id():
    d = run(requested_scopes=["read"])
    assert d == Decision(("read",), (), 300, None, REMOTE)


def test_unknown_audience_is_invalid_target():
    e = refused(InvalidTarget, requested_scopes=["read"], audience="https://as.other.example")
    assert e.description == "no managed connection for audience https://as.other.example"


def test_unknown_client_is_invalid_target():
    refused(InvalidTarget, requested_scopes=["read"], client_id="agent-2")


def test_connection_of_another_client_or_audience_is_not_used():
    mine = conn(audience="https://as.one.example")
    theirs = conn(client_id="agent-2", audience=AUD)
    # agent-1 has a connection (to another audience); agent-2 has one to AUD: neither fits.
    refused(InvalidTarget, mine, theirs, requested_scopes=["read"])
    assert run(mine, theirs, requested_scopes=["read"], client_id="agent-2").granted == ("read",)


def test_echoed_audience_is_safe_in_an_error_description():
    e = refused(InvalidTarget, requested_scopes=["read"], audience='https://x"\n\\é')
    assert "\n" not in e.description and '"' not in e.description


# 2. resource (RFC 8707)


def test_allowed_resource_is_returned():
    assert run(requested_scopes=["read"], resource=API).resource == API


def test_resource_not_allowed_is_invalid_target():
    refused(InvalidTarget, requested_scopes=["read"], resource="https://api.partner.example/v2")


def test_resource_of_another_connection_is_invalid_target():
    other = conn(audience="https://as.two.example", resources=frozenset({"https://api.two"}))
    refused(InvalidTarget, conn(), other, requested_scopes=["read"], resource="https://api.two")


def test_no_resources_configured_refuses_every_resource_but_allows_none():
    c = conn(resources=frozenset())
    refused(InvalidTarget, c, requested_scopes=["read"], resource=API)
    assert run(c, requested_scopes=["read"]).resource is None


def test_resource_check_comes_before_scope_checks():
    refused(InvalidTarget, requested_scopes=["pay", "bad scope"], resource="https://nope")


# 3. no scope requested


def test_no_scope_requested_grants_the_grant_rules_sorted():
    d = run(requested_scopes=None)
    assert d.granted == ("calendar", "read", "write")
    assert d.dropped == ()
    assert d.defaulted and d.scope_changed
    assert d.scope == "calendar read write"


def test_no_scope_requested_ignores_default_rule_grant_for_unlisted_scopes():
    d = run(conn(rules={"b": "grant", "a": "deny"}, default_rule="grant"), requested_scopes=None)
    assert d.granted == ("b",)


def test_no_scope_requested_and_no_grant_rule_is_invalid_scope():
    c = conn(rules={"pay": "approve", "admin": "deny"}, default_rule="grant")
    refused(InvalidScope, c, requested_scopes=None)


def test_no_scope_requested_is_narrowed_by_the_ceiling():
    d = run(requested_scopes=None, ceiling=frozenset({"write", "read", "pay"}))
    assert d.granted == ("read", "write")
    assert d.dropped == ("calendar",)


def test_empty_scope_list_is_not_the_same_as_no_scope():
    e = refused(InvalidScope, requested_scopes=[])
    assert e.description == "no requested scope may be granted"


# 4. rules per scope: grant, approve, deny, default_rule, ceiling


def test_grant_scopes_are_granted_in_request_order():
    d = run(requested_scopes=["write", "calendar", "read"])
    assert d.granted == ("write", "calendar", "read")
    assert not d.scope_changed


def test_duplicates_are_removed_keeping_first_occurrence():
    d = run(requested_scopes=["write", "read", "write", "admin", "read", "admin"])
    assert d.granted == ("write", "read")
    assert d.dropped == ("admin",)


def test_duplicates_alone_do_not_change_the_scope():
    assert not run(requested_scopes=["read", "read"]).scope_changed


def test_deny_scope_is_dropped_and_reported():
    d = run(requested_scopes=["admin", "read"])
    assert d.granted == ("read",)
    assert d.dropped == ("admin",)
    assert d.scope_changed


def test_unlisted_scope_follows_default_deny():
    d = run(requested_scopes=["read", "unlisted"])
    assert d.granted == ("read",)
    assert d.dropped == ("unlisted",)


def test_unlisted_scope_follows_default_grant():
    d = run(conn(default_rule="grant"), requested_scopes=["unlisted", "read", "admin"])
    assert d.granted == ("unlisted", "read")
    assert d.dropped == ("admin",)


def test_unlisted_scope_follows_default_approve():
    e = refused(InvalidScope, conn(default_rule="approve"), requested_scopes=["read", "unlisted"])
    assert e.description == "scopes need approval: unlisted"


def test_approve_scopes_are_refused_naming_them_in_request_order():
    e = refused(InvalidScope, requested_scopes=["read", "pay", "admin", "delete", "pay"])
    assert e.description == "scopes need approval: pay delete"


def test_approve_scope_above_the_ceiling_is_dropped_not_asked():
    d = run(requested_scopes=["read", "pay"], ceiling=frozenset({"read"}))
    assert d.granted == ("read",)
    assert d.dropped == ("pay",)


def test_ceiling_intersects_the_granted_scopes():
    d = run(requested_scopes=["read", "write", "calendar"], ceiling=frozenset({"calendar", "read"}))
    assert d.granted == ("read", "calendar")
    assert d.dropped == ("write",)
    assert d.scope_changed


def test_ceiling_never_adds_a_scope():
    d = run(requested_scopes=["read", "admin"], ceiling=frozenset({"read", "admin", "write"}))
    assert d.granted == ("read",)
    assert d.dropped == ("admin",)


def test_no_ceiling_and_a_ceiling_with_everything_agree():
    everything = frozenset(RULES)
    assert run(requested_scopes=["read", "admin"]) == run(
        requested_scopes=["read", "admin"], ceiling=everything
    )


def test_empty_ceiling_grants_nothing():
    refused(InvalidScope, requested_scopes=["read"], ceiling=frozenset())


def test_a_str_is_not_a_scope_list():
    with pytest.raises(TypeError):
        run(requested_scopes="read")


# 5. nothing left


def test_nothing_left_is_invalid_scope_naming_nothing():
    e = refused(InvalidScope, requested_scopes=["admin", "secret:thing"])
    assert e.description == "no requested scope may be granted"
    assert "admin" not in e.description and "secret" not in e.description


def test_nothing_left_after_the_ceiling_is_invalid_scope():
    refused(InvalidScope, requested_scopes=["read", "write"], ceiling=frozenset({"calendar"}))


# 6. lifetime


@pytest.mark.parametrize(
    ("max_lifetime", "requested", "expected"),
    [
        (300, None, 300),
        (120, None, 120),
        (120, 60, 60),
        (120, 600, 120),
        (600, None, 300),
        (600, 450, 300),
        (600, 200, 200),
        (300, 0, 300),
        (300, -5, 1),
        (1, None, 1),
        (1, 100, 1),
    ],
)
def test_lifetime_is_clamped(max_lifetime: int, requested: int | None, expected: int):
    c = conn(max_lifetime=max_lifetime)
    assert run(c, requested_scopes=["read"], requested_lifetime=requested).lifetime == expected


# 7. scope-token syntax (RFC 6749 §3.3)


@pytest.mark.parametrize("token", ["", "a b", 'a"b', "a\\b", "é", "a\x7f", "\t", "a\nb"])
def test_malformed_scope_token_is_invalid_scope(token: str):
    c = conn(default_rule="grant")
    e = refused(InvalidScope, c, requested_scopes=["read", token])
    assert token not in e.description or token == ""


def test_malformed_scope_token_is_refused_before_approval_or_denial():
    refused(InvalidScope, requested_scopes=["pay", "x y"])
    e = refused(InvalidScope, requested_scopes=["admin", "x y"])
    assert e.description != "no requested scope may be granted"


@pytest.mark.parametrize("token", ["!", "~", "urn:x:y/z[0]", "a#b", "#{}|"])
def test_edge_scope_tokens_are_valid(token: str):
    assert run(conn(default_rule="grant"), requested_scopes=[token]).granted == (token,)


def test_rules_must_name_scope_tokens():
    with pytest.raises(ValueError, match="scope-token"):
        conn(rules={"read write": "grant"})


# Decision.scope_changed


@pytest.mark.parametrize(
    ("dropped", "defaulted", "changed"),
    [((), False, False), (("a",), False, True), ((), True, True), (("a",), True, True)],
)
def test_scope_changed(dropped: tuple[str, ...], defaulted: bool, changed: bool):
    d = Decision(("x",), dropped, 300, None, REMOTE, defaulted=defaulted)
    assert d.scope_changed is changed


# the index


def many_tenants() -> list[ManagedConnection]:
    audiences = [f"https://as{i}.example" for i in range(5)] + ["https://as0.example/"]
    return [
        conn(
            tenant_id=tenant,
            client_id=f"agent-{c}",
            audience=audience,
            remote_client_id=f"{tenant}|agent-{c}|{audience}",
            rules={f"s{c % 7}": "grant", "shared": "grant"},
        )
        for tenant in ("t1", "t2", "t3")
        for c in range(40)
        for audience in audiences
    ]


def test_index_of_each_tenant_returns_exactly_its_connections():
    connections = many_tenants()
    for tenant in ("t1", "t2", "t3"):
        mine = [c for c in connections if c.tenant_id == tenant]
        index = ConnectionIndex(mine)
        assert len(index) == len(mine) == 240
        assert index.tenant_id == tenant
        for c in mine:
            found = index.get(c.client_id, c.audience)
            assert found is c
            assert found.remote_client_id == f"{tenant}|{c.client_id}|{c.audience}"
            d = decide(index, client_id=c.client_id, audience=c.audience, requested_scopes=None)
            assert d.remote_client_id == c.remote_client_id


def test_index_misses_near_keys():
    index = ConnectionIndex([c for c in many_tenants() if c.tenant_id == "t1"])
    assert index.get("agent-1", "https://as1.example") is not None
    assert index.get("agent-1", "https://as1.example/") is None
    assert index.get("agent-1", "HTTPS://as1.example") is None
    assert index.get("Agent-1", "https://as1.example") is None
    assert index.get("agent-40", "https://as1.example") is None
    assert index.get("https://as1.example", "agent-1") is None
    assert index.get("agent-1", "https://as0.example/").audience == "https://as0.example/"
    assert index.get("agent-1", "https://as0.example").audience == "https://as0.example"


def test_index_keys_do_not_collide_through_concatenation():
    a = conn(client_id="a|b", audience="c", remote_client_id="first")
    b = conn(client_id="a", audience="b|c", remote_client_id="second")
    index = ConnectionIndex([a, b])
    assert index.get("a|b", "c") is a
    assert index.get("a", "b|c") is b
    assert index.get("a", "b") is None


def test_index_refuses_connections_of_two_tenants():
    with pytest.raises(ValueError, match="more than one tenant"):
        ConnectionIndex(many_tenants())
    with pytest.raises(ValueError, match="more than one tenant"):
        ConnectionIndex([conn(tenant_id="t2")], tenant_id="t1")


def test_index_refuses_two_connections_for_one_key():
    with pytest.raises(ValueError, match="two managed connections"):
        ConnectionIndex([conn(), conn(remote_client_id="other")])


def test_empty_index_finds_nothing():
    index = ConnectionIndex([], tenant_id="t1")
    assert len(index) == 0 and index.tenant_id == "t1"
    with pytest.raises(InvalidTarget):
        decide(index, client_id=CLIENT, audience=AUD, requested_scopes=["read"])


def test_index_accepts_any_iterable_once():
    index = ConnectionIndex(c for c in [conn(), conn(audience="https://as.two")])
    assert len(index) == 2


# frozen inputs


def test_rules_cannot_be_mutated_through_the_connection():
    c = conn()
    with pytest.raises(TypeError):
        c.rules["admin"] = "grant"  # type: ignore[index]
    with pytest.raises(TypeError):
        del c.rules["read"]  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.rules = {"admin": "grant"}  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.default_rule = "grant"  # type: ignore[misc]
    assert run(c, requested_scopes=["admin", "read"]).dropped == ("admin",)


def test_mutating_the_source_rules_afterwards_changes_nothing():
    rules: dict[str, Any] = {"read": "grant", "admin": "deny"}
    resources = {API}
    c = conn(rules=rules, resources=resources)
    rules["admin"] = "grant"
    rules["new"] = "grant"
    resources.add("https://evil.example")
    assert c.rules == {"read": "grant", "admin": "deny"}
    assert isinstance(c.resources, frozenset) and c.resources == {API}
    assert c.granted_by_default == ("read",)
    d = run(c, requested_scopes=["read", "admin", "new"])
    assert d.granted == ("read",) and d.dropped == ("admin", "new")


def test_decision_is_frozen():
    d = run(requested_scopes=["read"])
    assert isinstance(d.granted, tuple) and isinstance(d.dropped, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.granted = ("admin",)  # type: ignore[misc]


def test_replace_recomputes_the_grant_rules():
    c = dataclasses.replace(conn(), rules={"only": "grant"})
    assert c.granted_by_default == ("only",)
    assert run(c, requested_scopes=None).granted == ("only",)


def test_connections_are_hashable_and_compare_by_value():
    assert conn() == conn() and hash(conn()) == hash(conn())
    assert conn() != conn(rules={"read": "grant"})
    assert len({conn(), conn(), conn(audience="https://as.two")}) == 2


@pytest.mark.parametrize(
    "overrides",
    [
        {"rules": {"read": "allow"}},
        {"default_rule": "permit"},
        {"max_lifetime": 0},
        {"max_lifetime": True},
        {"client_id": ""},
        {"audience": ""},
        {"remote_client_id": ""},
        {"resources": frozenset({""})},
    ],
)
def test_invalid_connections_are_refused(overrides: dict[str, Any]):
    with pytest.raises(ValueError):
        conn(**overrides)


def test_policy_is_pure():
    source = Path(policy.__file__).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    allowed = {"__future__", "re", "collections.abc", "dataclasses", "types", "typing"}
    assert imported <= allowed | {"adapters.errors"}, imported - allowed

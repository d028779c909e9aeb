"""``tessera role assign|list|remove`` on the local deployment: the same operations (and role
rules) as the admin API; audit events of the command line name ``cli``."""

from __future__ import annotations

import json
from typing import Any


def test_role_assign_list_remove(cli: Any) -> None:
    cli("tenant", "create", "acme")
    made = json.loads(cli("client", "create", "--tenant", "acme", "--name", "ops robot",
                          "--json").stdout)
    client_id = made["client_id"]
    cli("role", "assign", "--tenant", "acme", "--group", "idp-admins", "--role", "tenant_admin")
    cli("role", "assign", "--tenant", "acme", "--client", client_id, "--role",
        "tenant_auditor")
    listed = json.loads(cli("role", "list", "--tenant", "acme", "--json").stdout)
    assert {(x["kind"], x["subject"], x["role"]) for x in listed} == {
        ("group", "idp-admins", "tenant_admin"), ("client", client_id, "tenant_auditor")}
    assert {x["created_by"] for x in listed} == {"cli"}
    text = cli("role", "list", "--tenant", "acme").stdout
    assert "idp-admins" in text and "tenant_admin" in text
    cli("role", "remove", "--tenant", "acme", "--group", "idp-admins", "--role",
        "tenant_admin")
    listed = json.loads(cli("role", "list", "--tenant", "acme", "--json").stdout)
    assert [x["subject"] for x in listed] == [client_id]
    events = [json.loads(line) for line in
              cli("audit", "export", "--tenant", "acme").stdout.splitlines()]
    assert [(e["action"], e["detail"]["actor"]) for e in events
            if e["action"].startswith("role.")] == [
        ("role.assigned", "cli"), ("role.assigned", "cli"), ("role.removed", "cli")]


def test_role_refusals(cli: Any) -> None:
    cli("tenant", "create", "acme")
    # a user who never logged in does not exist: 4 (not found); nothing written
    r = cli("role", "assign", "--tenant", "acme", "--user", "ghost", "--role", "tenant_admin",
            check=False)
    assert r.returncode == 4, r.stderr
    r = cli("role", "assign", "--tenant", "acme", "--group", "g", "--role", "root",
            check=False)
    assert r.returncode == 2
    r = cli("role", "assign", "--tenant", "acme", "--role", "tenant_admin", check=False)
    assert r.returncode == 2
    r = cli("role", "remove", "--tenant", "acme", "--group", "g", "--role", "tenant_admin",
            check=False)
    assert r.returncode == 4
    assert json.loads(cli("role", "list", "--tenant", "acme", "--json").stdout) == []

"""The ``tessera`` command line, run as a user would (a subprocess on a SQLite file)."""

from __future__ import annotations

import json
import sqlite3


def test_cli_end_to_end(cli):
    tenant = json.loads(cli("tenant", "create", "acme", "--json").stdout)
    assert tenant["id"] == "acme" and tenant["issuer"] == "http://127.0.0.1:8000/t/acme"
    created = json.loads(cli("client", "create", "--tenant", "acme", "--name", "agent",
                             "--scope", "read", "--scope", "write",
                             "--audience", "https://api.example", "--dpop-required",
                             "--json").stdout)
    assert created["scopes"] == ["read", "write"] and created["dpop_bound_access_tokens"]
    assert len(created["client_secret"]) >= 40
    listed = json.loads(cli("client", "list", "--tenant", "acme", "--json").stdout)
    assert [c["client_id"] for c in listed] == [created["client_id"]]
    assert "client_secret" not in listed[0]
    # the secret is stored only as a keyed hash
    with sqlite3.connect(cli.db) as db:
        stored = db.execute("select secret_hash from clients").fetchone()[0]
    assert created["client_secret"] not in stored and stored.startswith("hs256$")
    assert (cli.tmp / "master.key").stat().st_mode & 0o777 == 0o600

    keys = json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout)
    assert sorted(k["state"] for k in keys) == ["active", "next"]
    early = cli("keys", "rotate", "--tenant", "acme", check=False)  # next published just now
    assert early.returncode == 3 and "can sign in" in early.stderr
    with sqlite3.connect(cli.db) as db:  # as if the keys had been published 10 minutes ago
        db.execute("update signing_keys set created_at = created_at - 600")
    rotated = json.loads(cli("keys", "rotate", "--tenant", "acme", "--json").stdout)
    assert rotated["active"] == next(k["kid"] for k in keys if k["state"] == "next")

    disabled = json.loads(cli("client", "disable", "--tenant", "acme", created["client_id"],
                              "--json").stdout)
    assert disabled["status"] == "disabled"
    assert json.loads(cli("tenant", "disable", "acme", "--json").stdout)["status"] == "disabled"
    assert [t["status"] for t in json.loads(cli("tenant", "list", "--json").stdout)] == [
        "disabled"]

    verify = cli("audit", "verify", "--tenant", "acme")
    assert "intact" in verify.stdout
    lines = cli("audit", "export", "--tenant", "acme").stdout.splitlines()
    assert [json.loads(x)["action"] for x in lines][:2] == ["tenant.created", "client.created"]

    # edit one stored event: verify names it and exits 1
    with sqlite3.connect(cli.db) as db:
        db.execute("update audit_events set detail = '{\"forged\": true}' where seq = 2")
    broken = cli("audit", "verify", "--tenant", "acme", "--json", check=False)
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["first_broken_seq"] == 2


def test_cli_errors_are_clear(cli):
    proc = cli("tenant", "create", "Not Valid", check=False)
    assert proc.returncode == 5 and "tenant name" in proc.stderr
    proc = cli("client", "create", "--tenant", "ghost", "--name", "x", check=False)
    assert proc.returncode == 4 and "no tenant" in proc.stderr
    proc = cli("keys", "rotate", "--tenant", "ghost", check=False)
    assert proc.returncode == 4


def test_cli_trust_registry_and_managed_connections(cli, tmp_path):
    for name in ("acme", "pricing"):
        cli("tenant", "create", name, "--json")
    agent = json.loads(cli("client", "create", "--tenant", "acme", "--name", "agent",
                           "--json").stdout)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "p1",
                                          "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
                                          "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA"}]}))
    partner = json.loads(cli("partner", "register", "--issuer", "https://idp.partner.example",
                             "--name", "Partner", "--jwks-file", str(jwks), "--id", "partner",
                             "--json").stdout)
    assert partner["status"] == "pending"
    proc = cli("trust", "add", "--tenant", "pricing", "--partner", "partner", "--accept",
               check=False)
    assert proc.returncode == 5 and "not active" in proc.stderr
    proc = cli("trust", "add", "--tenant", "pricing", "--partner", "partner", check=False)
    assert proc.returncode == 5 and "name at least one direction" in proc.stderr
    assert json.loads(cli("partner", "activate", "partner", "--json").stdout)["status"] == \
        "active"
    link = json.loads(cli("trust", "add", "--tenant", "pricing", "--partner", "partner",
                          "--accept", "--scope", "read", "--json").stdout)
    assert link["scope_ceiling"] == ["read"] and link["status"] == "active"
    assert link["directions"] == ["accept"]
    peer = json.loads(cli("trust", "add", "--tenant", "acme", "--peer-tenant", "pricing",
                          "--send", "--json").stdout)
    assert peer["issuer"] == "http://127.0.0.1:8000/t/pricing"
    assert peer["directions"] == ["send"]
    both = json.loads(cli("trust", "direction", "--tenant", "acme", peer["id"], "--accept",
                          "--json").stdout)
    assert both["directions"] == ["accept", "send"]
    back = json.loads(cli("trust", "direction", "--tenant", "acme", peer["id"], "--no-accept",
                          "--json").stdout)
    assert back["directions"] == ["send"]
    proc = cli("trust", "direction", "--tenant", "acme", peer["id"], "--no-send", check=False)
    assert proc.returncode == 5 and "at least one direction" in proc.stderr
    suspended = json.loads(cli("trust", "suspend", "--tenant", "pricing", link["id"],
                               "--json").stdout)
    assert suspended["status"] == "suspended"
    conn = json.loads(cli("connection", "set", "--tenant", "acme", "--client",
                          agent["client_id"], "--audience", peer["issuer"],
                          "--remote-client-id", "agent-at-pricing", "--grant", "read",
                          "--approve", "pay", "--deny", "admin", "--json").stdout)
    assert conn["rules"] == {"read": "grant", "pay": "approve", "admin": "deny"}
    listed = json.loads(cli("connection", "list", "--tenant", "acme", "--json").stdout)
    assert len(listed) == 1
    token = cli("id-token", "--tenant", "acme", "--client", agent["client_id"], "--sub",
                "alice").stdout.strip()
    assert token.count(".") == 2
    proc = cli("id-token", "--tenant", "acme", "--client", "ghost", "--sub", "x", check=False)
    assert proc.returncode == 4
    events = [json.loads(x)["action"] for x in cli("audit", "export", "--tenant",
                                                   "pricing").stdout.splitlines()]
    assert "trust_link.created" in events and "trust_link.suspended" in events

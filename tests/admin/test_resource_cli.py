"""``tessera resource``: register, read, change and delete a resource server from the command
line (the README's "Protecting an MCP server with tessera" starts here)."""

from __future__ import annotations

import json
from typing import Any

from broker.cli.exits import NOT_FOUND, REFUSED, USAGE


def _json(proc: Any) -> Any:
    return json.loads(proc.stdout)


def test_resource_lifecycle(cli: Any) -> None:
    cli("tenant", "create", "pricing")
    agent = _json(cli("client", "create", "--tenant", "pricing", "--name", "agent", "--json"))
    added = _json(cli("resource", "add", "--tenant", "pricing", "prices", "--identifier",
                      "https://mcp.pricing.example/mcp", "--scope", "mcp:read=Read prices",
                      "--scope", "mcp:write=Change prices", "--default-scope", "mcp:read",
                      "--client", agent["client_id"], "--lifetime", "600", "--dpop-required",
                      "--json"))
    assert added["scopes"] == {"mcp:read": "Read prices", "mcp:write": "Change prices"}
    assert added["default_scopes"] == ["mcp:read"] and added["require_dpop"] is True
    assert added["allowed_clients"] == [agent["client_id"]]
    assert added["resource_metadata_url"].endswith(
        "/t/pricing/resources/prices/.well-known/oauth-protected-resource")
    changed = _json(cli("resource", "update", "--tenant", "pricing", "prices", "--no-dpop",
                        "--lifetime", "60", "--json"))
    assert changed["require_dpop"] is False and changed["access_token_lifetime"] == 60
    assert changed["scopes"] == added["scopes"]  # not given: unchanged
    listed = cli("resource", "list", "--tenant", "pricing").stdout
    assert "https://mcp.pricing.example/mcp" in listed
    shown = _json(cli("resource", "show", "--tenant", "pricing", "prices", "--json"))
    assert shown["identifier"] == "https://mcp.pricing.example/mcp"
    cli("resource", "delete", "--tenant", "pricing", "prices")
    gone = cli("resource", "show", "--tenant", "pricing", "prices", check=False)
    assert gone.returncode == NOT_FOUND and "Traceback" not in gone.stderr


def test_resource_refusals(cli: Any) -> None:
    cli("tenant", "create", "pricing")
    bad = cli("resource", "add", "--tenant", "pricing", "prices", "--identifier",
              "ftp://mcp.example/mcp", check=False)
    assert bad.returncode == REFUSED and "identifier" in bad.stderr
    bad = cli("resource", "add", "--tenant", "pricing", "prices", "--identifier",
              "https://mcp.example/mcp", "--scope", "read", "--default-scope", "write",
              check=False)
    assert bad.returncode == REFUSED and "default_scopes" in bad.stderr
    bad = cli("resource", "add", "--tenant", "pricing", "prices", check=False)
    assert bad.returncode == USAGE
    bad = cli("resource", "list", "--tenant", "nobody", check=False)
    assert bad.returncode == NOT_FOUND

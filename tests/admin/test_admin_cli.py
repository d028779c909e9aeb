"""The lifecycle commands of the ``tessera`` CLI, run as an operator would (a subprocess on a
SQLite file): they build the admin API's request models (same validation, same refusals) and
call the same services; their audit events name the actor ``cli``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.admin.admin_helpers import metadata, new_key


def _json(proc: Any) -> Any:
    return json.loads(proc.stdout)


def test_tenant_webhook_and_client_lifecycle(cli: Any) -> None:
    cli("tenant", "create", "acme")
    updated = _json(cli("tenant", "update", "acme", "--display-name", "Acme Corp", "--set",
                        "max_token_lifetime=600", "--set", "dpop_nonce_required=true",
                        "--json"))
    assert updated["display_name"] == "Acme Corp"
    assert updated["settings"]["max_token_lifetime"] == 600
    assert updated["settings"]["dpop_nonce_required"] is True
    bad = cli("tenant", "update", "acme", "--set", "key_algo=RS256", check=False)
    assert bad.returncode == 5 and "settings.key_algo: unknown field" in bad.stderr
    assert "Traceback" not in bad.stderr

    hook = _json(cli("webhook", "set", "--tenant", "acme", "--url",
                     "https://hooks.acme.example/tessera", "--json"))
    assert hook["secret"].startswith("whsec_")
    assert _json(cli("webhook", "set", "--tenant", "acme", "--url",
                     "https://hooks.acme.example/v2", "--json"))["secret"] is None
    rotated = _json(cli("webhook", "rotate-secret", "--tenant", "acme", "--overlap", "60",
                        "--json"))
    assert rotated["secret"] not in (None, hook["secret"])
    assert rotated["previous_valid_until"] is not None
    shown = cli("webhook", "show", "--tenant", "acme", "--json").stdout
    assert hook["secret"] not in shown and rotated["secret"] not in shown
    bad = cli("webhook", "set", "--tenant", "acme", "--url", "file:///etc/passwd", check=False)
    assert bad.returncode == 5 and "url:" in bad.stderr

    created = _json(cli("client", "create", "--tenant", "acme", "--name", "agent", "--scope",
                        "read", "--json"))
    client_id = created["client_id"]
    changed = _json(cli("client", "update", "--tenant", "acme", client_id, "--scope", "read",
                        "--scope", "write", "--lifetime", "60", "--redirect-uri",
                        "https://app.acme.example/cb", "--json"))
    assert changed["scopes"] == ["read", "write"] and changed["access_token_lifetime"] == 60
    assert changed["redirect_uris"] == ["https://app.acme.example/cb"]
    assert changed["name"] == "agent"  # not given: unchanged
    bad = cli("client", "update", "--tenant", "acme", client_id, "--redirect-uri",
              "javascript:alert(1)", check=False)
    assert bad.returncode == 5 and "redirect_uris[0]" in bad.stderr
    rotated_client = _json(cli("client", "rotate-secret", "--tenant", "acme", client_id,
                               "--overlap", "0", "--json"))
    assert rotated_client["client_secret"] not in (None, created["client_secret"])
    assert _json(cli("client", "delete", "--tenant", "acme", client_id, "--json"))[
        "status"] == "retired"

    refused = cli("tenant", "delete", "acme", check=False)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert _json(cli("tenant", "delete", "acme", "--yes", "--json"))["status"] == "archived"
    events = [json.loads(x) for x in cli("audit", "export", "--tenant", "acme")
              .stdout.splitlines()]
    by_action = {e["action"]: e["detail"].get("actor") for e in events}
    for action in ("tenant.updated", "webhook.set", "webhook.secret_rotated",
                   "client.updated", "client.secret_rotated", "agent.retired",
                   "tenant.archived"):
        assert by_action[action] == "cli", action
    for secret in (hook["secret"], rotated["secret"], created["client_secret"],
                   rotated_client["client_secret"]):
        assert secret not in json.dumps(events)


def test_registry_upstream_and_legacy_app_lifecycle(cli: Any, tmp_path: Path) -> None:
    cli("tenant", "create", "acme")
    cli("tenant", "create", "pricing")
    jwks = tmp_path / "jwks.json"
    from joserfc.jwk import ECKey

    jwks.write_text(json.dumps({"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}))
    cli("partner", "register", "--issuer", "https://idp.partner.example", "--name", "Partner",
        "--jwks-file", str(jwks), "--id", "partner")
    cli("partner", "activate", "partner")
    partner = _json(cli("partner", "update", "partner", "--name", "Partner Inc", "--contact",
                        "ops@partner.example", "--jwks-uri", "https://idp.partner.example/jwks",
                        "--json"))
    assert (partner["display_name"], partner["jwks"], partner["jwks_uri"]) == (
        "Partner Inc", None, "https://idp.partner.example/jwks")
    link = _json(cli("trust", "add", "--tenant", "pricing", "--partner", "partner", "--accept",
                     "--json"))
    moved = _json(cli("trust", "update", "--tenant", "pricing", link["id"], "--no-accept",
                      "--send", "--scope", "read", "--json"))
    assert moved["directions"] == ["send"] and moved["scope_ceiling"] == ["read"]

    old, new = new_key(), new_key()
    xml = tmp_path / "idp.xml"
    xml.write_text(metadata(old))
    cli("upstream", "add-saml", "--tenant", "acme", "--name", "corp", "--metadata-file",
        str(xml))
    xml.write_text(metadata(new))
    refreshed = _json(cli("upstream", "refresh-metadata", "--tenant", "acme", "corp",
                          "--metadata-file", str(xml), "--json"))
    assert refreshed["saml"]["metadata_updated_at"] is not None
    renamed = _json(cli("upstream", "update", "--tenant", "acme", "corp", "--display-name",
                        "Corp SSO", "--domain", "corp.example", "--json"))
    assert renamed["display_name"] == "Corp SSO" and renamed["domains"] == ["corp.example"]
    assert _json(cli("upstream", "delete", "--tenant", "acme", "corp", "--json"))[
        "status"] == "deleted"

    entity = "https://sp.acme.example/metadata"
    cli("legacy-app", "add", "--tenant", "acme", "--entity-id", entity, "--acs",
        "https://sp.acme.example/acs")
    app = _json(cli("legacy-app", "update", "--tenant", "acme", entity, "--acs",
                    "https://sp.acme.example/acs2", "--attribute", "mail=email", "--json"))
    assert app["acs_urls"] == ["https://sp.acme.example/acs2"]
    assert app["attribute_mapping"] == {"mail": "email"}
    bad = cli("legacy-app", "update", "--tenant", "acme", entity, "--acs",
              "http://sp.acme.example/acs", check=False)
    assert bad.returncode == 5 and "acs_urls[0]" in bad.stderr
    cli("legacy-app", "delete", "--tenant", "acme", entity)
    assert _json(cli("legacy-app", "list", "--tenant", "acme", "--json")) == []

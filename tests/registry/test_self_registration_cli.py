"""``tessera registry`` on the local deployment: invitations (the code printed once), the
refusals' exit codes, the registry webhook; nothing is fetched for a refused entity id."""

from __future__ import annotations

import json

from broker.cli.exits import NOT_FOUND, REFUSED, USAGE


def test_invitations(cli):
    issued = json.loads(cli("registry", "invite", "--entity-id", "https://idp.partner.example",
                            "--lifetime", "3600", "--note", "Partner Inc.", "--json").stdout)
    assert issued["code"].startswith("tri_") and issued["state"] == "open"
    assert issued["entity_id"] == "https://idp.partner.example"
    listed = json.loads(cli("registry", "invitations", "--json").stdout)
    assert [i["id"] for i in listed] == [issued["id"]] and listed[0]["code"] is None
    assert issued["code"] not in cli("registry", "invitations").stdout
    revoked = json.loads(cli("registry", "uninvite", issued["id"], "--json").stdout)
    assert revoked["state"] == "revoked"
    again = cli("registry", "uninvite", issued["id"], check=False)
    assert again.returncode == REFUSED and "revoked already" in again.stderr
    assert cli("registry", "uninvite", "0123456789abcdef", check=False).returncode == NOT_FOUND


def test_refusals(cli):
    for lifetime in ("10", str(31 * 86_400)):
        r = cli("registry", "invite", "--lifetime", lifetime, check=False)
        assert r.returncode == REFUSED, r.stderr
    r = cli("registry", "invite", "--entity-id", "http://partner.example", check=False)
    assert r.returncode == REFUSED and "https" in r.stderr
    for entity in ("https://10.0.0.1", "https://[::1]", "file:///etc/passwd"):
        r = cli("registry", "add-entity", entity, check=False)
        assert r.returncode == REFUSED, (entity, r.stderr)
    r = cli("registry", "approve", "no-such-partner", check=False)
    assert r.returncode == NOT_FOUND
    r = cli("registry", "refresh", "no-such-partner", check=False)
    assert r.returncode == NOT_FOUND
    assert cli("registry", "webhook", check=False).returncode == USAGE
    assert json.loads(cli("registry", "pending", "--json").stdout) == []


def test_webhook_setting(cli):
    r = cli("registry", "webhook", "https://127.0.0.1/hook", check=False)
    assert r.returncode == REFUSED
    cleared = json.loads(cli("registry", "webhook", "--none", "--json").stdout)
    assert cleared["webhook_url"] is None and cleared["secret"] is None
    shown = json.loads(cli("registry", "settings", "--json").stdout)
    assert shown == {"webhook_url": None, "secret": None, "secret_revealed": False}


def test_federation_request(cli):
    from tests.broker.helpers import jwt_parts

    cli("tenant", "create", "acme")
    token = cli("federation", "request", "--tenant", "acme", "--registry",
                "https://registry.example/registry").stdout.strip()
    header, claims = jwt_parts(token)
    assert header["typ"] == "entity-request+jwt"
    assert claims["iss"] == claims["sub"] and claims["iss"].endswith("/t/acme")
    assert claims["aud"] == "https://registry.example/registry"
    assert claims["exp"] - claims["iat"] == 60
    r = cli("federation", "request", "--tenant", "nope", "--registry", "x", check=False)
    assert r.returncode == NOT_FOUND
    r = cli("federation", "request", "--tenant", "acme", "--registry", "x", "--lifetime",
            "3600", check=False)
    assert r.returncode == USAGE

"""The defects issue 11 reproduced in the admin API, each refused now: a ``400`` JSON body that
names the field, and nothing written (no tenant, no audit event)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from broker.runtime import Broker
from tests.broker.helpers import counts
from tests.conftest import ADMIN_TOKEN, unique

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _tenant_ids(http: httpx.AsyncClient) -> set[str]:
    r = await http.get("/admin/v1/tenants", headers=ADMIN)
    assert r.status_code == 200
    return {t["id"] for t in r.json()}


@pytest.mark.parametrize(("settings", "field"), [
    ({"max_token_lifetime": "abc"}, "settings.max_token_lifetime"),
    ({"key_alg": "HS256"}, "settings.key_alg"),
    ({"max_token_lifetime": -5}, "settings.max_token_lifetime"),
    ({"max_token_lifetime": 10**9}, "settings.max_token_lifetime"),
    ({"max_token_lifetime": 0}, "settings.max_token_lifetime"),
    ({"max_token_lifetime": 86_401}, "settings.max_token_lifetime"),
    ({"max_token_lifetime": 600.5}, "settings.max_token_lifetime"),
    ({"max_token_lifetime": True}, "settings.max_token_lifetime"),
    ({"key_algo": "ES256"}, "settings.key_algo"),
    ({"webhook_url": "file:///etc/passwd"}, "settings.webhook_url"),
    ({"webhook_url": "javascript:alert(1)"}, "settings.webhook_url"),
    ({"webhook_url": "http://hooks.example/x"}, "settings.webhook_url"),
    ({"webhook_url": "http://127.0.0.1:9/x"}, "settings.webhook_url"),  # loopback not allowed
    ({"webhook_url": "https://user:pw@hooks.example/x"}, "settings.webhook_url"),
    ({"key_rotation_seconds": 60}, "settings.key_rotation_seconds"),
    ({"key_rotation_seconds": 91 * 86_400}, "settings.key_rotation_seconds"),
    ({"ciba_poll_interval": 0}, "settings.ciba_poll_interval"),
    ({"ciba_request_lifetime": 10**6}, "settings.ciba_request_lifetime"),
    ({"code_lifetime": 3600}, "settings.code_lifetime"),
    ({"anomaly_rules": [{"name": "x", "metric": "token_requests", "limit": 1,
                         "window": 10**6}]}, "settings.anomaly_rules[0].window"),
])
async def test_bad_settings_are_a_400_naming_the_field_and_write_nothing(
    http: httpx.AsyncClient, broker: Broker, settings: dict[str, Any], field: str,
) -> None:
    name = unique("bad")
    before = await _tenant_ids(http)
    r = await http.post("/admin/v1/tenants", headers=ADMIN,
                        json={"name": name, "settings": settings})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["error"] == "invalid_request" and body["field"] == field, body
    assert body["error_description"].startswith(field + ":")
    assert await _tenant_ids(http) == before
    assert (await counts(broker, name))["audit_events"] == 0
    assert (await http.get(f"/t/{name}/jwks")).status_code == 404


async def test_the_refused_values_never_reach_a_token_request(
    http: httpx.AsyncClient, broker: Broker,
) -> None:
    """The defect was a 201 and then a 500 on every token request; a valid tenant next to the
    refusals issues tokens with the ceiling it was given."""
    name = unique("ok")
    r = await http.post("/admin/v1/tenants", headers=ADMIN,
                        json={"name": name, "settings": {"max_token_lifetime": 60}})
    assert r.status_code == 201, r.text
    assert r.json()["settings"]["max_token_lifetime"] == 60
    r = await http.post(f"/admin/v1/tenants/{name}/clients", headers=ADMIN,
                        json={"name": "agent", "access_token_lifetime": 3600})
    client = r.json()
    r = await http.post(f"/t/{name}/token", data={"grant_type": "client_credentials"},
                        auth=(client["client_id"], client["client_secret"]))
    assert r.status_code == 200 and r.json()["expires_in"] == 60, r.text


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/clients", {"name": "x", "redirect_uris": ["javascript:alert(1)"]}, "redirect_uris[0]"),
    ("/clients", {"name": "x", "redirect_uris": ["data:text/html,x"]}, "redirect_uris[0]"),
    ("/clients", {"name": "x", "redirect_uris": ["file:///etc/passwd"]}, "redirect_uris[0]"),
    ("/clients", {"name": "x", "redirect_uris": ["http://app.example/cb"]},
     "redirect_uris[0]"),
    ("/clients", {"name": "x", "access_token_lifetime": 86_401}, "access_token_lifetime"),
    ("/clients", {"name": "x", "access_token_lifetime": "300"}, "access_token_lifetime"),
    ("/clients", {"name": "x", "token_endpoint_auth_method": "client_secret_jwt"},
     "token_endpoint_auth_method"),
    ("/clients", {"name": "x", "scopes": ["has space"]}, "scopes[0]"),
    ("/clients", {"name": "x", "client_secret": "chosen"}, "client_secret"),
    ("/clients", {"name": "x" * 201}, "name"),
    ("/clients", {"name": "x", "backchannel_client_notification_endpoint":
                  "file:///tmp/x"}, "backchannel_client_notification_endpoint"),
    ("/trust-links", {"partner": "p", "directions": ["accept", "receive"]}, "directions[1]"),
    ("/managed-connections", {"client_id": "c", "audience": "https://rs.example",
                              "remote_client_id": "r", "rules": {"read": "maybe"}},
     "rules.read"),
    ("/managed-connections", {"client_id": "c", "audience": "https://rs.example",
                              "remote_client_id": "r", "max_lifetime": 301}, "max_lifetime"),
    ("/api-keys", {"client_id": "c", "name": "k", "expires_in": -1}, "expires_in"),
    ("/legacy-apps", {"entity_id": "https://sp.example", "acs_urls": ["ftp://sp.example/a"]},
     "acs_urls[0]"),
    ("/upstreams", {"name": "corp", "kind": "oidc", "oidc": {
        "issuer": "https://idp.example", "client_id": "c", "jwks_uri": "file:///etc/passwd"}},
     "oidc.jwks_uri"),
    ("/upstreams", {"name": "corp", "kind": "saml", "saml": {
        "metadata_url": "file:///etc/passwd"}}, "saml.metadata_url"),
])
async def test_bad_bodies_of_every_area_name_the_field(
    http: httpx.AsyncClient, broker: Broker, tenant: str, path: str, body: dict[str, Any],
    field: str,
) -> None:
    before = await counts(broker, tenant)
    method = "PUT" if path == "/managed-connections" else "POST"
    r = await http.request(method, f"/admin/v1/tenants/{tenant}{path}", headers=ADMIN,
                           json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field, r.json()
    assert await counts(broker, tenant) == before


@pytest.mark.parametrize("raw", [b"", b"[]", b"null", b"42", b'"x"', b"{", b"\xff\xfe",
                                 b'{"name": NaN}', b'{"settings": {"max_token_lifetime": 1e999}}',
                                 b"[" * 5000 + b"]" * 5000, b'{"name": "a", "name": "b"}'])
async def test_a_body_must_be_one_json_object(http: httpx.AsyncClient, raw: bytes) -> None:
    before = await _tenant_ids(http)
    r = await http.post("/admin/v1/tenants", headers={**ADMIN,
                                                      "Content-Type": "application/json"},
                        content=raw)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"
    assert await _tenant_ids(http) == before


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    http: httpx.AsyncClient, broker: Broker,
) -> None:
    limit = broker.settings.max_body_bytes
    r = await http.post("/admin/v1/tenants", headers={**ADMIN, "Content-Length": str(limit + 1)},
                        content=b"{" + b" " * limit + b"}")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert f"larger than {limit} bytes" in r.json()["error_description"]


async def test_an_action_refuses_a_body_it_does_not_take(
    http: httpx.AsyncClient, tenant: str,
) -> None:
    r = await http.post(f"/admin/v1/tenants/{tenant}/disable", headers=ADMIN,
                        json={"really": True})
    assert r.status_code == 400 and r.json()["field"] == "really"
    assert (await http.get(f"/admin/v1/tenants/{tenant}", headers=ADMIN)).json()[
        "status"] == "active"


async def test_several_errors_are_listed(http: httpx.AsyncClient, tenant: str) -> None:
    r = await http.post(f"/admin/v1/tenants/{tenant}/clients", headers=ADMIN,
                        json={"name": "", "access_token_lifetime": 0, "colour": "blue"})
    body = r.json()
    assert r.status_code == 400 and body["field"] == "name"
    assert {e["field"] for e in body["errors"]} == {"name", "access_token_lifetime", "colour"}
    assert "(and 2 more)" in body["error_description"]


async def test_secrets_are_not_echoed_in_refusals(http: httpx.AsyncClient, tenant: str) -> None:
    secret = "s3cret-" + "x" * 2000  # too long for a client secret
    r = await http.post(f"/admin/v1/tenants/{tenant}/upstreams", headers=ADMIN, json={
        "name": "corp", "kind": "oidc",
        "oidc": {"issuer": "https://idp.example", "client_id": "c", "client_secret": secret}})
    assert r.status_code == 400 and r.json()["field"] == "oidc.client_secret"
    assert "s3cret" not in r.text

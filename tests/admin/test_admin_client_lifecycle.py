"""Clients after registration: a merge patch checked as a whole registration (the token
endpoint judges by it at once), secret rotation with an overlap window (both secrets work
until it ends, then only the new one), and delete (retired: final, tokens revoked)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from joserfc.jwk import ECKey

from broker.app import create_app
from broker.runtime import Broker
from tests.admin.admin_helpers import ADMIN, events
from tests.conftest import BASE_URL, OffsetClock, TestClient, new_client

CC = {"grant_type": "client_credentials"}


def _path(c: TestClient) -> str:
    return f"/admin/v1/tenants/{c.tenant}/clients/{c.client_id}"


async def _token(http: httpx.AsyncClient, c: TestClient, secret: str | None = None,
                 **form: str) -> httpx.Response:
    return await http.post(c.token_url, data={**CC, **form},
                           auth=(c.client_id, secret or c.secret or ""))


async def _active(http: httpx.AsyncClient, observer: TestClient, token: str) -> bool:
    r = await http.post(f"{observer.issuer}/introspect", data={"token": token},
                        auth=observer.basic)
    assert r.status_code == 200, r.text
    return bool(r.json()["active"])


async def test_patch_scopes_audiences_lifetime_redirects(
    http: httpx.AsyncClient, broker: Broker, client: TestClient,
) -> None:
    r = await _token(http, client, scope="admin")
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await http.patch(_path(client), headers=ADMIN, json={
        "scopes": ["read", "admin"], "audiences": ["https://billing.example"],
        "access_token_lifetime": 90, "redirect_uris": ["https://app.example/cb",
                                                       "com.example.app:/cb"],
        "name": "renamed"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scopes"] == ["read", "admin"] and body["name"] == "renamed"
    assert body["redirect_uris"] == ["https://app.example/cb", "com.example.app:/cb"]
    r = await _token(http, client, scope="admin", resource="https://billing.example")
    assert r.status_code == 200 and r.json()["expires_in"] == 90, r.text
    r = await _token(http, client, scope="write")  # no longer registered
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"
    r = await _token(http, client, resource="https://api.example")  # no longer an audience
    assert r.status_code == 400
    event = (await events(broker, client.tenant, "client.updated"))[-1]
    assert event.client_id == client.client_id and event.detail["actor"] == "operator"
    assert set(event.detail["changed"]) == {"scopes", "audiences", "access_token_lifetime",
                                            "redirect_uris", "name"}


@pytest.mark.parametrize(("patch", "field", "fragment"), [
    ({"redirect_uris": ["javascript:alert(1)"]}, "redirect_uris[0]", "refused"),
    ({"access_token_lifetime": 0}, "access_token_lifetime", ""),
    ({"token_endpoint_auth_method": "none"}, "token_endpoint_auth_method", "unknown field"),
    ({"client_id": "other"}, "client_id", "unknown field"),
    ({"scopes": None}, "scopes", ""),
    ({"tls_client_auth_san_dns": "svc.example"}, None, "only with tls_client_auth"),
    ({"backchannel_token_delivery_mode": "ping"}, None, "notification_endpoint"),
])
async def test_a_refused_patch_changes_nothing(
    http: httpx.AsyncClient, client: TestClient, patch: dict[str, object], field: str | None,
    fragment: str,
) -> None:
    before = (await http.get(_path(client), headers=ADMIN)).json()
    r = await http.patch(_path(client), headers=ADMIN, json=patch)
    assert r.status_code == 400, r.text
    assert r.json().get("field") == field and fragment in r.json()["error_description"]
    assert (await http.get(_path(client), headers=ADMIN)).json() == before


async def test_patch_keeps_the_auth_methods_credentials(
    http: httpx.AsyncClient, broker: Broker, tenant: str,
) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    jwks = {"keys": [key.as_dict(private=False)]}
    pk = await new_client(broker, tenant, auth_method="private_key_jwt", jwks=jwks)
    r = await http.patch(_path(pk), headers=ADMIN, json={"jwks": None})
    assert r.status_code == 400 and "needs a JWKS" in r.json()["error_description"]
    other = ECKey.generate_key("P-256", parameters={"kid": "k2"})
    r = await http.patch(_path(pk), headers=ADMIN,
                         json={"jwks": {"keys": [other.as_dict(private=False)]}})
    assert r.status_code == 200 and r.json()["jwks"]["keys"][0]["kid"] == "k2"
    r = await http.patch(_path(pk), headers=ADMIN,
                         json={"jwks": {"keys": [other.as_dict(private=True)]}})
    assert r.status_code == 400 and r.json()["field"] == "jwks.keys[0]"
    r = await http.post(_path(pk) + "/rotate-secret", headers=ADMIN, json={})
    assert r.status_code == 400 and "no secret" in r.json()["error_description"]


# -- secret rotation -------------------------------------------------------------------------

@dataclass
class Replica:
    broker: Broker
    clock: OffsetClock
    http: httpx.AsyncClient


@pytest.fixture
async def replica(clocked_broker: tuple[Broker, OffsetClock]) -> AsyncIterator[Replica]:
    other, clock = clocked_broker
    app = create_app(other, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        yield Replica(other, clock, http)


async def test_rotated_secret_overlap_then_only_the_new_one(
    replica: Replica, broker: Broker, client: TestClient,
) -> None:
    http = replica.http
    r = await http.post(_path(client) + "/rotate-secret", headers=ADMIN,
                        json={"overlap_seconds": 600})
    assert r.status_code == 200, r.text
    rotated = r.json()
    new = rotated["client_secret"]
    assert new and new != client.secret
    assert abs(rotated["previous_secret_valid_until"] - (replica.clock.now() + 600)) < 5
    listed = (await http.get(_path(client), headers=ADMIN)).json()
    assert "client_secret" not in listed and new not in str(listed)  # shown once

    assert (await _token(http, client)).status_code == 200  # the old one, in the overlap
    assert (await _token(http, client, new)).status_code == 200
    replica.clock.advance(601)
    r = await _token(http, client)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert (await _token(http, client, new)).status_code == 200
    event = (await events(broker, client.tenant, "client.secret_rotated"))[-1]
    assert event.detail["overlap_seconds"] == 600 and event.detail["actor"] == "operator"
    assert new not in str(event.detail) and str(client.secret) not in str(event.detail)


async def test_rotation_without_overlap_and_its_limits(
    http: httpx.AsyncClient, client: TestClient,
) -> None:
    r = await http.post(_path(client) + "/rotate-secret", headers=ADMIN,
                        json={"overlap_seconds": 0})
    new = r.json()["client_secret"]
    assert (await _token(http, client)).status_code == 401
    assert (await _token(http, client, new)).status_code == 200
    for overlap in (-1, 7 * 86_400 + 1, 1.5):
        r = await http.post(_path(client) + "/rotate-secret", headers=ADMIN,
                            json={"overlap_seconds": overlap})
        assert r.status_code == 400 and r.json()["field"] == "overlap_seconds"


# -- delete ----------------------------------------------------------------------------------

async def test_delete_retires_the_client_and_revokes_its_tokens(
    http: httpx.AsyncClient, broker: Broker, tenant: str,
) -> None:
    doomed, observer = await new_client(broker, tenant), await new_client(broker, tenant)
    token = (await _token(http, doomed)).json()["access_token"]
    assert await _active(http, observer, token)
    r = await http.delete(_path(doomed), headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "retired", r.text
    assert not await _active(http, observer, token)
    r = await _token(http, doomed)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    for method, suffix, body in (("PATCH", "", {"name": "back"}), ("POST", "/enable", None),
                                 ("POST", "/rotate-secret", {})):
        r = await http.request(method, _path(doomed) + suffix, headers=ADMIN, json=body)
        assert r.status_code == 400 and "retired" in r.json()["error_description"], r.text
    r = await http.get(_path(doomed), headers=ADMIN)  # the row stays, for audit
    assert r.json()["status"] == "retired"
    actions = [e.action for e in await events(broker, tenant) if e.client_id == doomed.client_id]
    assert "agent.retired" in actions and "tokens.revoked" in actions
    r = await http.delete(f"/admin/v1/tenants/{tenant}/clients/ghost", headers=ADMIN)
    assert r.status_code == 404

"""Tenants after creation: a merge patch of the settings (validated whole, counted by the
token endpoint at once), archiving (final: every request refused, rows and audit kept), and
the webhook (URL set later, secret shown once, rotated with an overlap in which events carry
both signatures)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import delete

from broker import webhooks
from broker.app import create_app
from broker.runtime import Broker
from tenants.models import WebhookSecret
from tests.admin.admin_helpers import ADMIN, Receiver, events, loopback_replica
from tests.conftest import BASE_URL, OffsetClock, new_client, new_tenant

CC = {"grant_type": "client_credentials"}


async def _token(http: httpx.AsyncClient, tenant: str, client_id: str,
                 secret: str) -> httpx.Response:
    return await http.post(f"/t/{tenant}/token", data=CC, auth=(client_id, secret))


# -- PATCH ---------------------------------------------------------------------------------

async def test_patch_merges_settings_and_the_token_endpoint_counts_it(
    http: httpx.AsyncClient, broker: Broker, tenant: str,
) -> None:
    client = await new_client(broker, tenant, access_token_lifetime=3600)
    assert (await _token(http, tenant, *client.basic)).json()["expires_in"] == 3600
    r = await http.patch(f"/admin/v1/tenants/{tenant}", headers=ADMIN, json={
        "display_name": "Acme", "settings": {"max_token_lifetime": 120,
                                             "dpop_nonce_required": False}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["display_name"] == "Acme" and body["settings"]["max_token_lifetime"] == 120
    assert body["settings"]["key_alg"] == "ES256"  # untouched settings stay
    assert (await _token(http, tenant, *client.basic)).json()["expires_in"] == 120
    # null resets a setting to its default (RFC 7396)
    r = await http.patch(f"/admin/v1/tenants/{tenant}", headers=ADMIN,
                         json={"settings": {"max_token_lifetime": None}})
    assert r.json()["settings"]["max_token_lifetime"] == 3600
    assert (await _token(http, tenant, *client.basic)).json()["expires_in"] == 3600
    event = (await events(broker, tenant, "tenant.updated"))[-1]
    assert event.detail["actor"] == "operator" and event.detail["settings"] == [
        "max_token_lifetime"]


@pytest.mark.parametrize(("patch", "field"), [
    ({"settings": {"max_token_lifetime": 0}}, "settings.max_token_lifetime"),
    ({"settings": {"key_algo": "RS256"}}, "settings.key_algo"),
    ({"settings": {"webhook_url": "file:///etc/passwd"}}, "settings.webhook_url"),
    ({"settings": {"anomaly_rules": [
        {"name": "a", "metric": "token_requests", "limit": 1, "window": 1},
        {"name": "a", "metric": "resource_reads", "limit": 1, "window": 1}]}},
     "settings.anomaly_rules"),
    ({"display_name": None}, "display_name"),
    ({"display_name": ""}, "display_name"),
    ({"name": "renamed"}, "name"),
])
async def test_a_refused_patch_changes_nothing(
    http: httpx.AsyncClient, broker: Broker, tenant: str, patch: dict[str, object], field: str,
) -> None:
    before = (await http.get(f"/admin/v1/tenants/{tenant}", headers=ADMIN)).json()
    seen = len(await events(broker, tenant))
    r = await http.patch(f"/admin/v1/tenants/{tenant}", headers=ADMIN, json=patch)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert (await http.get(f"/admin/v1/tenants/{tenant}", headers=ADMIN)).json() == before
    assert len(await events(broker, tenant)) == seen


async def test_patch_of_an_unknown_tenant_is_404(http: httpx.AsyncClient) -> None:
    r = await http.patch("/admin/v1/tenants/no-such-tenant", headers=ADMIN,
                         json={"display_name": "x"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"


# -- archive -------------------------------------------------------------------------------

async def test_archive_refuses_everything_and_keeps_the_rows(
    http: httpx.AsyncClient, broker: Broker,
) -> None:
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant)
    token = (await _token(http, tenant, *client.basic)).json()["access_token"]
    r = await http.delete(f"/admin/v1/tenants/{tenant}", headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "archived", r.text

    r = await _token(http, tenant, *client.basic)
    assert r.status_code in (400, 401, 404) and "access_token" not in r.text, r.text
    assert (await http.get(f"/t/{tenant}/jwks")).status_code == 404
    assert (await http.get(f"/t/{tenant}/.well-known/openid-configuration")).status_code == 404
    r = await http.get(f"{BASE_URL}/t/{tenant}/demo/whoami",
                       headers={"Authorization": f"Bearer {token}"})
    assert r.status_code in (401, 404), r.text
    # final: it cannot be enabled, changed, or its name taken again
    for method, path, body in (("POST", "/enable", None), ("PATCH", "", {"display_name": "x"}),
                               ("POST", "/clients", {"name": "x"})):
        r = await http.request(method, f"/admin/v1/tenants/{tenant}{path}", headers=ADMIN,
                               json=body)
        assert r.status_code == 400 and "archived" in r.json()["error_description"], r.text
    r = await http.post("/admin/v1/tenants", headers=ADMIN, json={"name": tenant})
    assert r.status_code == 409 and "exists" in r.json()["error_description"]
    # rows and the audit chain stay readable
    r = await http.get(f"/admin/v1/tenants/{tenant}/clients", headers=ADMIN)
    assert [c["client_id"] for c in r.json()] == [client.client_id]
    report = (await http.get(f"/admin/v1/tenants/{tenant}/audit/verify", headers=ADMIN)).json()
    assert report["intact"] is True
    actions = [e.action for e in await events(broker, tenant)]
    assert "tenant.archived" in actions and "tokens.revoked" in actions


# -- webhook ---------------------------------------------------------------------------------

@dataclass
class Hooked:
    """A replica that may call the loopback receiver, its clock and admin API, the receiver."""

    broker: Broker
    clock: OffsetClock
    http: httpx.AsyncClient
    receiver: Receiver

    async def deliver(self, tenant: str) -> tuple[str, bytes]:
        """One event now; its Tessera-Signature header and body as received."""
        seen = len(self.receiver.received)
        view = await self.broker.tenant(tenant)
        assert await webhooks.deliver(self.broker, view, "test.event", {"n": seen})
        headers, body = await self.receiver.nth(seen + 1)
        return headers["tessera-signature"], body

    def verifies(self, secret: str, signed: tuple[str, bytes]) -> bool:
        return webhooks.verify(secret, signed[0], signed[1], now=self.clock.now())


@pytest.fixture
async def hooked(broker: Broker) -> AsyncIterator[Hooked]:
    replica, clock = loopback_replica(broker)
    receiver = Receiver()
    app = create_app(replica, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        yield Hooked(replica, clock, http, receiver)
    receiver.stop()
    await replica.close()


async def test_webhook_set_later_secret_shown_once_and_rotated_with_overlap(
    hooked: Hooked, broker: Broker,
) -> None:
    tenant = await new_tenant(broker)
    path = f"/admin/v1/tenants/{tenant}/webhook"
    r = await hooked.http.put(path, headers=ADMIN, json={"url": hooked.receiver.url})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["url"] == hooked.receiver.url and first["secret_revealed"] is True
    secret = first["secret"]
    assert secret and secret.startswith("whsec_")
    again = (await hooked.http.put(path, headers=ADMIN, json={"url": hooked.receiver.url}))
    assert again.json()["secret"] is None  # shown once
    shown = await hooked.http.get(path, headers=ADMIN)
    assert shown.json()["secret"] is None and secret not in shown.text
    assert hooked.verifies(secret, await hooked.deliver(tenant))

    r = await hooked.http.post(f"{path}/rotate-secret", headers=ADMIN,
                               json={"overlap_seconds": 600})
    assert r.status_code == 200, r.text
    rotated = r.json()
    new = rotated["secret"]
    assert new and new != secret
    assert abs(rotated["previous_valid_until"] - (hooked.clock.now() + 600)) < 5
    during = await hooked.deliver(tenant)
    assert during[0].count("v1=") == 2  # both sign during the overlap
    assert hooked.verifies(new, during) and hooked.verifies(secret, during)
    hooked.clock.advance(601)
    after = await hooked.deliver(tenant)
    assert after[0].count("v1=") == 1
    assert hooked.verifies(new, after) and not hooked.verifies(secret, after)

    for event in await events(broker, tenant):
        assert secret not in json.dumps(event.detail) and new not in json.dumps(event.detail)
    actions = [(e.action, e.detail.get("actor")) for e in await events(broker, tenant)]
    assert ("webhook.set", "operator") in actions
    assert ("webhook.secret_rotated", "operator") in actions
    # cleared: no more events
    r = await hooked.http.put(path, headers=ADMIN, json={"url": None})
    assert r.json()["url"] is None
    assert not await webhooks.deliver(hooked.broker, await hooked.broker.tenant(tenant),
                                      "test.event", {})


async def test_rotation_without_overlap_retires_the_old_secret_at_once(
    hooked: Hooked, broker: Broker,
) -> None:
    tenant = await new_tenant(broker)
    path = f"/admin/v1/tenants/{tenant}/webhook"
    old = (await hooked.http.put(path, headers=ADMIN,
                                 json={"url": hooked.receiver.url})).json()["secret"]
    new = (await hooked.http.post(f"{path}/rotate-secret", headers=ADMIN,
                                  json={"overlap_seconds": 0})).json()["secret"]
    signed = await hooked.deliver(tenant)
    assert hooked.verifies(new, signed) and not hooked.verifies(old, signed)
    for overlap in (-1, 7 * 86_400 + 1, "60"):
        r = await hooked.http.post(f"{path}/rotate-secret", headers=ADMIN,
                                   json={"overlap_seconds": overlap})
        assert r.status_code == 400 and r.json()["field"] == "overlap_seconds"


async def test_a_tenant_from_before_stored_secrets_keeps_its_receivers(
    hooked: Hooked, broker: Broker,
) -> None:
    """Upgrading changes nothing for a receiver: until the tenant adopts a stored secret, its
    events are signed with the secret derived from the master key, and revealing it shows
    that one."""
    tenant = await new_tenant(broker, webhook_url="https://hooks.example/x")
    async with broker.sessions() as session, session.begin():  # as before revision 0010
        await session.execute(delete(WebhookSecret).where(WebhookSecret.tenant_id == tenant))
    derived = webhooks.derived_secret(broker, tenant)
    assert await webhooks.signing_secrets(hooked.broker, tenant) == [derived]
    r = await hooked.http.put(f"/admin/v1/tenants/{tenant}/webhook", headers=ADMIN,
                              json={"url": hooked.receiver.url})
    assert r.json()["secret"] == derived
    assert hooked.verifies(derived, await hooked.deliver(tenant))


async def test_webhook_url_rules(http: httpx.AsyncClient, tenant: str) -> None:
    path = f"/admin/v1/tenants/{tenant}/webhook"
    for url in ("file:///etc/passwd", "http://hooks.example/x", "http://127.0.0.1:9/x",
                "javascript:alert(1)", "https://hooks.example/x#frag"):
        r = await http.put(path, headers=ADMIN, json={"url": url})
        assert r.status_code == 400 and r.json()["field"] == "url", (url, r.text)
    r = await http.put(path, headers=ADMIN, json={})
    assert r.status_code == 400 and r.json()["field"] == "url"
    assert (await http.get(path, headers=ADMIN)).json()["url"] is None
    r = await http.put(path, headers=ADMIN, json={"url": "https://hooks.example/x"})
    assert r.status_code == 200 and r.json()["url"] == "https://hooks.example/x"

"""TenantSettings: strict on input (types, ranges, enums, unknown keys, URL schemes), frozen,
and forgiving when it reads a stored row: a legacy or invalid key is dropped with a warning
naming it, so a tenant with a bad row keeps answering token requests."""

from __future__ import annotations

import logging

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import update

from broker.runtime import Broker
from tenants.models import Tenant
from tenants.settings import TenantSettings
from tests.conftest import new_client, new_tenant


@pytest.mark.parametrize(("raw", "field"), [
    ({"max_token_lifetime": "3600"}, "max_token_lifetime"),  # no coercion
    ({"max_token_lifetime": 86_401}, "max_token_lifetime"),
    ({"key_alg": "none"}, "key_alg"),
    ({"dpop_nonce_required": "yes"}, "dpop_nonce_required"),
    ({"session_lifetime": 1}, "session_lifetime"),
    ({"refresh_token_lifetime": 400 * 86_400}, "refresh_token_lifetime"),
    ({"par_lifetime": 3600}, "par_lifetime"),
    ({"webhook_url": "ftp://hooks.example/x"}, "webhook_url"),
    ({"anomaly_rules": [{"name": "x", "metric": "logins", "limit": 1, "window": 1}]},
     "anomaly_rules"),
    ({"brand_colour": "teal"}, "brand_colour"),
])
def test_input_is_strict(raw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        TenantSettings.model_validate(raw)
    assert refused.value.errors()[0]["loc"][0] == field


def test_loopback_webhooks_only_when_the_deployment_allows_them() -> None:
    raw = {"webhook_url": "http://127.0.0.1:8080/hook"}
    with pytest.raises(ValidationError):
        TenantSettings.model_validate(raw)
    allowed = TenantSettings.model_validate(raw, context={"allow_http_loopback": True})
    assert allowed.webhook_url == raw["webhook_url"]


def test_frozen() -> None:
    settings = TenantSettings()
    with pytest.raises(ValidationError):
        settings.max_token_lifetime = 5  # type: ignore[misc]


def test_a_stored_row_loads_without_its_bad_keys(caplog: pytest.LogCaptureFixture) -> None:
    stored = {"max_token_lifetime": "abc", "key_alg": "HS256", "legacy_flag": True,
              "code_lifetime": 30, "webhook_url": "https://hooks.example/x"}
    with caplog.at_level(logging.WARNING, logger="tessera.settings"):
        settings = TenantSettings.load(stored, tenant="acme")
    assert settings.max_token_lifetime == 3600 and settings.key_alg == "ES256"  # defaults
    assert settings.code_lifetime == 30 and settings.webhook_url == "https://hooks.example/x"
    (record,) = [r for r in caplog.records if r.name == "tessera.settings"]
    message = record.getMessage()
    assert "acme" in message and "key_alg, legacy_flag, max_token_lifetime" in message
    assert "abc" not in message and "HS256" not in message  # names, not values
    assert TenantSettings.load({}, tenant="acme") == TenantSettings()


async def test_a_bad_stored_row_does_not_break_the_token_endpoint(
    http: httpx.AsyncClient, broker: Broker,
) -> None:
    """The defect: a row with ``"max_token_lifetime": "abc"`` made every token request of the
    tenant a 500. Such a row (written before validation existed) now loads with defaults."""
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant, access_token_lifetime=7200)
    async with broker.sessions() as session, session.begin():
        await session.execute(update(Tenant).where(Tenant.id == tenant).values(settings={
            "max_token_lifetime": "abc", "key_algo": "ES256", "dpop_nonce_required": "no"}))
    r = await http.post(client.token_url, data={"grant_type": "client_credentials"},
                        auth=client.basic)
    assert r.status_code == 200, r.text
    assert r.json()["expires_in"] == 3600  # the default ceiling, not the bad value
    r = await http.get(f"/admin/v1/tenants/{tenant}",
                       headers={"Authorization": f"Bearer {broker.settings.admin_token}"})
    assert r.status_code == 200 and r.json()["settings"]["max_token_lifetime"] == 3600


async def test_settings_are_validated_once_per_stored_row(broker: Broker) -> None:
    tenant = await new_tenant(broker, max_token_lifetime=60)
    first = (await broker.tenant(tenant)).settings
    assert (await broker.tenant(tenant)).settings is first  # the same row: no new object
    async with broker.sessions() as session, session.begin():
        await session.execute(update(Tenant).where(Tenant.id == tenant).values(
            settings={**first.to_dict(), "max_token_lifetime": 90}))
    assert (await broker.tenant(tenant)).settings.max_token_lifetime == 90  # never stale

"""RAR (RFC 9396 §6) in token exchange: an ID-JAG carries checked authorization_details to the
resource tenant, which checks them against its own registered types; on-behalf-of only
narrows the subject token's details."""

from __future__ import annotations

import json

from broker import id_jag
from tests import admin_ops as login_admin
from tests.broker.helpers import jwt_parts
from tests.conftest import new_client, new_tenant
from tests.flows.test_id_jag import TX, domains, exchange, redeem  # noqa: F401

SCHEMA = {
    "type": "object",
    "properties": {"type": {"const": "invoice_export"},
                   "actions": {"type": "array", "items": {"enum": ["read", "export"]}},
                   "locations": {"type": "array", "items": {"type": "string"}}},
    "required": ["type", "actions"],
    "additionalProperties": False,
}
DETAILS = [{"type": "invoice_export", "actions": ["export"],
            "locations": ["https://api.pricing.example"]}]


async def allow_type(broker, tenant: str, client_id: str) -> None:
    await login_admin.register_detail_type(broker, tenant, {
        "type": "invoice_export", "schema": SCHEMA, "description": "Export invoices"})
    # clients declare the types they use (client metadata authorization_details_types)
    from tenants.models import Client
    from tenants.scope import tenant_scope
    async with tenant_scope(broker.sessions, tenant) as scope:
        client = await scope.get(Client, client_id)
        assert client is not None
        client.authorization_details_types = ["invoice_export"]
    broker.forget_directory(tenant)


async def test_id_jag_carries_authorization_details(http, broker, domains):  # noqa: F811
    d = domains
    r = await exchange(http, broker, d, scope="read", authorization_details=json.dumps(DETAILS))
    assert r.status_code == 400 and r.json()["error"] == "invalid_authorization_details"
    await allow_type(broker, d.acme, d.agent.client_id)
    r = await exchange(http, broker, d, scope="read", authorization_details=json.dumps(DETAILS))
    assert r.status_code == 200, r.text
    _, jag = jwt_parts(r.json()["access_token"])
    assert jag["authorization_details"] == DETAILS
    # the resource tenant has not registered the type: the assertion is refused
    refused = await redeem(http, d, r.json()["access_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    await allow_type(broker, d.pricing, d.remote.client_id)
    r = await exchange(http, broker, d, scope="read", authorization_details=json.dumps(DETAILS))
    redeemed = await redeem(http, d, r.json()["access_token"])
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["authorization_details"] == DETAILS
    _, at = jwt_parts(redeemed.json()["access_token"])
    assert at["authorization_details"] == DETAILS
    info = await http.post(f"{d.pricing_issuer}/introspect", auth=d.remote.basic,
                           data={"token": redeemed.json()["access_token"]})
    assert info.json()["authorization_details"] == DETAILS


async def test_id_jag_refuses_bad_details(http, broker, domains):  # noqa: F811
    d = domains
    await allow_type(broker, d.acme, d.agent.client_id)
    for bad in ('[{"type": "invoice_export", "actions": ["delete"]}]',
                '[{"type": "unknown"}]', "not json", '{"type": "invoice_export"}'):
        r = await exchange(http, broker, d, scope="read", authorization_details=bad)
        assert r.status_code == 400, bad
        assert r.json()["error"] == "invalid_authorization_details", bad


async def test_on_behalf_of_only_narrows_details(http, broker):
    tenant = await new_tenant(broker)
    caller = await new_client(broker, tenant)
    await allow_type(broker, tenant, caller.client_id)
    r = await http.post(caller.token_url, auth=caller.basic,
                        data={"grant_type": "client_credentials", "scope": "read"})
    subject = r.json()["access_token"]  # carries no authorization_details
    r = await http.post(caller.token_url, auth=caller.basic, data={
        "grant_type": TX, "subject_token": subject, "subject_token_type": id_jag.ACCESS_TOKEN,
        "authorization_details": json.dumps(DETAILS)})
    assert r.status_code == 400 and r.json()["error"] == "invalid_authorization_details"
    r = await http.post(caller.token_url, auth=caller.basic, data={
        "grant_type": TX, "subject_token": subject, "subject_token_type": id_jag.ACCESS_TOKEN})
    assert r.status_code == 200 and "authorization_details" not in r.json()

"""Upstream IdPs after they were added: a patch (display name, domains, mapping, OIDC settings
and secret), SAML metadata refresh (the IdP's new signing key verifies from then on, the old
one no longer), and delete (a tombstone: its users unlinked, the name never reused)."""

from __future__ import annotations

import base64

import httpx
from lxml import etree
from sqlalchemy import select

from adapters.saml_assertion import build_assertion, sign
from broker.grants.saml2_bearer import SAML2_BEARER
from broker.runtime import Broker
from tenants.models import FederatedIdentity, Upstream
from tenants.scope import tenant_scope
from tests.admin.admin_helpers import ADMIN, IDP, Key, events, metadata, new_key
from tests.conftest import TestClient, new_client

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"


async def bearer(http: httpx.AsyncClient, broker: Broker, client: TestClient, key: Key,
                 name_id: str = "carol") -> httpx.Response:
    """The RFC 7522 grant with an assertion the IdP signed with ``key``."""
    element = build_assertion(
        issuer=IDP, name_id=name_id, name_id_format=PERSISTENT, audience=client.issuer,
        now=broker.clock.now(), recipient=client.token_url,
        attributes={"mail": [f"{name_id}@corp.example"]})
    assertion = base64.urlsafe_b64encode(etree.tostring(sign(element, *key))).rstrip(
        b"=").decode()
    return await http.post(client.token_url, auth=client.basic, data={
        "grant_type": SAML2_BEARER, "assertion": assertion})


def _path(tenant: str, name: str = "corp") -> str:
    return f"/admin/v1/tenants/{tenant}/upstreams/{name}"


async def test_refresh_metadata_switches_the_idp_signing_key(
    http: httpx.AsyncClient, broker: Broker, tenant: str,
) -> None:
    old, new = new_key(), new_key()
    r = await http.post(f"/admin/v1/tenants/{tenant}/upstreams", headers=ADMIN, json={
        "name": "corp", "kind": "saml", "saml": {"metadata_xml": metadata(old)}})
    assert r.status_code == 201, r.text
    client = await new_client(broker, tenant)
    assert (await bearer(http, broker, client, old, "before")).status_code == 200
    r = await bearer(http, broker, client, new, "early")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"

    r = await http.post(_path(tenant) + "/refresh-metadata", headers=ADMIN,
                        json={"metadata_xml": metadata(new)})
    assert r.status_code == 200, r.text
    assert r.json()["saml"]["metadata_updated_at"] is not None
    assert (await bearer(http, broker, client, new, "after")).status_code == 200
    r = await bearer(http, broker, client, old, "stale")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    event = (await events(broker, tenant, "upstream.metadata_refreshed"))[-1]
    assert event.detail["actor"] == "operator" and event.detail["idp_entity_id"] == IDP


async def test_refresh_refuses_another_idp_bad_xml_and_a_missing_source(
    http: httpx.AsyncClient, tenant: str,
) -> None:
    key = new_key()
    await http.post(f"/admin/v1/tenants/{tenant}/upstreams", headers=ADMIN, json={
        "name": "corp", "kind": "saml", "saml": {"metadata_xml": metadata(key)}})
    before = (await http.get(_path(tenant), headers=ADMIN)).json()
    for body, fragment in (
            ({"metadata_xml": metadata(key, "https://other.example/saml")}, "another IdP"),
            ({"metadata_xml": "<md:EntityDescriptor"}, "IdP metadata"),
            ({}, "added from XML"),
            ({"metadata_url": "https://10.0.0.1/metadata"}, "cannot fetch"),
            ({"metadata_url": "file:///etc/passwd"}, "metadata_url"),
            ({"metadata_xml": metadata(key), "metadata_url": "https://idp.example/m"},
             "at most one")):
        r = await http.post(_path(tenant) + "/refresh-metadata", headers=ADMIN, json=body)
        assert r.status_code == 400 and fragment in r.json()["error_description"], r.text
    assert (await http.get(_path(tenant), headers=ADMIN)).json() == before


async def test_patch_an_oidc_upstream(http: httpx.AsyncClient, broker: Broker,
                                      tenant: str) -> None:
    r = await http.post(f"/admin/v1/tenants/{tenant}/upstreams", headers=ADMIN, json={
        "name": "corp", "kind": "oidc", "oidc": {"issuer": "https://idp.corp.example",
                                                 "client_id": "tessera",
                                                 "client_secret": "first-secret"}})
    assert r.status_code == 201, r.text
    r = await http.patch(_path(tenant), headers=ADMIN, json={
        "display_name": "Corp SSO", "domains": ["Corp.Example"],
        "mapping": {"subject": "oid", "email": ["email", "upn"]},
        "oidc": {"client_secret": "second-secret", "scopes": ["openid", "email"],
                 "use_userinfo": True}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["display_name"] == "Corp SSO" and body["domains"] == ["corp.example"]
    assert body["mapping"] == {"subject": "oid", "email": ["email", "upn"]}
    assert body["oidc"]["scopes"] == ["openid", "email"] and body["oidc"]["use_userinfo"]
    assert "second-secret" not in r.text and body["oidc"]["has_client_secret"]
    async with tenant_scope(broker.sessions, tenant) as scope:
        row = await scope.get(Upstream, "corp")
        assert row is not None
        sealed = row.config["client_secret_sealed"]
    assert broker.sealer.open(sealed, f"{tenant}/corp") == "second-secret"
    for patch, fragment in (
            ({"oidc": {"client_secret": None}}, "needs a client_secret"),
            ({"oidc": {"allowed_algs": ["HS256"]}}, "oidc.allowed_algs[0]"),
            ({"oidc": {"scopes": ["email"]}}, "openid"),
            ({"saml": {"allow_sha1": True}}, "oidc upstream takes oidc settings"),
            ({"mapping": {"subjekt": "x"}}, "mapping.subjekt"),
            ({"name": "renamed"}, "name: unknown field")):
        r = await http.patch(_path(tenant), headers=ADMIN, json=patch)
        assert r.status_code == 400 and fragment in r.json()["error_description"], r.text
    assert (await http.get(_path(tenant), headers=ADMIN)).json() == body


async def test_delete_is_a_tombstone(http: httpx.AsyncClient, broker: Broker,
                                     tenant: str) -> None:
    key = new_key()
    await http.post(f"/admin/v1/tenants/{tenant}/upstreams", headers=ADMIN, json={
        "name": "corp", "kind": "saml", "saml": {"metadata_xml": metadata(key)}})
    client = await new_client(broker, tenant)
    assert (await bearer(http, broker, client, key, "dora")).status_code == 200
    r = await http.delete(_path(tenant), headers=ADMIN)
    assert r.status_code == 200 and r.json()["status"] == "deleted", r.text
    r = await bearer(http, broker, client, key, "dora2")
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    async with broker.sessions() as session:
        linked = (await session.execute(select(FederatedIdentity).where(
            FederatedIdentity.tenant_id == tenant,
            FederatedIdentity.upstream == "corp"))).scalars().all()
    assert linked == []  # a later upstream cannot inherit dora
    for method, suffix, body in (("POST", "/enable", None), ("PATCH", "", {"domains": []}),
                                 ("POST", "/refresh-metadata", {})):
        r = await http.request(method, _path(tenant) + suffix, headers=ADMIN, json=body)
        assert r.status_code == 400 and "deleted" in r.json()["error_description"], r.text
    r = await http.post(f"/admin/v1/tenants/{tenant}/upstreams", headers=ADMIN, json={
        "name": "corp", "kind": "saml", "saml": {"metadata_xml": metadata(new_key())}})
    assert r.status_code == 409 and "exists" in r.json()["error_description"]
    actions = [e.action for e in await events(broker, tenant, "upstream.deleted")]
    assert actions == ["upstream.deleted"]

"""The console over the ASGI app with httpx: signing in (through the tenant's login, back to
the console), the roles (admin writes, auditor reads, another tenant's admin sees nothing, a
user without a role is refused), every form's CSRF token and Origin, a secret shown once,
the pages' CSP and escaping, and each page's action through the admin service layer."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from broker.admin import roles
from broker.runtime import Broker
from tenants.models import AuditEvent, Client
from tests.admin.admin_helpers import metadata, new_key
from tests.admin.role_clients import assign
from tests.conftest import ADMIN_TOKEN, BASE_URL, new_client, new_tenant, published_long_ago
from tests.console.console_helpers import Browser, sign_in

ADMINS, AUDITORS = "tessera-admins", "auditors"


@pytest.fixture
async def tenant_a(broker: Broker) -> str:
    t = await new_tenant(broker)
    await assign(broker, t, "group", ADMINS, roles.TENANT_ADMIN)
    await assign(broker, t, "group", AUDITORS, roles.TENANT_AUDITOR)
    return t


@pytest.fixture
async def admin(broker: Broker, transport: httpx.ASGITransport, tenant_a: str
                ) -> AsyncIterator[Browser]:
    b = await sign_in(broker, transport, tenant_a, "ada", (ADMINS, "eng"))
    yield b
    await b.http.aclose()


@pytest.fixture
async def auditor(broker: Broker, transport: httpx.ASGITransport, tenant_a: str
                  ) -> AsyncIterator[Browser]:
    b = await sign_in(broker, transport, tenant_a, "audrey", (AUDITORS,))
    yield b
    await b.http.aclose()


async def _count(broker: Broker, model: type, tenant: str) -> int:
    async with broker.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model).where(
            model.tenant_id == tenant))).scalar_one())


async def _last_event(broker: Broker, tenant: str) -> AuditEvent:
    async with broker.sessions() as session:
        return (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant).order_by(AuditEvent.seq.desc()).limit(1))
            ).scalar_one()


async def test_without_a_session_the_console_sends_the_browser_to_log_in(
        transport: httpx.ASGITransport, tenant_a: str) -> None:
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        r = await http.get(f"/t/{tenant_a}/console/clients")
        assert r.status_code == 303
        assert urlsplit(r.headers["location"]).path == f"/t/{tenant_a}/login"
        assert "tessera_flow" in r.headers["set-cookie"]
        # a form without a session: refused, no redirect for a POST
        r = await http.post(f"/t/{tenant_a}/console/clients/create", data={"name": "x"})
        assert r.status_code == 401


async def test_a_user_without_a_role_is_refused(broker: Broker,
                                                transport: httpx.ASGITransport,
                                                tenant_a: str) -> None:
    b = await sign_in(broker, transport, tenant_a, "eve", ("eng",))
    r = await b.http.get(b.base)
    assert r.status_code == 403 and "no administrative role" in r.text
    r = await b.http.post(b.base + "/clients/create", data={"name": "x", "csrf": "0" * 64})
    assert r.status_code == 403
    await b.http.aclose()


@pytest.mark.parametrize("page", ["", "/upstreams", "/clients", "/connections", "/approvals",
                                  "/trust-links", "/legacy-apps", "/api-keys", "/keys",
                                  "/audit", "/audit?verify=1", "/roles"])
async def test_every_page_renders_with_a_strict_csp(admin: Browser, auditor: Browser,
                                                    page: str) -> None:
    r = await auditor.http.get(auditor.base + page)
    assert r.status_code == 200 and 'method="post"' not in r.text, r.text
    r = await admin.http.get(admin.base + page)
    assert r.status_code == 200, r.text
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and r.headers["cache-control"] == "no-store"
    assert "<script>" not in r.text and " style=" not in r.text and "onclick" not in r.text
    assert 'aria-current="page"' in r.text and 'lang="en"' in r.text


async def test_static_files(transport: httpx.ASGITransport) -> None:
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        assert (await http.get("/console/static/console.js")).status_code == 200
        assert (await http.get("/console/static/console.css")).status_code == 200
        for bad in ("../app.py", "x.js", "%2e%2e%2fapp.py"):
            assert (await http.get(f"/console/static/{bad}")).status_code == 404


async def test_create_client_shows_the_secret_once_and_names_the_user(
        broker: Broker, admin: Browser) -> None:
    r = await admin.submit("/clients/create", "/clients", name="<script>alert(1)</script>",
                           owner="ada@corp.example", purpose="nightly sync",
                           scopes="read write")
    assert r.status_code == 200, r.text
    assert 'id="secret"' in r.text
    assert "<script>alert(1)</script>" not in r.text and "&lt;script&gt;" in r.text
    secret = r.text.split('id="secret">')[1].split("<")[0]
    assert len(secret) > 20
    listing = await admin.http.get(admin.base + "/clients")
    assert secret not in listing.text and "nightly sync" in listing.text
    event = await _last_event(broker, admin.tenant)
    assert event.detail["actor"] == f"user:{admin.tenant}/{admin.sub}"
    assert secret not in json.dumps(event.detail)


async def test_forms_need_the_csrf_token_and_our_origin(broker: Broker,
                                                        admin: Browser) -> None:
    before = await _count(broker, Client, admin.tenant)
    events = await _count(broker, AuditEvent, admin.tenant)
    for data in ({"name": "x"}, {"name": "x", "csrf": "0" * 64}, {"name": "x", "csrf": ""}):
        r = await admin.http.post(admin.base + "/clients/create", data=data)
        assert r.status_code == 400 and 'id="error"' in r.text
    token = await admin.csrf("/clients")
    r = await admin.http.post(admin.base + "/clients/create", data={"name": "x", "csrf": token},
                              headers={"Origin": "https://evil.example"})
    assert r.status_code == 400
    r = await admin.http.post(admin.base + "/clients/create", content=b'{"name": "x"}',
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert await _count(broker, Client, admin.tenant) == before
    assert await _count(broker, AuditEvent, admin.tenant) == events


async def test_the_auditor_reads_but_changes_nothing(broker: Broker, admin: Browser,
                                                     auditor: Browser) -> None:
    await admin.submit("/clients/create", "/clients", name="kept")
    r = await auditor.http.get(auditor.base + "/clients")
    assert r.status_code == 200 and "kept" in r.text and 'id="read-only"' in r.text
    assert 'id="create-client"' not in r.text and "Rotate secret" not in r.text
    before = await _count(broker, Client, auditor.tenant)
    events = await _count(broker, AuditEvent, auditor.tenant)
    r = await auditor.http.get(auditor.base + "/audit?verify=1")
    assert "Audit chain intact" in r.text
    export = await auditor.http.get(auditor.base + "/audit/export")
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert all(json.loads(line)["tenant"] == auditor.tenant
               for line in export.text.splitlines())
    token = auditor.valid_csrf()  # the auditor's pages have no form
    for path, data in (("/clients/create", {"name": "nope"}), ("/keys/rotate", {}),
                       ("/roles/assign", {"kind": "group", "subject": "x",
                                          "role": "tenant_admin"}),
                       ("/upstreams/add-saml", {"name": "s", "metadata_xml": "<x/>"})):
        r = await auditor.http.post(auditor.base + path, data={"csrf": token, **data})
        assert r.status_code == 403, (path, r.text)
    assert await _count(broker, Client, auditor.tenant) == before
    assert await _count(broker, AuditEvent, auditor.tenant) == events


async def test_an_admin_of_another_tenant_sees_nothing(broker: Broker,
                                                       transport: httpx.ASGITransport,
                                                       admin: Browser) -> None:
    other_tenant = await new_tenant(broker)
    await assign(broker, other_tenant, "group", ADMINS, roles.TENANT_ADMIN)
    other = await sign_in(broker, transport, other_tenant, "ada", (ADMINS,))
    assert (await other.http.get(other.base)).status_code == 200
    # B's session cookie is no session at A: A's console asks for A's login
    r = await other.http.get(admin.base + "/clients")
    assert r.status_code == 303 and f"/t/{admin.tenant}/login" in r.headers["location"]
    r = await other.http.post(admin.base + "/keys/rotate", data={"csrf": "0" * 64})
    assert r.status_code == 401
    await other.http.aclose()


async def test_upstreams_add_saml_from_metadata_and_oidc_refusal(broker: Broker,
                                                                 admin: Browser) -> None:
    xml = metadata(new_key(), "https://idp.partner.example/saml")
    r = await admin.submit("/upstreams/add-saml", "/upstreams", name="partner-saml",
                           display_name="Partner SAML", metadata_xml=xml)
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/upstreams")).text
    assert "Partner SAML" in page and "https://idp.partner.example/saml" in page
    # neither or both sources: refused, named
    r = await admin.submit("/upstreams/add-saml", "/upstreams", name="broken")
    assert r.status_code == 400 and "metadata" in r.text
    # an OIDC discovery URL that is not https: the admin model's refusal, shown on the page
    r = await admin.submit("/upstreams/add-oidc", "/upstreams", name="o",
                           discovery_url="http://idp.example/.well-known/openid-configuration",
                           client_id="tessera")
    assert r.status_code == 400 and 'id="error"' in r.text
    r = await admin.submit("/upstreams/partner-saml/disable", "/upstreams")
    assert r.status_code == 303
    assert "status-disabled" in (await admin.http.get(admin.base + "/upstreams")).text


async def test_upstreams_add_oidc_by_discovery_url(broker: Broker, admin: Browser) -> None:
    """Issue 14: "add OIDC by discovery URL": the issuer is the discovery URL without its
    well-known suffix, and the page shows the redirect URI to register at the IdP."""
    r = await admin.submit(
        "/upstreams/add-oidc", "/upstreams", name="corp-entra", display_name="Corp Entra",
        discovery_url="https://login.corp.example/tenant-1/v2.0/.well-known/openid-configuration",
        client_id="tessera-at-corp", client_secret="s3cret-" + "x" * 20,
        scopes="openid email profile", domains="corp.example")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/upstreams")).text
    row = page.split("Corp Entra")[1].split("</tr>")[0]
    assert "issuer <code>https://login.corp.example/tenant-1/v2.0</code>" in row, row
    assert f"{BASE_URL}/t/{admin.tenant}/login/corp-entra/callback" in row
    assert "s3cret-" not in page  # the client secret is sealed, never shown
    r = await admin.http.get(f"{BASE_URL}/admin/v1/tenants/{admin.tenant}/upstreams/corp-entra",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text
    assert r.json()["oidc"]["client_id"] == "tessera-at-corp"
    assert r.json()["domains"] == ["corp.example"]


async def test_agent_lifecycle_and_rotation(broker: Broker, admin: Browser) -> None:
    c = await new_client(broker, admin.tenant, name="agent smith")
    for verb, status in (("suspend", "suspended"), ("resume", "active")):
        r = await admin.submit(f"/clients/{c.client_id}/{verb}", "/clients")
        assert r.status_code == 303, r.text
        page = (await admin.http.get(admin.base + "/clients")).text
        row = page.split(f'data-client="{c.client_id}"')[1].split("</tr>")[0]
        assert f'class="status-{status}"' in row
    r = await admin.submit(f"/clients/{c.client_id}/rotate", "/clients")
    assert r.status_code == 200 and 'id="secret"' in r.text
    r = await admin.submit(f"/clients/{c.client_id}/retire", "/clients")
    assert r.status_code == 303
    r = await admin.submit("/clients/no-such/suspend", "/clients")
    assert r.status_code == 404 and 'id="error"' in r.text


async def test_managed_connection_per_scope_table(broker: Broker, admin: Browser) -> None:
    c = await new_client(broker, admin.tenant, name="mail agent")
    r = await admin.submit("/connections/put", "/connections", client_id=c.client_id,
                           audience="https://mail.example", remote_client_id="mail-123",
                           scope_0="mail.read", rule_0="grant", scope_1="mail.send",
                           rule_1="approve", scope_2="mail.delete", rule_2="deny",
                           default_rule="deny")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/connections")).text
    for scope, rule in (("mail.read", "grant"), ("mail.send", "approve"),
                        ("mail.delete", "deny")):
        assert f'<td>{scope}</td><td class="rule-{rule}">' in page
    # the table is the form: change one rule, add a scope
    r = await admin.submit("/connections/put", "/connections", client_id=c.client_id,
                           audience="https://mail.example", remote_client_id="mail-123",
                           scope_0="mail.delete", rule_0="deny", scope_1="mail.read",
                           rule_1="grant", scope_2="mail.send", rule_2="deny",
                           scope_3="mail.archive", rule_3="grant", default_rule="deny")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/connections")).text
    assert '<td>mail.send</td><td class="rule-deny">' in page
    assert '<td>mail.archive</td><td class="rule-grant">' in page
    r = await admin.submit("/connections/put", "/connections", client_id=c.client_id,
                           audience="https://mail.example", remote_client_id="m",
                           scope_0="mail.read", rule_0="sometimes")
    assert r.status_code == 400


async def test_pending_approval_is_approved_from_the_console(
        broker: Broker, transport: httpx.ASGITransport, admin: Browser) -> None:
    alice = await sign_in(broker, transport, admin.tenant, "alice", (), "alice@corp.example")
    await alice.http.aclose()
    c = await new_client(broker, admin.tenant, name="ciba agent", scopes=["openid", "email"])
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        r = await http.post(f"{c.issuer}/bc-authorize", auth=c.basic, data={
            "scope": "openid email", "login_hint": "alice@corp.example",
            "binding_message": "CONSOLE-7"})
        assert r.status_code == 200, r.text
        auth_req_id = r.json()["auth_req_id"]
        page = (await admin.http.get(admin.base + "/approvals")).text
        assert "CONSOLE-7" in page
        request_id = page.split('<tr data-id="')[1].split('"')[0]
        r = await admin.submit(f"/approvals/{request_id}/approve", "/approvals")
        assert r.status_code == 303, r.text
        assert 'id="none"' in (await admin.http.get(admin.base + "/approvals")).text
        r = await http.post(f"{c.issuer}/token", auth=c.basic, data={
            "grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": auth_req_id})
        assert r.status_code == 200, r.text
    async with broker.sessions() as session:
        approved = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == admin.tenant, AuditEvent.action == "ciba.approved"))
            ).scalar_one()
    assert approved.detail["actor"] == f"user:{admin.tenant}/{admin.sub}"
    assert approved.detail["via"] == "admin"


async def test_keys_roles_and_audit(broker: Broker, admin: Browser, tenant_a: str) -> None:
    await published_long_ago(broker, tenant_a)
    before = (await admin.http.get(admin.base + "/keys")).text.count("<code>")
    r = await admin.submit("/keys/rotate", "/keys")
    assert r.status_code == 303 and r.headers["location"].endswith("/keys?notice=done")
    page = (await admin.http.get(admin.base + "/keys")).text
    assert 'id="notice"' not in page  # the notice is only for the redirect's target
    assert page.count("<code>") >= before
    r = await admin.submit("/roles/assign", "/roles", kind="group", subject="helpdesk",
                           role="tenant_auditor")
    assert r.status_code == 303
    assert "helpdesk" in (await admin.http.get(admin.base + "/roles")).text
    # registry_admin is the operator's to give, not a tenant admin's
    r = await admin.submit("/roles/assign", "/roles", kind="group", subject="x",
                           role="registry_admin")
    assert r.status_code == 403
    r = await admin.http.get(admin.base + "/audit?q=role.assigned")
    assert "role.assigned" in r.text and f"user:{admin.tenant}/{admin.sub}" in r.text
    r = await admin.http.get(admin.base + "/audit?verify=1")
    assert "Audit chain intact" in r.text


async def test_test_login_goes_through_the_upstream_and_back(
        broker: Broker, admin: Browser, auditor: Browser) -> None:
    xml = metadata(new_key(), "https://idp.test.example/saml")
    r = await admin.submit("/upstreams/add-saml", "/upstreams", name="tested", metadata_xml=xml)
    assert r.status_code == 303
    assert f'action="{admin.base}/upstreams/tested/test"' in (
        await admin.http.get(admin.base + "/upstreams")).text
    r = await admin.submit("/upstreams/tested/test", "/upstreams")
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"{BASE_URL}/t/{admin.tenant}/login/tested?flow=")
    assert "tessera_flow" in r.headers["set-cookie"]
    # a GET (a link from anywhere) starts nothing; a form without the token neither
    assert (await admin.http.get(admin.base + "/upstreams/tested/test")).status_code == 405
    r = await admin.http.post(admin.base + "/upstreams/tested/test", data={"csrf": "0" * 64})
    assert r.status_code == 400
    assert (await admin.submit("/upstreams/nosuch/test", "/upstreams")).status_code == 404
    r = await auditor.http.post(auditor.base + "/upstreams/tested/test",
                                data={"csrf": auditor.valid_csrf()})
    assert r.status_code == 403


async def test_trust_links_legacy_apps_and_api_keys(broker: Broker, admin: Browser) -> None:
    peer = await new_tenant(broker)
    r = await admin.submit("/trust-links/add", "/trust-links", peer=f"tenant:{peer}",
                           accept="on", scope_ceiling="read")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/trust-links")).text
    assert peer in page and "status-active" in page
    link = page.split(f"{admin.base}/trust-links/")[1].split("/")[0]
    assert (await admin.submit(f"/trust-links/{link}/suspend", "/trust-links")).status_code == 303
    assert "status-suspended" in (await admin.http.get(admin.base + "/trust-links")).text
    r = await admin.submit("/trust-links/add", "/trust-links", peer="nobody")
    assert r.status_code == 400

    r = await admin.submit("/legacy-apps/add", "/legacy-apps", entity_id="https://sp.example/x",
                           acs_url="https://sp.example/acs", name="Payroll")
    assert r.status_code == 303, r.text
    assert "Payroll" in (await admin.http.get(admin.base + "/legacy-apps")).text
    r = await admin.submit("/legacy-apps/disable", "/legacy-apps",
                           entity_id="https://sp.example/x")
    assert r.status_code == 303
    assert "status-disabled" in (await admin.http.get(admin.base + "/legacy-apps")).text
    r = await admin.submit("/legacy-apps/add", "/legacy-apps", name="no entity")
    assert r.status_code == 400

    c = await new_client(broker, admin.tenant, name="key holder")
    r = await admin.submit("/api-keys/create", "/api-keys", client_id=c.client_id,
                           name="ci key")
    assert r.status_code == 200 and 'id="secret"' in r.text
    key = r.text.split('id="secret">')[1].split("<")[0]
    assert key.startswith(f"tsk_{admin.tenant}_")
    page = (await admin.http.get(admin.base + "/api-keys")).text
    assert key not in page and "ci key" in page
    key_id = key.split("_")[2]
    r = await admin.submit(f"/api-keys/{key_id}/rotate", "/api-keys")
    assert r.status_code == 200 and 'id="secret"' in r.text
    assert (await admin.submit(f"/api-keys/{key_id}/revoke", "/api-keys")).status_code == 303
    assert "status-revoked" in (await admin.http.get(admin.base + "/api-keys")).text

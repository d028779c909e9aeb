"""The console in a real headless Chromium (Playwright) against a real ``tessera serve`` whose
tenants log in through a real oidc-provider: a tenant admin (by upstream group) logs in, adds a
SAML upstream from metadata, creates an agent, sets a managed connection, approves a pending
request and verifies the audit chain; an admin of another tenant cannot see any of it; an
auditor reads but cannot change anything; a registry administrator comes in through
``/registry/console``, approves a pending partner and issues an invitation. Screenshots of
the main pages go to the test's tmp directory. Skips, before starting anything, where the
``chromium`` program is missing."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tenants.pending import handle_of
from tests.admin.admin_helpers import metadata, new_key
from tests.interop.conftest import TesseraServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason="chromium not installed: apt install chromium"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
UPSTREAM, UPSTREAM_NAME = "corp-oidc", "Corp OIDC"
USERS: dict[str, dict[str, Any]] = {
    "ada": {"email": "ada@corp.example", "name": "Ada Admin", "groups": ["tessera-admins"]},
    "audrey": {"email": "audrey@corp.example", "name": "Audrey Auditor",
               "groups": ["auditors"]},
    "bob": {"email": "bob@other.example", "name": "Bob Other", "groups": ["b-admins"]},
    "rita": {"email": "rita@corp.example", "name": "Rita Registry",
             "groups": ["registry-admins"]},
}


@pytest.fixture(scope="module")
def world(tessera_server: TesseraServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from tests.peers.oidc_idp import start_oidc_idp

    secret = "rp-secret-" + secrets.token_hex(16)
    names = [f"console-{secrets.token_hex(4)}" for _ in range(2)]
    # the IdP must know both tenants' callbacks: create the tenants with known names
    callbacks = [f"{tessera_server.issuer_of(n)}/login/{UPSTREAM}/callback" for n in names]
    idp = start_oidc_idp({
        "clients": [{"client_id": "tessera", "client_secret": secret,
                     "redirect_uris": callbacks,
                     "token_endpoint_auth_method": "client_secret_basic"}],
        "users": USERS}, tmp_path_factory.mktemp("console-idp"))
    try:
        for n in names:
            r = tessera_server.admin("POST", "/tenants", {"name": n, "settings": {}})
            assert r.status_code == 201, r.text
            r = tessera_server.admin("POST", f"/tenants/{n}/upstreams", {
                "name": UPSTREAM, "kind": "oidc", "display_name": UPSTREAM_NAME,
                "oidc": {"issuer": idp.issuer, "client_id": "tessera",
                         "client_secret": secret,
                         "scopes": ["openid", "email", "profile", "groups"]}})
            assert r.status_code == 201, r.text
        a, b = names
        for tenant, group, role in ((a, "tessera-admins", "tenant_admin"),
                                    (a, "auditors", "tenant_auditor"),
                                    (a, "registry-admins", "registry_admin"),
                                    (b, "b-admins", "tenant_admin")):
            r = tessera_server.admin("POST", f"/tenants/{tenant}/role-assignments",
                                     {"kind": "group", "subject": group, "role": role})
            assert r.status_code == 201, r.text
        yield {"a": a, "b": b}
    finally:
        idp.stop()


def _login(page: Page, console: str, user: str) -> None:
    """Open ``console``; sign in at the IdP as ``user`` if it asks (the tenant's chooser
    first where it has several upstreams); back at the console."""
    page.goto(console)
    _through_idp(page, console, user)


def _through_idp(page: Page, console: str, user: str) -> None:
    """Sent to the tenant's login on the way to ``console``: sign in there as ``user``."""
    if not page.url.startswith(console) and page.locator("input[name=login]").count() == 0:
        page.get_by_text(UPSTREAM_NAME, exact=True).click()  # the sign-in chooser
        page.wait_for_load_state()
    if page.locator("input[name=login]").count():
        page.fill("input[name=login]", user)
        if page.locator("input[name=password]").count():
            page.fill("input[name=password]", "any")
        page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(console + "**")


def _done(page: Page) -> None:
    """The form was accepted: its page says so (and shows no error)."""
    page.wait_for_selector("#notice, #error")
    assert page.locator("#error").count() == 0, page.locator("#error").inner_text()


def _shot(page: Page, where: Path, name: str) -> None:
    page.screenshot(path=str(where / f"console-{name}.png"), full_page=True)


def _csrf_of(page: Page, tenant: str) -> str:
    """The token the console binds to this browser's session (to show that the role, not
    a missing token, refuses the auditor)."""
    cookie = next(c for c in page.context.cookies() if c["name"] == "tessera_session")
    handle = handle_of(cookie["value"])
    return hmac.new(handle.encode(), f"console|{tenant}".encode(), hashlib.sha256).hexdigest()


def _browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_console_end_to_end(tessera_server: TesseraServer, world: dict[str, Any],
                            tmp_path: Path) -> None:
    a, b = world["a"], world["b"]
    console_a = f"{tessera_server.issuer_of(a)}/console"
    console_b = f"{tessera_server.issuer_of(b)}/console"
    agent_name = f"invoice agent {secrets.token_hex(3)}"
    for browser in _browser():
        # --- the tenant admin of A ---------------------------------------------------------
        page = browser.new_context().new_page()
        page.on("dialog", lambda d: d.accept())
        _login(page, console_a, "ada")
        assert "ada@corp.example" in page.locator("#who").inner_text()
        _shot(page, tmp_path, "overview")

        page.get_by_role("link", name="Upstream IdPs").click()
        page.get_by_label("Name (in URLs)").nth(1).fill("partner-saml")
        page.locator("#saml-display").fill("Partner SAML")
        page.get_by_label("or the metadata XML").fill(
            metadata(new_key(), "https://idp.partner.example/saml"))
        page.get_by_role("button", name="Add SAML IdP").click()
        _done(page)
        assert "https://idp.partner.example/saml" in page.locator("#upstreams").inner_text()
        _shot(page, tmp_path, "upstreams")

        page.get_by_role("link", name="Clients and agents").click()
        page.get_by_label("Name", exact=True).fill(agent_name)
        page.get_by_label("Owner (an agent's responsible person)").fill("ada@corp.example")
        page.get_by_label("Purpose").fill("reads invoices")
        page.get_by_label("Scopes").fill("openid email invoices.read")
        page.get_by_role("button", name="Create").click()
        secret = page.locator("#secret").inner_text()
        assert len(secret) > 20
        _shot(page, tmp_path, "clients-secret-once")
        page.get_by_role("link", name="Clients and agents").click()
        assert secret not in page.content() and agent_name in page.content()
        client_id = page.locator("tr", has_text=agent_name).get_attribute("data-client")
        assert client_id

        page.get_by_role("link", name="Managed connections").click()
        page.get_by_label("Client", exact=True).select_option(client_id)
        page.get_by_label("Audience (the other side's issuer)").fill("https://erp.example")
        page.get_by_label("Client ID there").fill("erp-42")
        page.get_by_label("Scope 1", exact=True).fill("invoices.read")
        page.get_by_label("Rule 1", exact=True).select_option("grant")
        page.get_by_label("Scope 2", exact=True).fill("invoices.pay")
        page.get_by_label("Rule 2", exact=True).select_option("approve")
        page.get_by_role("button", name="Save connection").click()
        _done(page)
        assert page.get_by_label("Rule for invoices.read").input_value() == "grant"
        assert page.get_by_label("Rule for invoices.pay").input_value() == "approve"
        # the per-scope table is itself the form: deny paying, keep reading
        page.get_by_label("Rule for invoices.pay").select_option("deny")
        page.get_by_role("button", name="Save rules").click()
        _done(page)
        assert page.get_by_label("Rule for invoices.pay").input_value() == "deny"
        assert page.get_by_label("Rule for invoices.read").input_value() == "grant"
        _shot(page, tmp_path, "connections")

        # a pending request (CIBA) for ada, from the agent just created
        with httpx.Client(timeout=10.0) as http:
            r = http.post(f"{tessera_server.issuer_of(a)}/bc-authorize",
                          auth=(client_id, secret),
                          data={"scope": "openid email", "login_hint": "ada@corp.example",
                                "binding_message": "PLAYWRIGHT-1"})
            assert r.status_code == 200, r.text
            auth_req_id = r.json()["auth_req_id"]
        page.get_by_role("link", name="Pending approvals").click()
        assert page.locator(".binding").inner_text() == "PLAYWRIGHT-1"
        _shot(page, tmp_path, "approvals")
        page.get_by_role("button", name="Approve").click()
        page.wait_for_selector("#none")
        with httpx.Client(timeout=10.0) as http:
            r = http.post(f"{tessera_server.issuer_of(a)}/token", auth=(client_id, secret),
                          data={"grant_type": "urn:openid:params:grant-type:ciba",
                                "auth_req_id": auth_req_id})
            assert r.status_code == 200, r.text

        page.get_by_role("link", name="Signing keys").click()
        _shot(page, tmp_path, "keys")
        page.get_by_role("link", name="Audit").click()
        page.get_by_role("button", name="Verify the chain").click()
        assert "Audit chain intact" in page.locator("#verify-result").inner_text()
        assert f"user:{a}/" in page.locator("#events").inner_text()
        _shot(page, tmp_path, "audit")

        # --- the tenant admin of B: their console, and nothing of A ------------------------
        other = browser.new_context().new_page()
        _login(other, console_b, "bob")
        assert agent_name not in other.content()
        other.goto(console_b + "/clients")
        assert agent_name not in other.content()
        _login(other, console_a + "/clients", "bob")  # A's own login; no role at A
        assert agent_name not in other.content() and secret not in other.content()
        assert "no administrative role" in other.content()
        _shot(other, tmp_path, "other-tenant-refused")

        # --- the auditor of A: reads everything, changes nothing ---------------------------
        auditor = browser.new_context().new_page()
        _login(auditor, console_a, "audrey")
        auditor.goto(console_a + "/clients")
        assert agent_name in auditor.content()
        assert auditor.locator("#read-only").count() == 1
        assert auditor.locator("form[method=post]").count() == 0
        for path in ("/clients/create", "/keys/rotate", f"/clients/{client_id}/retire"):
            r = auditor.request.post(console_a + path, form={
                "csrf": _csrf_of(auditor, a), "name": "nope"},
                headers={"Origin": tessera_server.base_url})
            assert r.status == 403, (path, r.status)
        auditor.goto(console_a + "/clients")
        assert "status-active" in auditor.locator("tr", has_text=agent_name).inner_html()
        _shot(auditor, tmp_path, "auditor-clients")
    assert (tmp_path / "console-overview.png").stat().st_size > 0


def test_registry_admin_approves_a_pending_partner(tessera_server: TesseraServer,
                                                   world: dict[str, Any],
                                                   tmp_path: Path) -> None:
    a = world["a"]
    partner = f"partner-{secrets.token_hex(3)}"
    r = tessera_server.admin("POST", "/partners", {
        "id": partner, "issuer": f"https://{partner}.example", "display_name": "Partner Co",
        "jwks_uri": f"https://{partner}.example/jwks"})
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    partners = f"{tessera_server.issuer_of(a)}/console/partners"
    for browser in _browser():
        page = browser.new_context().new_page()
        page.on("dialog", lambda d: d.accept())
        page.goto(f"{tessera_server.base_url}/registry/console")
        page.get_by_label("Organisation").fill("no-such-org")
        page.get_by_role("button", name="Continue to sign in").click()
        assert "no organisation" in page.locator("#error").inner_text()
        page.get_by_label("Organisation").fill(a)
        page.get_by_role("button", name="Continue to sign in").click()
        _through_idp(page, partners, "rita")
        assert "rita@corp.example" in page.locator("#who").inner_text()
        row = page.locator(f"tr[data-pending='{partner}']")
        _shot(page, tmp_path, "registry-pending")
        row.get_by_label(f"Reason for approving {partner} (optional)").fill("contract 7")
        row.get_by_role("button", name="Approve").click()
        _done(page)
        assert page.locator(f"tr[data-pending='{partner}']").count() == 0
        status = page.locator(f"tr[data-partner='{partner}'] td.status-active")
        assert status.inner_text() == "active"
        page.get_by_label("Note (who it is for)").fill("Partner Co onboarding")
        page.get_by_role("button", name="Issue invitation").click()
        code = page.locator("#secret").inner_text()
        assert code.startswith("tri_")
        _shot(page, tmp_path, "registry-partners")
        page.goto(partners)
        assert code not in page.content() and "Partner Co onboarding" in page.content()
        assert page.locator("text=Clients and agents").count() == 0  # no tenant role
    assert (tmp_path / "console-registry-partners.png").stat().st_size > 0

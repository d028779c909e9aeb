"""The approvals page in a real headless browser (Debian's chromium driven by Playwright): a
CIBA request waits; the approver's browser opens /t/{tenant}/approvals, is sent to log in at
the tenant's upstream IdP (oidc-provider), comes back to the page, sees the request with its
binding message and clicks Approve; the agent's next poll gets the tokens. Skips, before
starting anything, where the ``chromium`` program is missing (``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
from playwright.sync_api import sync_playwright

from tests.interop.conftest import LoginTenant

CIBA = "urn:openid:params:grant-type:ciba"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason="chromium not installed: apt install chromium"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_approve_in_browser(login_tenant: LoginTenant) -> None:
    client = login_tenant.server.create_client(login_tenant.name, name="ciba agent")
    auth = (client["client_id"], client["client_secret"])
    issuer = login_tenant.issuer
    with httpx.Client(timeout=10.0) as http:
        # alice must be a user of the tenant: the browser logs her in first (no request yet)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page()
                page.goto(f"{issuer}/approvals")
                if page.locator("input[name=login]").count() == 0:
                    page.locator("a, button").first.click()  # the sign-in chooser
                page.fill("input[name=login]", "alice")
                if page.locator("input[name=password]").count():
                    page.fill("input[name=password]", "any")
                page.locator("button[type=submit], input[type=submit]").first.click()
                page.wait_for_url(f"{issuer}/approvals")
                assert "Nothing is waiting" in page.content()

                r = http.post(f"{issuer}/bc-authorize", auth=auth, data={
                    "scope": "openid email", "login_hint": "alice@corp.example",
                    "binding_message": "BROWSER-42"})
                assert r.status_code == 200, r.text
                ack = r.json()
                polled = http.post(f"{issuer}/token", auth=auth, data={
                    "grant_type": CIBA, "auth_req_id": ack["auth_req_id"]})
                assert polled.json()["error"] == "authorization_pending"

                page.goto(f"{issuer}/approvals")
                assert page.locator(".binding").inner_text() == "BROWSER-42"
                page.get_by_role("button", name="Approve").click()
                page.wait_for_selector("#none")
            finally:
                browser.close()
        time.sleep(0.1)
        r = http.post(f"{issuer}/token", auth=auth, data={
            "grant_type": CIBA, "auth_req_id": ack["auth_req_id"]})
        assert r.status_code == 200, r.text
        assert r.json()["id_token"] and r.json()["access_token"]

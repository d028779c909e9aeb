"""The browser forms' CSRF tokens (consent, approvals, logout) refuse any input with a 400
page, never a 500: a token of non-ASCII characters included (``hmac.compare_digest`` raises on
non-ASCII text, so the comparisons are over bytes). Runs on the OIDC-only tenant."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TestClient, new_client
from tests.login.conftest import Login
from tests.login.flow import APP_REDIRECT, login_tokens, query, redirected_to, request_for
from tests.login.test_consent import form_of, request, sign_in

pytestmark = pytest.mark.interop

HOSTILE = ("é" * 64, "\u0000", "0" * 64 + "ü", "😀")


def refused_page(r: httpx.Response) -> bool:
    return (r.status_code == 400 and r.headers["content-type"].startswith("text/html")
            and "invalid_request" in r.text and "location" not in r.headers)


async def test_consent_csrf_of_any_text(login: Login) -> None:
    third: TestClient = await new_client(login.broker, login.tenant,
                                         redirect_uris=[APP_REDIRECT], first_party=False)
    async with login.browser() as browser:
        req = request(third)
        _, fields = form_of(await sign_in(login, browser, req.url()))
        for csrf in HOSTILE:
            r = await browser.post(f"/t/{login.tenant}/consent",
                                   data={**fields, "csrf": csrf, "decision": "allow"})
            assert refused_page(r), (csrf, r.status_code)
        location = redirected_to(await browser.post(f"/t/{login.tenant}/consent",
                                                    data={**fields, "decision": "allow"}))
        assert location.startswith(APP_REDIRECT) and query(location)["code"]


async def test_approvals_and_logout_csrf_of_any_text(login: Login) -> None:
    app = await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])
    async with login.browser() as browser:
        await login_tokens(login, app, request_for(app), browser)
        for csrf in HOSTILE:
            r = await browser.post(f"/t/{login.tenant}/approvals/some-id/approve",
                                   data={"csrf": csrf})
            assert refused_page(r), (csrf, r.status_code)
            r = await browser.post(f"/t/{login.tenant}/logout",
                                   data={"csrf": csrf, "logout": "confirm"})
            assert refused_page(r), (csrf, r.status_code)

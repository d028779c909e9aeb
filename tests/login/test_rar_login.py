"""Rich authorization requests (RFC 9396) at /authorize and PAR, through the code, the token
response, the access token, introspection and refresh."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests import admin_ops as login_admin
from tests.broker.helpers import jwt_parts, last_event
from tests.conftest import TestClient, new_client
from tests.login.conftest import Login
from tests.login.flow import (
    APP_REDIRECT,
    AuthRequest,
    code_form,
    follow_local,
    query,
    redirected_to,
    token,
)
from tests.peers.oidc_idp import login_at_idp

pytestmark = pytest.mark.interop

PAYMENT = "payment_initiation"
ACCOUNTS = "account_information"
PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"const": PAYMENT},
        "actions": {"type": "array", "items": {"enum": ["initiate", "status", "cancel"]}},
        "locations": {"type": "array", "items": {"type": "string"}},
        "instructedAmount": {
            "type": "object", "additionalProperties": False, "required": ["currency", "amount"],
            "properties": {"currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                           "amount": {"type": "string", "pattern": "^[0-9]+\\.[0-9]{2}$"}}},
        "creditorName": {"type": "string", "maxLength": 70},
        "creditorAccount": {"type": "object", "additionalProperties": False,
                            "required": ["iban"], "properties": {"iban": {"type": "string"}}},
    },
    "required": ["type", "instructedAmount"],
    "additionalProperties": False,
}
ACCOUNTS_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["type"],
    "properties": {"type": {"const": ACCOUNTS},
                   "actions": {"type": "array", "items": {"type": "string"}}}}
PAYMENT_DETAIL: dict[str, Any] = {
    "type": PAYMENT, "actions": ["initiate", "status"],
    "locations": ["https://bank.example/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A", "creditorAccount": {"iban": "DE02100100109307118603"}}


@pytest.fixture
async def bank(login: Login) -> TestClient:
    """The detail types registered (again: each test sees these schemas), and a confidential
    first-party client allowed payment_initiation only."""
    await login_admin.register_detail_type(login.broker, login.tenant, {
        "type": PAYMENT, "schema": PAYMENT_SCHEMA, "description": "Payment initiation"})
    await login_admin.register_detail_type(login.broker, login.tenant, {
        "type": ACCOUNTS, "schema": ACCOUNTS_SCHEMA, "description": "Account information"})
    return await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT],
                            authorization_details_types=[PAYMENT])


def rar_request(client: TestClient, details: Any) -> AuthRequest:
    raw = details if isinstance(details, str) else json.dumps(details)
    return AuthRequest(client.tenant, client.client_id, scope="openid",
                       extra={"login_hint": "alice@corp.example", "authorization_details": raw})


async def sign_in(login: Login, browser: httpx.AsyncClient, url: str) -> dict[str, str]:
    """/authorize through the OIDC IdP (as alice) and back: the client's redirect parameters."""
    idp_url = redirected_to(await follow_local(browser, url))
    assert idp_url.startswith(login.oidc_idp.issuer), idp_url
    async with login.idp_browser() as idp:
        callback = await login_at_idp(idp, idp_url, "alice")
    return query(redirected_to(await follow_local(browser, callback)))


async def redeem(browser: httpx.AsyncClient, client: TestClient, req: AuthRequest,
                 code: str) -> dict[str, Any]:
    r = await token(browser, client.tenant, code_form(req, code), auth=client.basic)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_discovery_lists_registered_types(login: Login, bank: TestClient) -> None:
    async with login.browser() as http:
        meta = (await http.get(f"/t/{login.tenant}/.well-known/openid-configuration")).json()
    assert {PAYMENT, ACCOUNTS} <= set(meta["authorization_details_types_supported"])
    listed = await login_admin.list_detail_types(login.broker, login.tenant)
    assert next(t for t in listed if t["type"] == PAYMENT)["schema"] == PAYMENT_SCHEMA


async def test_details_reach_token_claim_and_introspection(login: Login,
                                                           bank: TestClient) -> None:
    req = rar_request(bank, [PAYMENT_DETAIL])
    async with login.browser() as browser:
        got = await sign_in(login, browser, req.url())
        assert got["iss"] == bank.issuer and got["state"] == req.state
        body = await redeem(browser, bank, req, got["code"])
        assert body["authorization_details"] == [PAYMENT_DETAIL]
        _, claims = jwt_parts(body["access_token"])
        assert claims["authorization_details"] == [PAYMENT_DETAIL]
        r = await browser.post(f"/t/{login.tenant}/introspect",
                               data={"token": body["access_token"]}, auth=bank.basic)
        assert r.status_code == 200, r.text
        assert r.json()["active"] is True
        assert r.json()["authorization_details"] == [PAYMENT_DETAIL]

        # the same browser, through PAR: the session makes the code at once
        narrower = {"type": PAYMENT, "actions": ["status"],
                    "instructedAmount": {"currency": "EUR", "amount": "9.99"}}
        pushed = rar_request(bank, [narrower])
        r = await browser.post(f"/t/{login.tenant}/par", data=pushed.params(), auth=bank.basic)
        assert r.status_code == 201, r.text
        url = f"/t/{login.tenant}/authorize?client_id={bank.client_id}&request_uri=" + (
            r.json()["request_uri"])
        got = query(redirected_to(await follow_local(browser, url)))
        body = await redeem(browser, bank, pushed, got["code"])
        assert body["authorization_details"] == [narrower]
        assert jwt_parts(body["access_token"])[1]["authorization_details"] == [narrower]


async def test_plain_request_has_no_details_claim(login: Login, bank: TestClient) -> None:
    req = AuthRequest(login.tenant, bank.client_id, scope="openid",
                      extra={"login_hint": "alice@corp.example"})
    async with login.browser() as browser:
        body = await redeem(browser, bank, req, (await sign_in(login, browser, req.url()))["code"])
    assert "authorization_details" not in body
    assert "authorization_details" not in jwt_parts(body["access_token"])[1]


REFUSED = {
    "unknown-type": [{"type": "no_such_type"}],
    "not-allowed": [{"type": ACCOUNTS, "actions": ["read"]}],
    "unknown-field": [{**PAYMENT_DETAIL, "bogus": 1}],
    "missing-required": [{"type": PAYMENT, "actions": ["initiate"]}],
    "bad-value": [{**PAYMENT_DETAIL, "instructedAmount": {"currency": "euro", "amount": "1"}}],
    "bad-action": [{**PAYMENT_DETAIL, "actions": ["steal"]}],
    "common-field-type": [{**PAYMENT_DETAIL, "locations": "https://bank.example"}],
    "no-type": [{"actions": ["initiate"]}],
    "not-json": "[{not json",
    "not-array": json.dumps(PAYMENT_DETAIL),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_bad_details_refused_at_authorize(login: Login, bank: TestClient,
                                                case: str) -> None:
    req = rar_request(bank, REFUSED[case])
    async with login.browser() as browser:
        location = redirected_to(await browser.get(req.url()))
    assert location.startswith(APP_REDIRECT + "?"), location
    got = query(location)
    assert got["error"] == "invalid_authorization_details", got
    assert got["state"] == req.state and got["iss"] == bank.issuer
    event = await last_event(login.broker, login.tenant)
    assert event.action == "authorization.refused"
    assert event.detail["error"] == "invalid_authorization_details"


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_bad_details_refused_at_par(login: Login, bank: TestClient, case: str) -> None:
    req = rar_request(bank, REFUSED[case])
    async with login.browser() as http:
        r = await http.post(f"/t/{login.tenant}/par", data=req.params(), auth=bank.basic)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_authorization_details"
    assert (await last_event(login.broker, login.tenant)).action == "par.refused"


async def test_refresh_only_narrows_details(login: Login, bank: TestClient) -> None:
    req = rar_request(bank, [PAYMENT_DETAIL])
    async with login.browser() as browser:
        body = await redeem(browser, bank, req, (await sign_in(login, browser, req.url()))["code"])
        refresh = body["refresh_token"]

        async def again(details: list[dict[str, Any]]) -> httpx.Response:
            return await token(browser, login.tenant, {
                "grant_type": "refresh_token", "refresh_token": refresh,
                "authorization_details": json.dumps(details)}, auth=bank.basic)

        for broader in ([{**PAYMENT_DETAIL, "actions": ["initiate", "status", "cancel"]}],
                        [{**PAYMENT_DETAIL, "instructedAmount": {"currency": "EUR",
                                                                 "amount": "999.00"}}],
                        [PAYMENT_DETAIL, {"type": ACCOUNTS}]):
            r = await again(broader)
            assert r.status_code == 400, r.text
            assert r.json()["error"] == "invalid_authorization_details"
        narrower = [{"type": PAYMENT, "actions": ["status"],
                     "instructedAmount": PAYMENT_DETAIL["instructedAmount"]}]
        r = await again(narrower)  # the refusals did not rotate the refresh token away
        assert r.status_code == 200, r.text
        assert r.json()["authorization_details"] == narrower
        assert jwt_parts(r.json()["access_token"])[1]["authorization_details"] == narrower
        r = await token(browser, login.tenant, {
            "grant_type": "refresh_token", "refresh_token": r.json()["refresh_token"]},
            auth=bank.basic)
        assert r.status_code == 200, r.text
        assert r.json()["authorization_details"] == [PAYMENT_DETAIL]  # the grant's, unchanged

"""ID tokens (OpenID Connect Core §2, §3.1.3.6) and UserInfo (§5.3) of tessera's OpenID
Provider role, for a user who logged in at the oidc-provider IdP; users linked just in time."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tenants.models import User
from tenants.scope import tenant_scope
from tests import admin_ops as login_admin
from tests.broker.helpers import jwt_parts
from tests.conftest import BASE_URL, TestClient, new_client, new_tenant
from tests.dpop_client import new_key
from tests.login.conftest import SAML, Login
from tests.login.flow import (
    APP_REDIRECT,
    code_for,
    dpop,
    login_tokens,
    redeem,
    request_for,
)

pytestmark = pytest.mark.interop

SILVER = "urn:mace:incommon:iap:silver"


@pytest.fixture(scope="module")
async def app(login: Login) -> TestClient:
    return await new_client(login.broker, login.tenant, redirect_uris=[APP_REDIRECT])


@pytest.fixture(scope="module")
async def browser(login: Login, app: TestClient) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in at login-corp (as alice): later codes come without the IdP."""
    async with login.browser() as b:
        await code_for(login, request_for(app), b)
        yield b


async def verified(http: httpx.AsyncClient, issuer: str, id_token: str) -> jwt.Token:
    """The ID token checked with the tenant's published JWKS (joserfc)."""
    jwks = await http.get(f"{issuer}/jwks")
    assert jwks.status_code == 200, jwks.text
    return jwt.decode(id_token, KeySet.import_key_set(jwks.json()),
                      algorithms=["ES256", "RS256", "PS256", "EdDSA"])


async def userinfo(http: httpx.AsyncClient, issuer: str, value: str | None, *,
                   scheme: str = "Bearer", headers: dict[str, str] | None = None,
                   method: str = "GET") -> httpx.Response:
    auth = {"Authorization": f"{scheme} {value}"} if value else {}
    return await http.request(method, f"{issuer}/userinfo", headers={**auth, **(headers or {})})


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def test_id_token(login: Login, app: TestClient) -> None:
    req = request_for(app)
    async with login.browser() as b:  # a fresh login at the IdP
        body = await login_tokens(login, app, req, b)
        token = await verified(b, app.issuer, body["id_token"])
        info = await userinfo(b, app.issuer, body["access_token"])
    assert info.status_code == 200, info.text
    assert token.header["typ"] == "JWT" and token.header["kid"]
    claims = token.claims
    now = login.broker.clock.now()
    assert claims["iss"] == app.issuer
    assert claims["aud"] == app.client_id and claims["azp"] == app.client_id
    assert claims["sub"] == info.json()["sub"]
    assert claims["nonce"] == req.nonce
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert isinstance(claims["sid"], str) and claims["sid"]
    assert claims["iat"] <= now + 5 < claims["exp"]
    assert isinstance(claims["auth_time"], int) and claims["auth_time"] <= claims["iat"]
    assert claims["acr"] == SILVER and "mfa" in claims["amr"] and "pwd" in claims["amr"]
    assert claims["email"] == "alice@corp.example" and claims["email_verified"] is True
    assert claims["name"] == "Alice Liddell"
    assert claims["groups"] == ["eng", "admins"] and claims["department"] == "R&D"


@pytest.mark.parametrize(("scope", "released"), [
    ("openid", set()),
    ("openid email", {"email", "email_verified"}),
    ("openid groups", {"groups"}),
    ("openid profile", {"name", "department"}),
])
async def test_claims_released_per_scope(login: Login, app: TestClient,
                                         browser: httpx.AsyncClient, scope: str,
                                         released: set[str]) -> None:
    body = await login_tokens(login, app, request_for(app, scope=scope), browser)
    claims = (await verified(browser, app.issuer, body["id_token"])).claims
    user_claims = {"email", "name", "groups", "department", "email_verified"}
    assert user_claims & set(claims) == released
    assert claims["acr"] == SILVER  # the authentication context whatever the scope
    info = await userinfo(browser, app.issuer, body["access_token"], method="POST")
    assert info.status_code == 200, info.text
    assert set(info.json()) == {"sub"} | released
    assert info.json()["sub"] == claims["sub"]


async def test_userinfo_with_a_dpop_bound_token(login: Login, app: TestClient,
                                                browser: httpx.AsyncClient) -> None:
    key = new_key()
    req = request_for(app)
    r = await redeem(browser, app, req, await code_for(login, req, browser),
                     headers=dpop(login, key, app.token_url))
    assert r.status_code == 200, r.text
    value, url = r.json()["access_token"], f"{app.issuer}/userinfo"
    assert r.json()["token_type"] == "DPoP"
    r = await userinfo(browser, app.issuer, value)  # as Bearer
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    r = await userinfo(browser, app.issuer, value, scheme="DPoP")  # no proof
    assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
    assert 'error="invalid_dpop_proof"' in r.headers["www-authenticate"]
    r = await userinfo(browser, app.issuer, value, scheme="DPoP",
                       headers=dpop(login, new_key(), url, htm="GET", access_token=value))
    assert r.status_code == 401 and r.json()["error"] == "invalid_dpop_proof"
    r = await userinfo(browser, app.issuer, value, scheme="DPoP",
                       headers=dpop(login, key, url, htm="GET", access_token=value))
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "alice@corp.example"


async def test_userinfo_needs_the_openid_scope(login: Login, app: TestClient,
                                               browser: httpx.AsyncClient) -> None:
    body = await login_tokens(login, app, request_for(app, scope="read"), browser)
    assert "id_token" not in body
    r = await userinfo(browser, app.issuer, body["access_token"])
    assert r.status_code == 403 and r.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


async def test_userinfo_without_a_token(login: Login, app: TestClient) -> None:
    async with login.browser() as b:
        r = await userinfo(b, app.issuer, None)
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and ", DPoP " in challenge
    assert "error=" not in challenge  # no credential: bare challenges (RFC 6750 §3.1)


async def test_userinfo_with_a_revoked_token(login: Login, app: TestClient,
                                             browser: httpx.AsyncClient) -> None:
    body = await login_tokens(login, app, request_for(app), browser)
    assert (await userinfo(browser, app.issuer, body["access_token"])).status_code == 200
    r = await browser.post(f"{app.issuer}/revoke", data={"token": body["access_token"]},
                           auth=app.basic)
    assert r.status_code == 200, r.text
    r = await userinfo(browser, app.issuer, body["access_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert 'Bearer realm=' in r.headers["www-authenticate"]


# -- users linked just in time ---------------------------------------------------------------

@pytest.fixture(scope="module")
async def fresh(login_saml: Login) -> TestClient:
    """A tenant of its own federating the session's SAML IdP: no user has logged in there."""
    tenant = await new_tenant(login_saml.broker)
    created = await login_admin.create_upstream(login_saml.broker, tenant, {
        "name": SAML, "kind": "saml", "display_name": "Corp (SAML)",
        "saml": {"metadata_xml": login_saml.saml_idp.metadata_xml().decode()}})
    async with login_saml.browser() as http:
        sp = await http.get(created["sp_metadata_url"].removeprefix(BASE_URL))
        assert sp.status_code == 200, sp.text
    login_saml.saml_idp.add_sp_metadata(sp.content)
    return await new_client(login_saml.broker, tenant, redirect_uris=[APP_REDIRECT])


async def users_of(login: Login, tenant: str) -> list[dict[str, Any]]:
    return await login_admin.list_users(login.broker, tenant)


async def make_stale(login: Login, tenant: str, sub: str) -> None:
    async with tenant_scope(login.broker.sessions, tenant) as scope:
        user = await scope.get(User, sub)
        assert user is not None
        user.name, user.groups, user.email, user.claims = "Old Name", [], "old@x.example", {}
        user.last_login_at = 0.0


async def test_jit_user_created_once_and_refreshed(login_saml: Login, fresh: TestClient) -> None:
    assert await users_of(login_saml, fresh.tenant) == []
    req = request_for(fresh, idp=SAML)
    async with login_saml.browser() as b:
        first = await login_tokens(login_saml, fresh, req, b, user="carol")
        sub = (await verified(b, fresh.issuer, first["id_token"])).claims["sub"]
    [created] = await users_of(login_saml, fresh.tenant)
    assert created["sub"] == sub and created["email"] == "carol@saml.example"
    assert created["name"] == "Carol Danvers" and created["groups"] == ["pilots"]
    await make_stale(login_saml, fresh.tenant, sub)
    async with login_saml.browser() as b:  # a new browser: a second login at the IdP
        second = await login_tokens(login_saml, fresh, request_for(fresh, idp=SAML), b,
                                    user="carol")
        info = await userinfo(b, fresh.issuer, second["access_token"])
        assert (await verified(b, fresh.issuer, second["id_token"])).claims["sub"] == sub
    assert info.json() == {"sub": sub, "name": "Carol Danvers", "email": "carol@saml.example",
                           "groups": ["pilots"]}
    [updated] = await users_of(login_saml, fresh.tenant)
    assert updated["sub"] == sub and updated["created_at"] == created["created_at"]
    assert updated["email"] == "carol@saml.example" and updated["last_login_at"] > 0
    # the same person is another user at another tenant
    assert sub not in {u["sub"] for u in await users_of(login_saml, login_saml.tenant)}


async def test_oidc_relogin_refreshes_the_profile(login: Login, app: TestClient) -> None:
    async with login.browser() as b:
        first = await login_tokens(login, app, request_for(app), b, user="bob")
        sub = jwt_parts(first["id_token"])[1]["sub"]
    await make_stale(login, login.tenant, sub)
    async with login.browser() as b:
        second = await login_tokens(login, app, request_for(app), b, user="bob")
        info = (await userinfo(b, app.issuer, second["access_token"])).json()
    assert jwt_parts(second["id_token"])[1]["sub"] == sub
    assert info == {"sub": sub, "name": "Bob Builder", "email": "bob@corp.example",
                    "groups": ["ops"]}
    bobs = [u for u in await users_of(login, login.tenant) if u["email"] == "bob@corp.example"]
    assert [u["sub"] for u in bobs] == [sub]

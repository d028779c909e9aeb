"""Drives the authorization code flow the way a browser would: httpx against the broker (over
ASGI, cookies kept per browser) and against the upstream IdP peers (real HTTP on loopback)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
from joserfc.jwk import Key

from tests import admin_ops as ops
from tests.conftest import BASE_URL, TestClient
from tests.dpop_client import make_proof
from tests.login.conftest import OIDC, Login, federate_oidc, federate_saml
from tests.peers.oidc_idp import login_at_idp
from tests.peers.saml_idp import saml_login

APP_REDIRECT = "https://app.example/cb"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@dataclass
class AuthRequest:
    tenant: str
    client_id: str
    scope: str = "openid profile email groups"
    redirect_uri: str = APP_REDIRECT
    state: str = field(default_factory=lambda: secrets.token_urlsafe(8))
    nonce: str = field(default_factory=lambda: secrets.token_urlsafe(8))
    verifier: str = ""
    challenge: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.verifier:
            self.verifier, self.challenge = pkce()

    def params(self) -> dict[str, str]:
        return {"response_type": "code", "client_id": self.client_id,
                "redirect_uri": self.redirect_uri, "scope": self.scope, "state": self.state,
                "nonce": self.nonce, "code_challenge": self.challenge,
                "code_challenge_method": "S256", **self.extra}

    def url(self) -> str:
        return f"/t/{self.tenant}/authorize?{urlencode(self.params())}"


async def follow_local(browser: httpx.AsyncClient, url: str, *, limit: int = 10
                       ) -> httpx.Response:
    """GET ``url`` at the broker and follow redirects while they stay at the broker."""
    response = await browser.get(url)
    for _ in range(limit):
        location = response.headers.get("location")
        if response.status_code not in (302, 303) or not location:
            return response
        if not location.startswith(BASE_URL) and not location.startswith("/"):
            return response
        response = await browser.get(location)
    raise AssertionError("too many redirects at the broker")


async def submit_acs(browser: httpx.AsyncClient, acs: str, fields: dict[str, str]
                     ) -> httpx.Response:
    """POST the IdP's form to tessera's ACS, as the browser does, and follow tessera's
    redirects (the ACS hands over to a same-site GET that checks the browser's flow cookie)."""
    response = await browser.post(acs.removeprefix(BASE_URL), data=fields)
    location = response.headers.get("location", "")
    if response.status_code in (302, 303) and location.startswith(BASE_URL):
        return await follow_local(browser, location)
    return response


def redirected_to(response: httpx.Response) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    return response.headers["location"]


async def token(http: httpx.AsyncClient, tenant: str, data: dict[str, str],
                auth: tuple[str, str] | None = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
    return await http.post(f"/t/{tenant}/token", data=data, auth=auth or httpx.USE_CLIENT_DEFAULT,
                           headers=headers or {})


def code_form(req: AuthRequest, code: str, **extra: str) -> dict[str, Any]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": req.redirect_uri,
            "code_verifier": req.verifier, **extra}


# -- shared by the OpenID Provider tests (code, refresh, ID token, logout, ID-JAG) ----------

def request_for(client: TestClient, *, idp: str = OIDC, **kwargs: Any) -> AuthRequest:
    """An authorization request of ``client`` that goes straight to upstream ``idp``."""
    extra = {"idp": idp, **kwargs.pop("extra", {})}
    return AuthRequest(client.tenant, client.client_id, extra=extra, **kwargs)


async def code_for(login: Login, req: AuthRequest, browser: httpx.AsyncClient,
                   user: str = "alice") -> str:
    """The code of ``req``: through the upstream IdP (OIDC or SAML, as user ``user``) unless
    ``browser`` already has a session at the tenant, then straight back with a code."""
    location = redirected_to(await follow_local(browser, req.url()))
    if location.startswith(login.oidc_idp.issuer):
        async with login.idp_browser() as idp:
            callback = await login_at_idp(idp, location, user)
        location = redirected_to(await follow_local(browser, callback))
    elif login.saml is not None and location.startswith(login.saml.base_url):
        async with login.idp_browser() as idp:
            acs, fields = await saml_login(idp, location, user)
        location = redirected_to(await submit_acs(browser, acs, fields))
    params = query(location)
    assert location.startswith(req.redirect_uri) and "code" in params, location
    return params["code"]


async def redeem(http: httpx.AsyncClient, client: TestClient, req: AuthRequest, code: str,
                 headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    """The code at the token endpoint, authenticated as ``client`` (client_id alone for a
    public client)."""
    data = code_form(req, code, **extra)
    if client.secret is None:
        data["client_id"] = client.client_id
    return await token(http, client.tenant, data, auth=client.basic if client.secret else None,
                       headers=headers)


async def refresh(http: httpx.AsyncClient, client: TestClient, refresh_token: str,
                  headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
    if client.secret is None:
        data["client_id"] = client.client_id
    return await token(http, client.tenant, data, auth=client.basic if client.secret else None,
                       headers=headers)


async def login_tokens(login: Login, client: TestClient, req: AuthRequest,
                       browser: httpx.AsyncClient, user: str = "alice") -> dict[str, Any]:
    """Log in (or reuse the browser's session) and redeem the code: the token response."""
    r = await redeem(browser, client, req, await code_for(login, req, browser, user))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def dpop(login: Login, key: Key, url: str, *, htm: str = "POST",
         access_token: str | None = None) -> dict[str, str]:
    """A ``DPoP`` header whose ``iat`` is the broker's clock (tests may move it)."""
    return {"DPoP": make_proof(key, htm=htm, htu=url, access_token=access_token,
                               iat=int(login.broker.clock.now()))}


async def introspect(http: httpx.AsyncClient, caller: TestClient, value: str) -> dict[str, Any]:
    r = await http.post(f"{caller.issuer}/introspect", data={"token": value}, auth=caller.basic)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def federate(login: Login, rp_secret: str) -> None:
    """Create ``login.tenant`` federating ``login.oidc_idp`` (as its client ``tessera`` with
    ``rp_secret``) and, if ``login`` has one, its running SAML IdP, with the upstream names
    and domains of the ``login`` and ``login_saml`` fixtures."""
    await ops.create_tenant(login.broker, login.tenant)
    await federate_oidc(login, rp_secret)
    if login.saml is not None:
        await federate_saml(login, login.saml)

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

from tests.conftest import BASE_URL

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

"""The command line as a tenant's admin client, for automation that must not hold the
operator's token: client credentials + DPoP at the tenant's own token endpoint (resource
``{issuer}/admin``), then a fresh DPoP proof on every admin request; a ``use_dpop_nonce``
answer is retried once with the nonce (RFC 9449 §8, §9).

    TESSERA_URL=https://tessera.example TESSERA_ADMIN_CLIENT=acme/CLIENT_ID \\
    TESSERA_ADMIN_CLIENT_SECRET=... tessera client list --tenant acme

The key pair is made for this run and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Generator
from urllib.parse import quote

import httpx
from joserfc import jws
from joserfc.jwk import ECKey

from broker.cli.exits import DENIED, CliError


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _error(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body.get("error") if isinstance(body, dict) else None


class DPoPAdminAuth(httpx.Auth):
    """httpx authentication of an admin client (see the module docstring)."""

    requires_response_body = True

    def __init__(self, base_url: str, tenant: str, client_id: str, secret: str, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer = f"{base_url.rstrip('/')}/t/{quote(tenant, safe='')}"
        self.client_id, self.secret, self.clock = client_id, secret, clock
        self.key = ECKey.generate_key("P-256")
        self.token: str | None = None
        self.nonce: str | None = None

    def proof(self, method: str, url: str, token: str | None = None) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url,
                  "iat": int(self.clock())}
        if token is not None:
            claims["ath"] = _b64(hashlib.sha256(token.encode("ascii")).digest())
        if self.nonce is not None:
            claims["nonce"] = self.nonce
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jws.serialize_compact(header, json.dumps(claims), self.key)

    def _basic(self) -> str:
        pair = f"{quote(self.client_id, safe='')}:{quote(self.secret, safe='')}"
        return "Basic " + base64.b64encode(pair.encode()).decode("ascii")

    def _token_flow(self) -> Generator[httpx.Request, httpx.Response, None]:
        url = self.issuer + "/token"
        for _attempt in range(2):
            response = yield httpx.Request("POST", url, data={
                "grant_type": "client_credentials", "resource": self.issuer + "/admin"},
                headers={"Authorization": self._basic(), "DPoP": self.proof("POST", url)})
            if _error(response) == "use_dpop_nonce" and "dpop-nonce" in response.headers:
                self.nonce = response.headers["dpop-nonce"]
                continue
            if response.status_code != 200:
                raise CliError(f"the admin client could not get a token at {url}: "
                               f"{_error(response) or response.status_code}", DENIED)
            self.token = str(response.json()["access_token"])
            return
        raise CliError(f"{url} kept asking for a new DPoP nonce", DENIED)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response,
                                                              None]:
        if self.token is None:
            yield from self._token_flow()
        assert self.token is not None
        htu = str(request.url.copy_with(query=None, fragment=None))
        request.headers["Authorization"] = f"DPoP {self.token}"
        request.headers["DPoP"] = self.proof(request.method, htu, self.token)
        response = yield request
        if _error(response) == "use_dpop_nonce" and "dpop-nonce" in response.headers:
            self.nonce = response.headers["dpop-nonce"]
            request.headers["DPoP"] = self.proof(request.method, htu, self.token)
            yield request


def from_environment(base_url: str, environ: dict[str, str]) -> DPoPAdminAuth | None:
    """The admin client ``TESSERA_ADMIN_CLIENT`` (``tenant/client_id``) names, or None."""
    named = environ.get("TESSERA_ADMIN_CLIENT")
    if not named:
        return None
    tenant, _, client_id = named.partition("/")
    secret = environ.get("TESSERA_ADMIN_CLIENT_SECRET")
    if not tenant or not client_id or not secret:
        raise CliError("TESSERA_ADMIN_CLIENT is tenant/client_id, with "
                       "TESSERA_ADMIN_CLIENT_SECRET beside it", DENIED)
    return DPoPAdminAuth(base_url, tenant, client_id, secret)

"""tessera as an OpenID Connect relying party to a tenant's enterprise IdP (Entra ID, Okta, Google).

Specs: OpenID Connect Core 1.0 §3.1 (authorization code flow; §3.1.2.5-7 callback, §3.1.3
token request, §3.1.3.7 ID token validation; §5.3 UserInfo), RFC 7636 (PKCE, S256 only),
OpenID Connect Discovery 1.0 (in ``adapters.oidc_discovery``), RFC 7523 §2.2 and §3
(``private_key_jwt`` client assertions), RFC 6749 §2.3.1 (client secrets), RFC 9207 (``iss``
in the authorization response). The pure checks live in ``adapters.oidc_checks``. API::

    upstream = OIDCUpstream(http, keys, clock, *, url_check=None, allow_http_loopback=False,
                            discovery_ttl=3600, timeout=10)
    meta = await upstream.metadata(config)                      # -> ProviderMetadata
    start = upstream.begin(config, meta, redirect_uri, *, login_hint=None, prompt=None)
    #   -> LoginStart: keep state, nonce, code_verifier server-side; send the browser to url
    identity = await upstream.finish(config, meta, redirect_uri, *, callback_params=query,
                                     expected_state=..., nonce=..., code_verifier=...,
                                     signer=None)               # -> UpstreamIdentity
    s256_challenge(code_verifier) -> str

``keys`` is a ``KeySource`` (the broker passes ``registry.remote_keys.RemoteKeys``: cached JWKS,
refetch on unknown kid, SSRF guard); ``signer`` signs ``private_key_jwt`` assertions in the
tenant's key service and sets ``alg`` and ``kid`` itself (the header given holds ``typ``);
``url_check`` is the caller's SSRF guard, called before each discovery, token and userinfo
request. Every refusal raises ``UpstreamError``. No database and no server here: the caller
keeps the login state. Not supported: encrypted ID tokens, signed userinfo (application/jwt).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urlsplit

import httpx
from joserfc.jwk import Key

from adapters.clock import Clock
from adapters.jose import ASYMMETRIC_ALGS, JWTError, unverified_header, verify_jws
from adapters.oidc_checks import (
    check_callback,
    check_id_token_claims,
    forbidden_alg,
    oauth_error,
    s256_challenge,
)
from adapters.oidc_discovery import (
    ProviderMetadata,
    UpstreamError,
    UrlCheck,
    discover,
    send,
    short,
)

__all__ = ["KeySource", "LoginStart", "OIDCUpstream", "OIDCUpstreamConfig", "ProviderMetadata",
           "Signer", "UpstreamError", "UpstreamIdentity", "UrlCheck", "s256_challenge"]

CLIENT_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post", "private_key_jwt"})
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
_AUTH_PARAMS = frozenset({"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                          "code_challenge", "code_challenge_method", "login_hint", "prompt"})
# protocol claims a userinfo response must not contribute to the merged claims
_PROTOCOL_CLAIMS = frozenset({"iss", "aud", "exp", "iat", "nbf", "jti", "nonce", "azp", "at_hash",
                              "c_hash", "auth_time", "acr", "amr", "sid"})

Signer = Callable[[dict[str, Any], dict[str, Any]], Awaitable[str]]


class KeySource(Protocol):
    async def key(self, jwks_uri: str, kid: str | None, alg: str) -> Key:
        """The IdP's public key for (kid, alg) from ``jwks_uri``; raises when there is none."""
        ...


@dataclass(frozen=True)
class OIDCUpstreamConfig:
    """One tenant's registration at its IdP; explicit endpoints replace discovery."""

    issuer: str
    client_id: str
    client_auth: str  # "client_secret_basic" | "client_secret_post" | "private_key_jwt"
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    allowed_algs: tuple[str, ...] = ("RS256", "PS256", "ES256")
    use_userinfo: bool = False
    extra_auth_params: tuple[tuple[str, str], ...] = ()
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    jwks_uri: str | None = None
    userinfo_endpoint: str | None = None

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ValueError("client_id is required")
        if self.client_auth not in CLIENT_AUTH_METHODS:
            raise ValueError(f"client_auth must be one of {sorted(CLIENT_AUTH_METHODS)}")
        if self.client_auth != "private_key_jwt" and not self.client_secret:
            raise ValueError(f"{self.client_auth} needs a client_secret")
        if not self.allowed_algs:
            raise ValueError("allowed_algs is empty")
        for alg in self.allowed_algs:
            if forbidden_alg(alg) or alg not in ASYMMETRIC_ALGS:
                raise ValueError(f"alg {alg!r} is not allowed for ID tokens")
        if "openid" not in self.scopes:
            raise ValueError("scopes must include 'openid'")
        clash = {name for name, _ in self.extra_auth_params} & _AUTH_PARAMS
        if clash:
            raise ValueError(f"extra_auth_params must not set {sorted(clash)}")
        if self.authorization_endpoint and not (self.token_endpoint and self.jwks_uri):
            raise ValueError("explicit endpoints need token_endpoint and jwks_uri too")


@dataclass(frozen=True)
class LoginStart:
    """Where to send the browser, and what the caller keeps server-side for ``finish``."""

    url: str
    state: str
    nonce: str
    code_verifier: str = field(repr=False)


@dataclass(frozen=True)
class UpstreamIdentity:
    claims: dict[str, Any]  # ID token claims over userinfo claims
    id_token_claims: dict[str, Any]
    subject: str
    issuer: str
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None


def _with_query(endpoint: str, params: list[tuple[str, str]]) -> str:
    """RFC 6749 §3.1: keep the endpoint's own query, add ours, repeat no parameter."""
    parts = urlsplit(endpoint)
    clash = {k for k, _ in parse_qsl(parts.query, keep_blank_values=True)} & {k for k, _ in params}
    if clash:
        raise UpstreamError(f"authorization_endpoint already sets {sorted(clash)}")
    query = "&".join(q for q in (parts.query, urlencode(params, quote_via=quote)) if q)
    return parts._replace(query=query).geturl()


class OIDCUpstream:
    """The relying party: discovery, the authorization request, code redemption, validation."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        keys: KeySource,
        clock: Clock,
        *,
        url_check: UrlCheck | None = None,
        allow_http_loopback: bool = False,
        discovery_ttl: float = 3600,
        timeout: float = 10.0,
    ) -> None:
        self._http = http
        self._keys = keys
        self._clock = clock
        self._url_check = url_check
        self._loopback = allow_http_loopback
        self._ttl = discovery_ttl
        self._timeout = timeout
        self._cache: dict[str, tuple[ProviderMetadata, float]] = {}

    async def metadata(self, config: OIDCUpstreamConfig) -> ProviderMetadata:
        """Explicit endpoints, or the issuer's discovery document (cached ``discovery_ttl``)."""
        if config.authorization_endpoint:
            doc = {"issuer": config.issuer, "authorization_endpoint": config.authorization_endpoint,
                   "token_endpoint": config.token_endpoint, "jwks_uri": config.jwks_uri,
                   "userinfo_endpoint": config.userinfo_endpoint,
                   "id_token_signing_alg_values_supported": list(config.allowed_algs)}
            return ProviderMetadata.from_document(
                {k: v for k, v in doc.items() if v is not None}, config.issuer,
                allow_http_loopback=self._loopback)
        cached = self._cache.get(config.issuer)
        if cached is not None and self._clock.now() < cached[1]:
            return cached[0]
        found = await discover(self._http, config.issuer, url_check=self._url_check,
                               allow_http_loopback=self._loopback, time_limit=self._timeout)
        self._cache[config.issuer] = (found, self._clock.now() + self._ttl)
        return found

    def forget(self, issuer: str) -> None:
        """Drop the cached discovery document of ``issuer``."""
        self._cache.pop(issuer, None)

    def begin(
        self, config: OIDCUpstreamConfig, metadata: ProviderMetadata, redirect_uri: str, *,
        login_hint: str | None = None, prompt: str | None = None,
    ) -> LoginStart:
        """An authorization request (code flow, PKCE S256) with fresh state, nonce, verifier."""
        _same_issuer(config, metadata)
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)  # 64 characters of the RFC 7636 alphabet
        params = [("response_type", "code"), ("client_id", config.client_id),
                  ("redirect_uri", redirect_uri), ("scope", " ".join(config.scopes)),
                  ("state", state), ("nonce", nonce),
                  ("code_challenge", s256_challenge(verifier)), ("code_challenge_method", "S256")]
        if login_hint:
            params.append(("login_hint", login_hint))
        if prompt:
            params.append(("prompt", prompt))
        params.extend(config.extra_auth_params)
        url = _with_query(metadata.authorization_endpoint, params)
        return LoginStart(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def finish(
        self, config: OIDCUpstreamConfig, metadata: ProviderMetadata, redirect_uri: str, *,
        callback_params: Mapping[str, str], expected_state: str, nonce: str, code_verifier: str,
        signer: Signer | None = None,
    ) -> UpstreamIdentity:
        """Check the callback, redeem the code, validate the ID token, optionally ask userinfo."""
        _same_issuer(config, metadata)
        code = check_callback(metadata, callback_params, expected_state)
        id_token, access_token = await self._redeem(
            config, metadata, redirect_uri, code, code_verifier, signer)
        id_claims = await self._verify_id_token(config, metadata, id_token, nonce)
        claims = dict(id_claims)
        if config.use_userinfo and metadata.userinfo_endpoint:
            info = await self._userinfo(metadata.userinfo_endpoint, access_token, id_claims["sub"])
            claims = {**{k: v for k, v in info.items() if k not in _PROTOCOL_CLAIMS}, **id_claims}
        auth_time = id_claims.get("auth_time")
        return UpstreamIdentity(
            claims=claims, id_token_claims=id_claims, subject=id_claims["sub"],
            issuer=metadata.issuer, acr=id_claims.get("acr"), amr=tuple(id_claims.get("amr", ())),
            auth_time=None if auth_time is None else int(auth_time),
        )

    async def _redeem(
        self, config: OIDCUpstreamConfig, metadata: ProviderMetadata, redirect_uri: str,
        code: str, code_verifier: str, signer: Signer | None,
    ) -> tuple[str, str | None]:
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": code_verifier}
        headers = {"Accept": "application/json"}
        secret = config.client_secret or ""
        if config.client_auth == "client_secret_basic":
            pair = f"{quote_plus(config.client_id)}:{quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        elif config.client_auth == "client_secret_post":
            form |= {"client_id": config.client_id, "client_secret": secret}
        else:
            assertion = await self._client_assertion(config, metadata, signer)
            form |= {"client_id": config.client_id, "client_assertion_type": ASSERTION_TYPE,
                     "client_assertion": assertion}
        reply = await send(self._http, "POST", metadata.token_endpoint, what="token endpoint",
                           url_check=self._url_check, time_limit=self._timeout, headers=headers,
                           data=form)
        if reply.status != 200:
            try:
                detail = oauth_error(reply.json_object("token endpoint"))
            except UpstreamError:
                detail = ""
            raise UpstreamError(f"token endpoint answered HTTP {reply.status}{detail}")
        body = reply.json_object("token endpoint")
        id_token, access_token = body.get("id_token"), body.get("access_token")
        if not isinstance(id_token, str) or not id_token:
            raise UpstreamError("token response has no id_token")
        if access_token is not None and not isinstance(access_token, str):
            raise UpstreamError("token response access_token is not a string")
        return id_token, access_token

    async def _client_assertion(
        self, config: OIDCUpstreamConfig, metadata: ProviderMetadata, signer: Signer | None
    ) -> str:
        """RFC 7523 §3: iss = sub = client_id, aud = token endpoint, one-minute lifetime."""
        if signer is None:
            raise UpstreamError("private_key_jwt needs a signer for the client assertion")
        now = int(self._clock.now())
        claims = {"iss": config.client_id, "sub": config.client_id,
                  "aud": metadata.token_endpoint, "jti": secrets.token_urlsafe(24),
                  "iat": now, "exp": now + ASSERTION_LIFETIME}
        try:
            assertion = await signer({"typ": "JWT"}, claims)
        except UpstreamError:
            raise
        except Exception as exc:
            raise UpstreamError(f"signing the client assertion failed: {type(exc).__name__}"
                                ) from exc
        if not isinstance(assertion, str) or assertion.count(".") != 2:
            raise UpstreamError("the signer returned no compact JWS")
        return assertion

    async def _verify_id_token(
        self, config: OIDCUpstreamConfig, metadata: ProviderMetadata, token: str, nonce: str
    ) -> dict[str, Any]:
        if token.count(".") == 4:
            raise UpstreamError("encrypted ID tokens are not supported")
        try:
            header = unverified_header(token)
        except JWTError as exc:
            raise UpstreamError(f"ID token refused: {exc}") from None
        allowed = frozenset(a for a in config.allowed_algs if not forbidden_alg(a))
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in allowed:
            raise UpstreamError(f"ID token refused: alg {short(alg)} is not allowed")
        if kid is not None and not isinstance(kid, str):
            raise UpstreamError("ID token refused: kid is not a string")
        try:
            key = await self._keys.key(metadata.jwks_uri, kid, alg)
        except Exception as exc:
            raise UpstreamError(
                f"no IdP key for the ID token (kid {short(kid)}, {alg}): {short(exc, 200)}"
            ) from exc
        try:
            claims = verify_jws(token, lambda _header: key, algorithms=allowed).claims
        except JWTError as exc:
            raise UpstreamError(f"ID token refused: {exc}") from None
        check_id_token_claims(claims, issuer=metadata.issuer, client_id=config.client_id,
                              nonce=nonce, now=self._clock.now())
        return claims

    async def _userinfo(self, url: str, access_token: str | None, sub: str) -> dict[str, Any]:
        if not access_token:
            raise UpstreamError("token response has no access_token for the userinfo request")
        reply = await send(self._http, "GET", url, what="userinfo endpoint",
                           url_check=self._url_check, time_limit=self._timeout,
                           headers={"Authorization": f"Bearer {access_token}",
                                    "Accept": "application/json"})
        if reply.status != 200:
            raise UpstreamError(f"userinfo endpoint answered HTTP {reply.status}")
        if reply.media_type == "application/jwt":
            raise UpstreamError("userinfo answered a signed or encrypted JWT (application/jwt), "
                                "which is not supported; configure the IdP to answer JSON")
        info = reply.json_object("userinfo endpoint")
        if info.get("sub") != sub:
            raise UpstreamError("userinfo sub does not equal the ID token sub")
        return info


def _same_issuer(config: OIDCUpstreamConfig, metadata: ProviderMetadata) -> None:
    if metadata.issuer != config.issuer:
        raise UpstreamError("provider metadata belongs to another issuer than the config")


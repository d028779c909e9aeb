"""adapters.oidc_upstream: tessera as an OIDC relying party to a tenant's enterprise IdP.

The IdP is outside our machine, so it is played by an ``httpx.MockTransport``; its keys are
real (generated here) and every token it issues carries a real signature.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, RSAKey

from adapters.clock import FrozenClock
from adapters.jose import b64url, import_public_jwk
from adapters.oidc_checks import forbidden_alg
from adapters.oidc_upstream import (
    ASSERTION_TYPE,
    LoginStart,
    OIDCUpstream,
    OIDCUpstreamConfig,
    ProviderMetadata,
    UpstreamError,
    UpstreamIdentity,
    s256_challenge,
)

ISSUER = "https://login.idp.example/tenant-a/v2.0"
CLIENT_ID = "tessera-client"
SECRET = "s3cret:with/odd+chars é"
REDIRECT = "https://tessera.example/t/acme/upstream/callback?x=1"
NOW = 1_760_000_000
JWKS_URI = "https://login.idp.example/tenant-a/keys"
TOKEN_URL = "https://login.idp.example/tenant-a/token"
CODE = "code-NEVER-in-messages"

RSA = RSAKey.generate_key(2048, parameters={"kid": "rsa1"})
EC = ECKey.generate_key("P-256", parameters={"kid": "ec1"})
IMPOSTOR = RSAKey.generate_key(2048, parameters={"kid": "rsa1"})  # same kid, another key
CLIENT_KEY = ECKey.generate_key("P-256", parameters={"kid": "client-key"})


def public(key: Key) -> Key:
    return import_public_jwk(key.as_dict(private=False))


class DictKeys:
    """A KeySource over a dict of public keys; an unknown kid raises like RemoteKeys does."""

    def __init__(self, keys: Mapping[str, Key], later: Mapping[str, Key] | None = None) -> None:
        self.keys = dict(keys)
        self.later = dict(later or {})  # published only after the first miss (rotation)
        self.calls: list[tuple[str, str | None, str]] = []

    async def key(self, jwks_uri: str, kid: str | None, alg: str) -> Key:
        self.calls.append((jwks_uri, kid, alg))
        if kid not in self.keys:
            self.keys.update(self.later)  # the IdP rotated: a later lookup will find it
            raise LookupError(f"no key with kid {kid} at {jwks_uri} (refetch throttled)")
        return self.keys[kid]


class FakeIdP:
    """Discovery, token and userinfo endpoints; records what it received."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {
            "issuer": ISSUER,
            "authorization_endpoint": "https://login.idp.example/tenant-a/authorize?p=signin",
            "token_endpoint": TOKEN_URL,
            "jwks_uri": JWKS_URI,
            "userinfo_endpoint": "https://login.idp.example/tenant-a/userinfo",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        }
        self.nonce = ""
        self.overrides: dict[str, Any] = {}  # None deletes the claim
        self.header: dict[str, Any] = {"alg": "RS256", "kid": "rsa1"}
        self.sign_key: Key = RSA
        self.raw_id_token: str | None = None
        self.token_response: tuple[int, dict[str, Any]] | None = None
        self.userinfo: dict[str, Any] = {"sub": "user-1", "email": "ada@example.com",
                                         "name": "Ada", "acr": "from-userinfo",
                                         "azp": "someone", "sid": "s-1"}
        self.userinfo_type = "application/json"
        self.requests: list[httpx.Request] = []

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def form(self) -> dict[str, str]:
        token_requests = [r for r in self.requests if r.url.path.endswith("/token")]
        assert len(token_requests) == 1
        return dict(parse_qsl(token_requests[0].content.decode()))

    def id_token(self) -> str:
        if self.raw_id_token is not None:
            return self.raw_id_token
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": CLIENT_ID, "sub": "user-1", "nonce": self.nonce,
            "iat": NOW - 5, "exp": NOW + 600, "auth_time": NOW - 30, "acr": "mfa",
            "amr": ["pwd", "otp"], "email": "ada@corp.example",
        }
        for name, value in self.overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(self.header, claims, self.sign_key, algorithms=[self.header["alg"]])

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json=self.doc)
        if path.endswith("/token"):
            if self.token_response is not None:
                status, body = self.token_response
                return httpx.Response(status, json=body)
            return httpx.Response(200, json={"access_token": "AT-secret", "token_type": "Bearer",
                                             "expires_in": 3600, "id_token": self.id_token()})
        if path.endswith("/userinfo"):
            return httpx.Response(200, content=json.dumps(self.userinfo).encode(),
                                  headers={"content-type": self.userinfo_type})
        return httpx.Response(404)


def config(**kw: Any) -> OIDCUpstreamConfig:
    kw.setdefault("client_auth", "client_secret_basic")
    if kw["client_auth"] != "private_key_jwt":
        kw.setdefault("client_secret", SECRET)
    kw.setdefault("client_id", CLIENT_ID)
    return OIDCUpstreamConfig(issuer=kw.pop("issuer", ISSUER), **kw)


def upstream(idp: FakeIdP, keys: DictKeys | None = None, **kw: Any) -> OIDCUpstream:
    http = httpx.AsyncClient(transport=httpx.MockTransport(idp.handler))
    keys = keys or DictKeys({"rsa1": public(RSA), "ec1": public(EC)})
    return OIDCUpstream(http, keys, kw.pop("clock", FrozenClock(NOW)), **kw)


async def login(
    idp: FakeIdP,
    cfg: OIDCUpstreamConfig | None = None,
    *,
    callback: Mapping[str, str | None] | None = None,
    signer: Any = None,
    up: OIDCUpstream | None = None,
) -> UpstreamIdentity:
    """The whole round trip: discovery, begin, the IdP's redirect back, finish."""
    cfg = cfg or config()
    up = up or upstream(idp)
    meta = await up.metadata(cfg)
    start = up.begin(cfg, meta, REDIRECT)
    idp.nonce = start.nonce
    params = {"code": CODE, "state": start.state}
    for name, value in (callback or {}).items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return await up.finish(cfg, meta, REDIRECT, callback_params=params,
                           expected_state=start.state, nonce=start.nonce,
                           code_verifier=start.code_verifier, signer=signer)


async def refused(idp: FakeIdP, match: str, **kw: Any) -> UpstreamError:
    with pytest.raises(UpstreamError, match=match) as info:
        await login(idp, **kw)
    message = str(info.value)
    assert CODE not in message and "AT-secret" not in message and SECRET not in message
    return info.value


# --- discovery -------------------------------------------------------------------------------


async def test_discovery_reads_the_document() -> None:
    idp = FakeIdP()
    meta = await upstream(idp).metadata(config())
    assert meta == ProviderMetadata(
        issuer=ISSUER, authorization_endpoint=idp.doc["authorization_endpoint"],
        token_endpoint=TOKEN_URL, jwks_uri=JWKS_URI, userinfo_endpoint=idp.doc["userinfo_endpoint"],
        id_token_signing_alg_values_supported=("RS256", "ES256"))
    assert [str(r.url) for r in idp.requests] == [
        "https://login.idp.example/tenant-a/v2.0/.well-known/openid-configuration"]


async def test_discovery_issuer_mismatch_refused() -> None:
    idp = FakeIdP()
    idp.doc["issuer"] = ISSUER + "/"
    with pytest.raises(UpstreamError, match="is not the configured issuer"):
        await upstream(idp).metadata(config())


async def test_discovery_http_endpoint_refused() -> None:
    idp = FakeIdP()
    idp.doc["token_endpoint"] = "http://login.idp.example/tenant-a/token"
    with pytest.raises(UpstreamError, match="token_endpoint must be an https URL"):
        await upstream(idp).metadata(config())


async def test_discovery_http_refused_off_loopback_even_when_loopback_allowed() -> None:
    idp = FakeIdP()
    idp.doc["token_endpoint"] = "http://login.idp.example/tenant-a/token"
    with pytest.raises(UpstreamError, match=r"must be an https \(or http on loopback\) URL"):
        await upstream(idp, allow_http_loopback=True).metadata(config())


async def test_discovery_http_on_loopback_when_allowed() -> None:
    idp = FakeIdP()
    base = "http://127.0.0.1:8081/idp"
    idp.doc.update(issuer=base, authorization_endpoint=base + "/authorize",
                   token_endpoint=base + "/token", jwks_uri=base + "/keys",
                   userinfo_endpoint="http://localhost:8081/idp/userinfo")
    meta = await upstream(idp, allow_http_loopback=True).metadata(config(issuer=base))
    assert meta.token_endpoint == base + "/token"
    with pytest.raises(UpstreamError, match="discovery URL must be an https URL"):
        await upstream(idp).metadata(config(issuer=base))


async def test_discovery_cached_for_ttl() -> None:
    idp, clock = FakeIdP(), FrozenClock(NOW)
    up = upstream(idp, clock=clock, discovery_ttl=100)
    first = await up.metadata(config())
    clock.advance(99)
    assert await up.metadata(config()) is first
    assert len(idp.requests) == 1
    clock.advance(2)
    await up.metadata(config())
    assert len(idp.requests) == 2


async def test_discovery_non_200_and_non_json_and_oversized_refused() -> None:
    for response, match in [
        (httpx.Response(302, headers={"location": "https://elsewhere.example/"}), "HTTP 302"),
        (httpx.Response(200, text="<html>"), "content type text/plain"),
        (httpx.Response(200, json={"pad": "x" * 300_000}), "more than 262144 bytes"),
    ]:
        http = httpx.AsyncClient(transport=httpx.MockTransport(lambda _r, resp=response: resp))
        up = OIDCUpstream(http, DictKeys({}), FrozenClock(NOW))
        with pytest.raises(UpstreamError, match=match):
            await up.metadata(config())


async def test_discovery_streamed_body_without_length_bounded() -> None:
    async def chunks() -> Any:
        yield b'{"pad": "'
        for _ in range(40):
            yield b"x" * 8192

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=chunks(), headers={"content-type": "application/json"})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    with pytest.raises(UpstreamError, match="more than 262144 bytes"):
        await OIDCUpstream(http, DictKeys({}), FrozenClock(NOW)).metadata(config())


async def test_explicit_endpoints_skip_discovery() -> None:
    idp = FakeIdP()
    cfg = config(authorization_endpoint="https://okta.example/oauth2/v1/authorize",
                 token_endpoint=TOKEN_URL, jwks_uri=JWKS_URI)
    meta = await upstream(idp).metadata(cfg)
    assert (meta.issuer, meta.token_endpoint, meta.userinfo_endpoint) == (ISSUER, TOKEN_URL, None)
    assert idp.requests == []
    identity = await login(idp, cfg)
    assert identity.subject == "user-1" and idp.paths() == ["/tenant-a/token"]


async def test_url_check_runs_before_every_fetch_and_can_refuse() -> None:
    idp, seen = FakeIdP(), []

    async def check(url: str) -> None:
        seen.append(url)
        if "userinfo" in url:
            raise ValueError("resolves to 10.0.0.7")

    with pytest.raises(UpstreamError, match=r"userinfo endpoint URL refused: resolves to 10\.0"):
        await login(idp, config(use_userinfo=True), up=upstream(idp, url_check=check))
    assert [urlsplit(u).path.rsplit("/", 1)[-1] for u in seen] == [
        "openid-configuration", "token", "userinfo"]
    assert not any(r.url.path.endswith("/userinfo") for r in idp.requests)


# --- begin -----------------------------------------------------------------------------------


def test_s256_challenge_rfc7636_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_begin_builds_the_authorization_request() -> None:
    idp = FakeIdP()
    up = upstream(idp)
    cfg = config(extra_auth_params=(("domain_hint", "corp.example"),))
    meta = await up.metadata(cfg)
    start = up.begin(cfg, meta, REDIRECT, login_hint="ada@corp.example", prompt="login")
    url = urlsplit(start.url)
    assert (url.scheme, url.netloc, url.path) == ("https", "login.idp.example",
                                                  "/tenant-a/authorize")
    assert url.query.startswith("p=signin&")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert all(len(v) == 1 for v in parse_qs(url.query).values())
    assert query == {
        "p": "signin", "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
        "scope": "openid email profile", "state": start.state, "nonce": start.nonce,
        "code_challenge": s256_challenge(start.code_verifier), "code_challenge_method": "S256",
        "login_hint": "ada@corp.example", "prompt": "login", "domain_hint": "corp.example",
    }
    assert "code_verifier" not in start.url and start.code_verifier not in repr(start)


async def test_begin_values_are_fresh_and_long() -> None:
    idp = FakeIdP()
    up = upstream(idp)
    meta = await up.metadata(config())
    starts: list[LoginStart] = [up.begin(config(), meta, REDIRECT) for _ in range(20)]
    for attr in ("state", "nonce", "code_verifier"):
        values = {getattr(s, attr) for s in starts}
        assert len(values) == 20
        assert min(len(v) for v in values) >= 43  # >= 256 bits of base64url
    assert all(len({s.state, s.nonce, s.code_verifier}) == 3 for s in starts)
    assert all(set(s.code_verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        and len(s.code_verifier) <= 128 for s in starts)


async def test_begin_refuses_a_parameter_the_endpoint_query_already_sets() -> None:
    idp = FakeIdP()
    idp.doc["authorization_endpoint"] += "&scope=openid"
    up = upstream(idp)
    with pytest.raises(UpstreamError, match="already sets \\['scope'\\]"):
        up.begin(config(), await up.metadata(config()), REDIRECT)


def test_forbidden_algs() -> None:
    assert all(map(forbidden_alg, ["none", "None", "HS256", "hs384", "HS512"]))
    assert not any(map(forbidden_alg, ["RS256", "PS256", "ES256", "EdDSA"]))


def test_config_refusals() -> None:
    for kw, match in [
        ({"client_id": ""}, "client_id is required"),
        ({"allowed_algs": ("RS256", "HS256")}, "'HS256' is not allowed"),
        ({"allowed_algs": ("none",)}, "'none' is not allowed"),
        ({"client_auth": "client_secret_post", "client_secret": None}, "needs a client_secret"),
        ({"client_auth": "client_secret_jwt"}, "client_auth must be one of"),
        ({"scopes": ("email",)}, "must include 'openid'"),
        ({"extra_auth_params": (("state", "x"),)}, "must not set \\['state'\\]"),
        ({"authorization_endpoint": "https://a.example/authorize"}, "need token_endpoint"),
    ]:
        with pytest.raises(ValueError, match=match):
            config(**kw)
    assert SECRET not in repr(config())


# --- finish: happy paths ---------------------------------------------------------------------


async def test_finish_client_secret_basic() -> None:
    idp = FakeIdP()
    identity = await login(idp)
    assert identity.subject == "user-1" and identity.issuer == ISSUER
    assert (identity.acr, identity.amr, identity.auth_time) == ("mfa", ("pwd", "otp"), NOW - 30)
    assert identity.claims == identity.id_token_claims
    assert identity.claims["email"] == "ada@corp.example"
    request = next(r for r in idp.requests if r.url.path.endswith("/token"))
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    user, _, password = base64.b64decode(encoded).decode().partition(":")
    assert scheme == "Basic" and password != SECRET  # form-urlencoded first (RFC 6749 §2.3.1)
    assert (unquote_plus(user), unquote_plus(password)) == (CLIENT_ID, SECRET)
    form = idp.form()
    assert form["grant_type"] == "authorization_code" and form["code"] == CODE
    assert form["redirect_uri"] == REDIRECT
    assert "client_secret" not in form and "client_assertion" not in form


async def test_finish_client_secret_post_sends_verifier_and_redirect_uri() -> None:
    idp = FakeIdP()
    up = upstream(idp)
    cfg = config(client_auth="client_secret_post")
    meta = await up.metadata(cfg)
    start = up.begin(cfg, meta, REDIRECT)
    idp.nonce = start.nonce
    await up.finish(cfg, meta, REDIRECT, callback_params={"code": CODE, "state": start.state},
                    expected_state=start.state, nonce=start.nonce,
                    code_verifier=start.code_verifier)
    request = next(r for r in idp.requests if r.url.path.endswith("/token"))
    assert "authorization" not in request.headers
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert idp.form() == {
        "grant_type": "authorization_code", "code": CODE, "redirect_uri": REDIRECT,
        "code_verifier": start.code_verifier, "client_id": CLIENT_ID, "client_secret": SECRET}
    challenge = parse_qs(urlsplit(start.url).query)["code_challenge"][0]
    assert s256_challenge(idp.form()["code_verifier"]) == challenge


async def test_finish_private_key_jwt() -> None:
    idp = FakeIdP()
    signed: list[dict[str, Any]] = []

    async def signer(header: dict[str, Any], claims: dict[str, Any]) -> str:
        signed.append(header)
        full = {**header, "alg": "ES256", "kid": CLIENT_KEY.kid}
        return jwt.encode(full, claims, CLIENT_KEY, algorithms=["ES256"])

    await login(idp, config(client_auth="private_key_jwt"), signer=signer)
    form = idp.form()
    assert form["client_assertion_type"] == ASSERTION_TYPE == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    assert form["client_id"] == CLIENT_ID and "client_secret" not in form
    token = jwt.decode(form["client_assertion"], public(CLIENT_KEY), algorithms=["ES256"])
    claims = token.claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == (CLIENT_ID, CLIENT_ID, TOKEN_URL)
    assert claims["iat"] == NOW and claims["exp"] == NOW + 60 and len(claims["jti"]) >= 22
    assert token.header["kid"] == "client-key" and signed == [{"typ": "JWT"}]


async def test_private_key_jwt_without_signer_refused() -> None:
    idp = FakeIdP()
    await refused(idp, "private_key_jwt needs a signer", cfg=config(client_auth="private_key_jwt"))
    assert not any(r.url.path.endswith("/token") for r in idp.requests)


async def test_es256_id_token_accepted() -> None:
    idp = FakeIdP()
    idp.header, idp.sign_key = {"alg": "ES256", "kid": "ec1"}, EC
    up = upstream(idp)
    assert (await login(idp, up=up)).subject == "user-1"
    assert up._keys.calls == [(JWKS_URI, "ec1", "ES256")]  # type: ignore[attr-defined]


async def test_multiple_audiences_with_azp_accepted() -> None:
    idp = FakeIdP()
    idp.overrides = {"aud": [CLIENT_ID, "other-api"], "azp": CLIENT_ID}
    assert (await login(idp)).subject == "user-1"


async def test_userinfo_merged_under_id_token_claims() -> None:
    idp = FakeIdP()
    identity = await login(idp, config(use_userinfo=True))
    request = next(r for r in idp.requests if r.url.path.endswith("/userinfo"))
    assert request.method == "GET" and request.headers["authorization"] == "Bearer AT-secret"
    assert identity.claims["name"] == "Ada"  # only in userinfo
    assert identity.claims["email"] == "ada@corp.example"  # the ID token wins
    assert identity.claims["acr"] == identity.acr == "mfa"
    assert "name" not in identity.id_token_claims
    assert "azp" not in identity.claims and "sid" not in identity.claims  # protocol claims


async def test_key_rotation_surfaces_a_clear_error_then_recovers() -> None:
    idp = FakeIdP()
    rotated = RSAKey.generate_key(2048, parameters={"kid": "rsa2"})
    idp.header, idp.sign_key = {"alg": "RS256", "kid": "rsa2"}, rotated
    keys = DictKeys({"rsa1": public(RSA)}, later={"rsa2": public(rotated)})
    up = upstream(idp, keys)
    error = await refused(idp, "no IdP key for the ID token \\(kid rsa2, RS256\\)", up=up)
    assert isinstance(error.__cause__, LookupError)
    assert (await login(idp, up=up)).subject == "user-1"  # the next login finds the new key


# --- finish: refusals ------------------------------------------------------------------------


async def test_state_mismatch() -> None:
    idp = FakeIdP()
    await refused(idp, "state does not match", callback={"state": "forged"})
    assert idp.paths() == ["/tenant-a/v2.0/.well-known/openid-configuration"]


async def test_missing_state() -> None:
    idp = FakeIdP()
    await refused(idp, "state does not match", callback={"state": None})


async def test_error_callback() -> None:
    idp = FakeIdP()
    error = await refused(idp, "IdP refused the login: access_denied \\(user said no\\?\\)",
                          callback={"error": "access_denied", "error_description": "user said no\n",
                                    "code": None})
    assert "\n" not in str(error)


async def test_error_callback_sanitised_and_truncated() -> None:
    idp = FakeIdP()
    error = await refused(idp, r"IdP refused the login: \?\[2Jx",
                          callback={"error": "\x1b[2J" + "x" * 500})
    assert len(str(error)) < 120 and "\x1b" not in str(error)


async def test_callback_iss_mismatch() -> None:
    idp = FakeIdP()
    await refused(idp, "callback iss https://evil.example is not", callback={
        "iss": "https://evil.example"})
    assert not any(r.url.path.endswith("/token") for r in idp.requests)


async def test_callback_iss_required_when_announced() -> None:
    idp = FakeIdP()
    idp.doc["authorization_response_iss_parameter_supported"] = True
    await refused(idp, "no iss although the IdP announces it")
    assert (await login(idp, callback={"iss": ISSUER})).subject == "user-1"


async def test_missing_code() -> None:
    await refused(FakeIdP(), "callback has no code", callback={"code": None})


def _unsigned(alg: str, claims: dict[str, Any]) -> str:
    head = b64url(json.dumps({"alg": alg, "kid": "rsa1"}).encode())
    return f"{head}.{b64url(json.dumps(claims).encode())}."


async def test_alg_none() -> None:
    idp = FakeIdP()
    idp.raw_id_token = _unsigned("none", {"iss": ISSUER, "aud": CLIENT_ID, "sub": "user-1"})
    await refused(idp, "alg none is not allowed")


async def test_hs256_token() -> None:
    idp = FakeIdP()
    idp.header = {"alg": "HS256", "kid": "rsa1"}
    idp.sign_key = OctKey.import_key(SECRET.encode().ljust(32, b"!"))  # the client secret
    await refused(idp, "alg HS256 is not allowed")


async def test_alg_not_in_allow_list() -> None:
    idp = FakeIdP()  # RS256, a fine algorithm, but this tenant only accepts ES256
    await refused(idp, "alg RS256 is not allowed", cfg=config(allowed_algs=("ES256",)))


async def test_signature_by_another_key() -> None:
    idp = FakeIdP()
    idp.sign_key = IMPOSTOR
    await refused(idp, "signature does not verify")


async def test_wrong_iss() -> None:
    idp = FakeIdP()
    idp.overrides = {"iss": "https://login.idp.example/tenant-b/v2.0"}
    await refused(idp, "ID token iss https://login.idp.example/tenant-b/v2.0 is not")


async def test_wrong_aud() -> None:
    idp = FakeIdP()
    idp.overrides = {"aud": "someone-else"}
    await refused(idp, "aud does not name this client")


async def test_multiple_aud_without_azp() -> None:
    idp = FakeIdP()
    idp.overrides = {"aud": [CLIENT_ID, "other-api"]}
    await refused(idp, "several audiences but no azp")


async def test_azp_mismatch() -> None:
    idp = FakeIdP()
    idp.overrides = {"azp": "other-client"}
    await refused(idp, "azp other-client is not this client")


async def test_expired() -> None:
    idp = FakeIdP()
    idp.overrides = {"iat": NOW - 300, "exp": NOW - 61}
    await refused(idp, "token expired")


async def test_iat_in_future() -> None:
    idp = FakeIdP()
    idp.overrides = {"iat": NOW + 61, "exp": NOW + 900}
    await refused(idp, "iat is in the future")


async def test_iat_too_old() -> None:
    idp = FakeIdP()
    idp.overrides = {"iat": NOW - 661, "exp": NOW + 600}
    await refused(idp, "issued too long ago")


async def test_missing_iat() -> None:
    idp = FakeIdP()
    idp.overrides = {"iat": None}
    await refused(idp, "ID token has no iat")


async def test_nonce_mismatch() -> None:
    idp = FakeIdP()
    idp.overrides = {"nonce": "nonce-of-another-login"}
    await refused(idp, "nonce does not match this login")


async def test_missing_nonce() -> None:
    idp = FakeIdP()
    idp.overrides = {"nonce": None}
    await refused(idp, "ID token has no nonce")


async def test_empty_sub() -> None:
    idp = FakeIdP()
    idp.overrides = {"sub": ""}
    await refused(idp, "sub is missing")


async def test_token_endpoint_400() -> None:
    idp = FakeIdP()
    idp.token_response = (400, {"error": "invalid_grant",
                                "error_description": "AADSTS70008: code expired"})
    await refused(idp, "token endpoint answered HTTP 400: invalid_grant \\(AADSTS70008: code ")


async def test_missing_id_token() -> None:
    idp = FakeIdP()
    idp.token_response = (200, {"access_token": "AT-secret", "token_type": "Bearer"})
    await refused(idp, "token response has no id_token")


async def test_userinfo_sub_mismatch() -> None:
    idp = FakeIdP()
    idp.userinfo["sub"] = "user-2"
    await refused(idp, "userinfo sub does not equal the ID token sub",
                  cfg=config(use_userinfo=True))


async def test_userinfo_jwt_refused() -> None:
    idp = FakeIdP()
    idp.userinfo_type = "application/jwt"
    await refused(idp, "application/jwt.*not supported", cfg=config(use_userinfo=True))


async def test_metadata_of_another_issuer_refused() -> None:
    idp = FakeIdP()
    up = upstream(idp)
    meta = await up.metadata(config())
    other = config(issuer="https://login.idp.example/tenant-b/v2.0")
    with pytest.raises(UpstreamError, match="another issuer"):
        up.begin(other, meta, REDIRECT)


@pytest.mark.parametrize(("body", "why"), [
    (b"[" * 100_000, "nested deeper"),
    (b'{"issuer": "https://idp.example", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "nested deeper"),
    (b'{"issuer": NaN}', "NaN"),
    (b'{"expires_in": 1e400}', "out of range"),
    (b'{"issuer": "a", "issuer": "b"}', "duplicate"),
    (b'{"sub": "\\udc00"}', "surrogate"),
    (b'{"sub": "caf\xe9"}', "UTF-8"),
    (b'["not", "an", "object"]', "not an object"),
])
def test_upstream_json_is_read_by_the_bounded_reader(body: bytes, why: str) -> None:
    from adapters.oidc_discovery import Reply, UpstreamError

    with pytest.raises(UpstreamError, match=why):
        Reply(200, "application/json", body).json_object("the userinfo endpoint")

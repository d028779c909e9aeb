"""Client authentication (RFC 6749 §2.3, RFC 7523 §2.2 client assertions).

Methods: ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt``. A request may use
exactly one; the client must use the one it registered. A client assertion's ``jti`` is
returned as a ``Claim`` so the caller records it with the request's other one-time values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from urllib.parse import unquote

from joserfc.jwk import Key
from starlette.requests import Request

from adapters import jose
from adapters.errors import InvalidClient, InvalidRequest
from broker.forms import Form
from broker.runtime import Broker, TenantView
from tenants.journal import Claim
from tenants.models import Client

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX_LIFETIME = 600
LEEWAY = 30


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    method: str
    claims: tuple[Claim, ...] = ()


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        raw_id, raw_secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidClient("malformed Basic credentials", headers=_basic_challenge()) from exc
    return unquote(raw_id), unquote(raw_secret)


def _basic_challenge() -> dict[str, str]:
    return {"WWW-Authenticate": 'Basic realm="tessera"'}


async def authenticate(
    broker: Broker, tenant: TenantView, request: Request, form: Form, audiences: set[str]
) -> AuthenticatedClient:
    basic = _basic(request)
    used = [
        name
        for name, present in (
            ("client_secret_basic", basic is not None),
            ("client_secret_post", "client_secret" in form),
            ("private_key_jwt", "client_assertion" in form or "client_assertion_type" in form),
        )
        if present
    ]
    if len(used) > 1:
        raise InvalidRequest("use exactly one client authentication method")
    if not used:
        raise InvalidClient("client authentication required", headers=_basic_challenge())
    method = used[0]
    if basic is not None:
        client_id, secret = basic
        if form.get("client_id") not in (None, client_id):
            raise InvalidRequest("client_id does not match the authenticated client")
    elif method == "client_secret_post":
        client_id, secret = form.require("client_id"), form.require("client_secret")
    else:
        return await _private_key_jwt(broker, tenant, form, audiences)
    client = await _active_client(broker, tenant, client_id, method)
    if not broker.hasher.verify(secret, client.secret_hash):
        raise InvalidClient("client authentication failed", headers=_challenge_for(method))
    return AuthenticatedClient(client, method)


def _challenge_for(method: str) -> dict[str, str]:
    return _basic_challenge() if method == "client_secret_basic" else {}


async def _active_client(
    broker: Broker, tenant: TenantView, client_id: str, method: str
) -> Client:
    client = await broker.client(tenant.id, client_id)
    if client is None or client.status != "active" or client.auth_method != method:
        raise InvalidClient("client authentication failed", headers=_challenge_for(method))
    return client


async def _private_key_jwt(
    broker: Broker, tenant: TenantView, form: Form, audiences: set[str]
) -> AuthenticatedClient:
    if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
        raise InvalidClient(f"client_assertion_type must be {JWT_BEARER_ASSERTION}")
    assertion = form.require("client_assertion")
    try:
        claimed = json.loads(jose.b64url_decode(assertion.split(".")[1]))
    except (IndexError, ValueError) as exc:
        raise InvalidClient("malformed client assertion") from exc
    client_id = claimed.get("sub") if isinstance(claimed, dict) else None
    if not isinstance(client_id, str) or form.get("client_id") not in (None, client_id):
        raise InvalidClient("client assertion sub must be the client_id")
    client = await _active_client(broker, tenant, client_id, "private_key_jwt")
    keys = (client.jwks or {}).get("keys", [])

    def key_for(header: dict[str, object]) -> Key | None:
        kid = header.get("kid")
        for jwk in keys:
            if kid is None or jwk.get("kid") == kid:
                try:
                    return jose.import_public_jwk(jwk)
                except jose.JWTError:
                    return None
        return None

    try:
        verified = jose.verify_jws(assertion, key_for)
        claims = verified.claims
        jose.check_times(claims, broker.clock.now(), leeway=LEEWAY)
    except jose.JWTError as exc:
        raise InvalidClient(f"client assertion refused: {exc}") from exc
    now = broker.clock.now()
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise InvalidClient("client assertion iss and sub must be the client_id")
    if not any(jose.audience_matches(claims, aud) for aud in audiences):
        raise InvalidClient("client assertion aud must name this server")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidClient("client assertion needs a jti")
    exp = float(claims["exp"])
    if exp - now > ASSERTION_MAX_LIFETIME:
        raise InvalidClient("client assertion lives too long")
    key = hashlib.sha256(f"client_assertion|{client_id}|{jti}".encode()).hexdigest()
    return AuthenticatedClient(
        client, "private_key_jwt", (Claim(key, exp + LEEWAY, kind="client_assertion"),)
    )

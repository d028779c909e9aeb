"""Client authentication (RFC 6749 §2.3, RFC 7523 §2.2 client assertions).

Methods: ``client_secret_basic``, ``client_secret_post``, ``private_key_jwt``, ``none``
for public clients (only ``client_id`` in the body; RFC 6749 §2.1), and the mutual-TLS ones of
RFC 8705 §2, ``tls_client_auth`` and ``self_signed_tls_client_auth`` (only ``client_id`` in
the body too; the TLS client certificate, see ``broker.client_cert``). A request may use exactly
one, and the client must use the one it registered, except that a client with a secret may
send it either way (``client_secret_basic`` or ``client_secret_post``: the SDKs choose, and the
secret is the same credential). Reading what was presented
(``presented_credentials``) is pure and comes first, so the endpoint can fetch the tenant and
the client in one database read; checking it (``verify_client``) needs no I/O at all. A client
assertion's ``jti`` comes back as a ``Claim`` that the endpoint records together with the
request's other one-time values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from joserfc.jwk import Key
from starlette.requests import Request

from adapters import jose, mtls
from adapters.errors import InvalidClient, InvalidRequest
from broker.client_cert import client_certificate
from broker.forms import Form
from broker.runtime import Broker, ClientView
from tenants.journal import Claim

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX_LIFETIME = 3600  # Authlib signs for an hour by default; Okta allows one hour
LEEWAY = 30
BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="tessera"'}
MTLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
SECRET_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class Credentials:
    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None
    certificate: x509.Certificate | None = None  # with "none": maybe an mTLS client


@dataclass(frozen=True)
class AuthenticatedClient:
    client: ClientView
    method: str
    claims: tuple[Claim, ...] = ()


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if not header or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        raw_id, raw_secret = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidClient("malformed Basic credentials", headers=BASIC_CHALLENGE) from exc
    return unquote(raw_id), unquote(raw_secret)


def presented_credentials(request: Request, form: Form) -> Credentials:
    """What the request presents, without judging it yet."""
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
        client_id = form.get("client_id")
        if client_id is None:
            raise InvalidClient("client authentication required", headers=BASIC_CHALLENGE)
        return Credentials("none", client_id, certificate=client_certificate(request))
    method = used[0]
    if basic is not None:
        if form.get("client_id") not in (None, basic[0]):
            raise InvalidRequest("client_id does not match the authenticated client")
        return Credentials(method, basic[0], secret=basic[1])
    if method == "client_secret_post":
        return Credentials(method, form.require("client_id"), secret=form.require("client_secret"))
    if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
        raise InvalidClient(f"client_assertion_type must be {JWT_BEARER_ASSERTION}")
    assertion = form.require("client_assertion")
    try:
        claimed = jose.unverified_claims(assertion)
    except jose.JWTError as exc:
        raise InvalidClient(f"malformed client assertion: {exc}") from None
    client_id = claimed.get("sub")
    if not isinstance(client_id, str) or form.get("client_id") not in (None, client_id):
        raise InvalidClient("client assertion sub must be the client_id")
    return Credentials(method, client_id, assertion=assertion)


def verify_client(
    broker: Broker, client: ClientView | None, creds: Credentials, audiences: Collection[str]
) -> AuthenticatedClient:
    """Judge the credentials against the registered client (no I/O)."""
    challenge = BASIC_CHALLENGE if creds.method == "client_secret_basic" else {}
    if client is not None and not client.live(broker.clock.now()):
        client = None  # suspended, retired, disabled or expired: as if unknown
    if (client is not None and creds.method == "none"
            and client.auth_method in MTLS_METHODS):
        _check_certificate(broker, client, creds.certificate)
        return AuthenticatedClient(client, client.auth_method)
    if client is None or not _registered_method(client.auth_method, creds.method):
        raise InvalidClient("client authentication failed", headers=challenge)
    if creds.method == "none":
        return AuthenticatedClient(client, creds.method)
    if creds.method != "private_key_jwt":
        if creds.secret is None or not _secret_matches(broker, client, creds.secret):
            raise InvalidClient("client authentication failed", headers=challenge)
        return AuthenticatedClient(client, creds.method)
    assert creds.assertion is not None
    return AuthenticatedClient(
        client, creds.method, (_check_assertion(broker, client, creds.assertion, audiences),)
    )


def _registered_method(registered: str, used: str) -> bool:
    return registered == used or (registered in SECRET_METHODS and used in SECRET_METHODS)


def _secret_matches(broker: Broker, client: ClientView, secret: str) -> bool:
    """The current secret, or the rotated-out one inside its overlap window."""
    if broker.hasher.verify(secret, client.secret_hash):
        return True
    until = client.previous_secret_valid_until
    return until is not None and broker.clock.now() < until and broker.hasher.verify(
        secret, client.previous_secret_hash)


def _check_certificate(
    broker: Broker, client: ClientView, cert: x509.Certificate | None
) -> None:
    """RFC 8705 §2.1.2 (the registered subject DN, SAN URI or SAN DNS name, on a certificate
    whose chain the TLS terminator verified) or §2.2.2 (a certificate in the client's JWKS
    ``x5c``). A self-issued certificate never passes ``tls_client_auth``: only a CA's word
    counts there, whatever else sits in the trust bundle."""
    if cert is None:
        raise InvalidClient("this client authenticates with a TLS client certificate")
    try:
        mtls.check_validity(cert, broker.clock.now(), leeway=LEEWAY)
    except mtls.CertificateError as exc:
        raise InvalidClient(f"client certificate refused: {exc}") from exc
    if client.auth_method == "self_signed_tls_client_auth":
        if not mtls.matches_x5c(cert, client.jwks):
            raise InvalidClient("client certificate is not one the client registered")
        return
    if mtls.is_self_issued(cert) or not _registered_name_matches(client, cert):
        raise InvalidClient("client certificate does not match the client's registration")


def _registered_name_matches(client: ClientView, cert: x509.Certificate) -> bool:
    if client.tls_client_auth_san_uri:
        uri = client.tls_client_auth_san_uri
        if uri.startswith("spiffe://"):  # a SPIFFE ID: the X.509-SVID rules apply
            return mtls.spiffe_id(cert) == uri
        return uri in mtls.san_uris(cert)
    if client.tls_client_auth_san_dns:
        return mtls.dns_matches(client.tls_client_auth_san_dns, cert)
    if client.tls_client_auth_subject_dn:
        return mtls.dn_matches(client.tls_client_auth_subject_dn, cert)
    return False


def _check_assertion(
    broker: Broker, client: ClientView, assertion: str, audiences: Collection[str]
) -> Claim:
    keys: list[dict[str, Any]] = list((client.jwks or {}).get("keys", []))

    def key_for(header: dict[str, Any]) -> Key | None:
        kid = header.get("kid")
        for jwk in keys:
            if kid is None or jwk.get("kid") == kid:
                try:
                    return jose.import_public_jwk(jwk)
                except jose.JWTError:
                    return None
        return None

    now = broker.clock.now()
    try:
        claims = jose.verify_jws(assertion, key_for).claims
        jose.check_times(claims, now, leeway=LEEWAY)
    except jose.JWTError as exc:
        raise InvalidClient(f"client assertion refused: {exc}") from exc
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("client assertion iss and sub must be the client_id")
    if not any(jose.audience_matches(claims, aud) for aud in audiences):
        raise InvalidClient("client assertion aud must name this server")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidClient("client assertion needs a jti")
    exp = float(claims["exp"])
    if exp - now > ASSERTION_MAX_LIFETIME:
        raise InvalidClient("client assertion lives too long")
    key = hashlib.sha256(f"client_assertion|{client.client_id}|{jti}".encode()).hexdigest()
    return Claim(key, exp + LEEWAY, kind="client_assertion")

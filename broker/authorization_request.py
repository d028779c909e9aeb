"""An authorization request (RFC 6749 §4.1.1, OAuth 2.1 §4.1.1, OpenID Connect Core §3.1.2.1,
RFC 7636, RFC 9396, RFC 9449 §10, RFC 8707), validated the same way at /authorize and at PAR.

Checks, in order (``validate``). The first two decide whether an error may be sent back to the
client at all: until the client and its redirect URI are known, errors are shown to the user
as a page (``Unredirectable``), never redirected (RFC 6749 §4.1.2.1).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from adapters import rar
from adapters.errors import (
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    OAuthError,
    RequestNotSupported,
    UnsupportedResponseType,
)
from broker.runtime import ClientView

OIDC_SCOPES = frozenset({"openid", "profile", "email", "groups", "offline_access"})
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_LOOPBACK = ("127.0.0.1", "::1")
MAX_PARAM = 2048


class Unredirectable(OAuthError):
    """The client or redirect URI cannot be trusted: show the error, do not redirect."""

    error = "invalid_request"
    status = 400

    def __init__(self, error: OAuthError) -> None:
        super().__init__(error.description)
        self.error = error.error  # type: ignore[misc]


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: tuple[str, ...]
    code_challenge: str
    state: str | None = None
    nonce: str | None = None
    prompt: tuple[str, ...] = ()
    login_hint: str | None = None
    idp: str | None = None
    max_age: int | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    dpop_jkt: str | None = None
    resource: tuple[str, ...] = field(default=())

    def payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_payload(cls, raw: Mapping[str, Any]) -> AuthorizationRequest:
        values = dict(raw)
        for name in ("scope", "prompt", "authorization_details", "resource"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)


Params = Mapping[str, str]
DetailTypes = Mapping[str, rar.DetailType]


def redirect_uri_matches(registered: tuple[str, ...], given: str) -> bool:
    """Exact string match; an http redirect to a loopback IP literal may vary only its port
    (RFC 8252 §7.3)."""
    if given in registered:
        return True
    got = urlsplit(given)
    if got.scheme != "http" or got.hostname not in _LOOPBACK or got.username or got.fragment:
        return False
    return any(
        (reg.scheme, reg.hostname, reg.path, reg.query) == ("http", got.hostname, got.path,
                                                            got.query) and not reg.username
        for reg in map(urlsplit, registered)
    )


def _check_client(client: ClientView | None) -> ClientView:
    if client is None or client.status != "active":
        raise Unredirectable(InvalidRequest("unknown or disabled client_id"))
    if not client.redirect_uris:
        raise Unredirectable(InvalidRequest("this client is not registered for the "
                                            "authorization code flow"))
    return client


def _check_redirect_uri(client: ClientView, params: Params) -> str:
    given = params.get("redirect_uri")
    if not given:
        raise Unredirectable(InvalidRequest("redirect_uri is required"))
    if not redirect_uri_matches(client.redirect_uris, given):
        raise Unredirectable(InvalidRequest("redirect_uri is not registered for this client"))
    return given


def _single(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > MAX_PARAM:
        raise InvalidRequest(f"{name} is too long")
    return value or None


def _check_response_type(params: Params) -> None:
    if params.get("request"):
        raise RequestNotSupported("request objects are not supported; use PAR")
    response_type = params.get("response_type")
    if response_type is None:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if params.get("response_mode") not in (None, "", "query"):
        raise InvalidRequest("only response_mode=query is supported")


def _check_pkce(params: Params) -> str:
    challenge = params.get("code_challenge")
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE, S256)")
    if params.get("code_challenge_method") != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge must be a base64url SHA-256 digest (43 chars)")
    return challenge


def _check_scope(client: ClientView, params: Params) -> tuple[str, ...]:
    raw = _single(params, "scope") or ""
    scope = tuple(dict.fromkeys(raw.split()))
    outside = [s for s in scope if s not in OIDC_SCOPES and s not in client.scopes]
    if outside:
        raise InvalidScope(f"scope not allowed for this client: {' '.join(outside)}")
    return scope


def _check_prompt(params: Params) -> tuple[str, ...]:
    prompt = tuple((_single(params, "prompt") or "").split())
    if any(p not in PROMPTS for p in prompt) or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequest("prompt must be none, or any of login, consent, select_account")
    return prompt


def _check_max_age(params: Params) -> int | None:
    raw = params.get("max_age")
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest("max_age must be a non-negative integer")
    return int(raw)


def _check_details(
    client: ClientView, params: Params, types: DetailTypes
) -> tuple[dict[str, Any], ...]:
    details = rar.parse(params.get("authorization_details"))
    if details:
        rar.validate(details, types, allowed=client.authorization_details_types)
    return details


def _check_resource(client: ClientView, resources: list[str],
                    registered: Collection[str]) -> tuple[str, ...]:
    """RFC 8707: each one an absolute URI, and an audience of the client or a resource server
    of the tenant that lets this client in (``registered``, read by the endpoint)."""
    for value in resources:
        parts = urlsplit(value)
        if not parts.scheme or parts.fragment or "#" in value:
            raise InvalidTarget("resource must be an absolute URI without a fragment")
        if value not in client.audiences and value not in registered:
            raise InvalidTarget("resource is not an audience of this client")
    return tuple(dict.fromkeys(resources))


def _check_dpop_jkt(params: Params) -> str | None:
    jkt = params.get("dpop_jkt")
    if jkt and not _CHALLENGE.match(jkt):
        raise InvalidRequest("dpop_jkt must be a base64url SHA-256 JWK thumbprint")
    return jkt or None


def validate(
    client: ClientView | None, params: Params, resources: list[str], types: DetailTypes,
    registered: Collection[str] = (),
) -> AuthorizationRequest:
    """The checks in their order (this body is the table); raises ``Unredirectable`` or a
    redirectable ``OAuthError``."""
    known = _check_client(client)
    redirect_uri = _check_redirect_uri(known, params)
    _check_response_type(params)
    return AuthorizationRequest(
        client_id=known.client_id,
        redirect_uri=redirect_uri,
        code_challenge=_check_pkce(params),
        scope=_check_scope(known, params),
        state=_single(params, "state"),
        nonce=_single(params, "nonce"),
        prompt=_check_prompt(params),
        login_hint=_single(params, "login_hint"),
        idp=_single(params, "idp"),
        max_age=_check_max_age(params),
        authorization_details=_check_details(known, params, types),
        dpop_jkt=_check_dpop_jkt(params),
        resource=_check_resource(known, resources, registered),
    )


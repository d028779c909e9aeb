"""The IdP side of tessera's upstream login: provider metadata and bounded HTTP to the IdP.

Specs: OpenID Connect Discovery 1.0 (§3 metadata, §4 ``/.well-known/openid-configuration``,
§4.3 the ``issuer`` must equal the one asked for), RFC 9207 (``iss`` in authorization responses).
Used by ``adapters.oidc_upstream``; API::

    UpstreamError                         every refusal; the message says why, never a secret
    ProviderMetadata.from_document(doc, expected_issuer, *, allow_http_loopback=False)
    check_endpoint(url, what, *, allow_http_loopback) -> url      https only (http on loopback
                                                                  when allowed); no userinfo,
                                                                  no fragment
    discovery_url(issuer) -> str
    await discover(http, issuer, *, url_check, allow_http_loopback, time_limit)
        -> ProviderMetadata
    await send(http, method, url, *, what, url_check, time_limit, headers, data=None) -> Reply

``send`` calls ``url_check`` (the caller's SSRF guard) first, never follows redirects, asks for
an unencoded body and reads at most ``MAX_BODY_BYTES``.
"""

from __future__ import annotations

import inspect
import ipaddress
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from adapters import json_reader

__all__ = ["MAX_BODY_BYTES", "ProviderMetadata", "Reply", "UpstreamError", "UrlCheck",
           "check_endpoint", "discover", "discovery_url", "send", "short"]

MAX_BODY_BYTES = 256 * 1024
UrlCheck = Callable[[str], Awaitable[None] | None]


class UpstreamError(Exception):
    """The upstream login cannot go on; the message says why and quotes no secret or token."""


def short(value: object, limit: int = 64) -> str:
    """``value`` made safe to put in a message or a log: printable ASCII, at most ``limit``."""
    text = "".join(c if " " <= c <= "~" else "?" for c in str(value))
    return text if len(text) <= limit else text[:limit] + "..."


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: object, what: str, *, allow_http_loopback: bool) -> str:
    """``url`` if it is an absolute https URL (or http on loopback, when allowed)."""
    if not isinstance(url, str) or not url:
        raise UpstreamError(f"{what} is missing or not a string")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise UpstreamError(f"{what} contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port
    except ValueError:
        raise UpstreamError(f"{what} is not a valid URL") from None
    if not host:
        raise UpstreamError(f"{what} has no host")
    if parts.username is not None or parts.password is not None:
        raise UpstreamError(f"{what} must not carry credentials")
    if "#" in url:
        raise UpstreamError(f"{what} must not have a fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_http_loopback and _is_loopback(host):
        return url
    allowed = "https (or http on loopback)" if allow_http_loopback else "https"
    raise UpstreamError(f"{what} must be an {allowed} URL, not {short(url, 120)}")


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the IdP's discovery document tessera uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    id_token_signing_alg_values_supported: tuple[str, ...] = ("RS256",)
    authorization_response_iss_parameter_supported: bool = False  # RFC 9207 §3

    @classmethod
    def from_document(
        cls, doc: Mapping[str, Any], expected_issuer: str, *, allow_http_loopback: bool = False
    ) -> ProviderMetadata:
        if not isinstance(doc, Mapping):
            raise UpstreamError("discovery document is not a JSON object")
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer != expected_issuer:
            raise UpstreamError(
                f"discovery issuer {short(issuer, 120)} is not the configured issuer "
                f"{short(expected_issuer, 120)}"
            )
        check_endpoint(issuer, "issuer", allow_http_loopback=allow_http_loopback)
        if urlsplit(issuer).query:
            raise UpstreamError("issuer must not have a query")
        endpoints = {
            name: check_endpoint(doc.get(name), name, allow_http_loopback=allow_http_loopback)
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        }
        userinfo = doc.get("userinfo_endpoint")
        if userinfo is not None:
            check_endpoint(userinfo, "userinfo_endpoint", allow_http_loopback=allow_http_loopback)
        algs = doc.get("id_token_signing_alg_values_supported", ["RS256"])
        if not isinstance(algs, list) or not algs or not all(isinstance(a, str) for a in algs):
            raise UpstreamError("id_token_signing_alg_values_supported is not a list of strings")
        iss_param = doc.get("authorization_response_iss_parameter_supported", False)
        if not isinstance(iss_param, bool):
            raise UpstreamError("authorization_response_iss_parameter_supported is not a boolean")
        return cls(
            issuer=issuer,
            userinfo_endpoint=userinfo,
            id_token_signing_alg_values_supported=tuple(algs),
            authorization_response_iss_parameter_supported=iss_param,
            **endpoints,
        )


@dataclass(frozen=True)
class Reply:
    status: int
    media_type: str  # lower case, without parameters
    body: bytes

    def json_object(self, what: str) -> dict[str, Any]:
        if self.media_type != "application/json" and not self.media_type.endswith("+json"):
            raise UpstreamError(
                f"{what} answered content type {short(self.media_type) or 'none'}, not JSON"
            )
        try:
            value = json_reader.loads(self.body, max_bytes=None)  # send() bounded it
        except json_reader.JSONInputError as exc:
            raise UpstreamError(f"{what} answered a body that is not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise UpstreamError(f"{what} answered JSON that is not an object")
        return value


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    what: str,
    url_check: UrlCheck | None,
    time_limit: float,
    headers: Mapping[str, str],
    data: Mapping[str, str] | None = None,
) -> Reply:
    """One request to the IdP: SSRF check first, no redirects, body read up to the limit."""
    if url_check is not None:
        try:
            pending = url_check(url)
            if inspect.isawaitable(pending):
                await pending
        except UpstreamError:
            raise
        except Exception as exc:
            raise UpstreamError(f"{what} URL refused: {short(exc, 200)}") from exc
    try:
        async with http.stream(
            method, url, headers={"Accept-Encoding": "identity", **headers}, data=data,
            timeout=time_limit, follow_redirects=False,
        ) as response:
            media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            declared = response.headers.get("content-length", "").strip()
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                raise UpstreamError(f"{what} answered more than {MAX_BODY_BYTES} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_BODY_BYTES:
                    raise UpstreamError(f"{what} answered more than {MAX_BODY_BYTES} bytes")
            return Reply(response.status_code, media, bytes(body))
    except httpx.TimeoutException:
        raise UpstreamError(f"{what} did not answer within {time_limit:g} s") from None
    except httpx.HTTPError as exc:
        raise UpstreamError(f"{what} request failed: {type(exc).__name__}") from None


def discovery_url(issuer: str) -> str:
    """OIDC Discovery §4.1: drop a terminating ``/``, append the well-known path."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


async def discover(
    http: httpx.AsyncClient,
    issuer: str,
    *,
    url_check: UrlCheck | None,
    allow_http_loopback: bool,
    time_limit: float,
) -> ProviderMetadata:
    url = check_endpoint(
        discovery_url(issuer), "discovery URL", allow_http_loopback=allow_http_loopback
    )
    reply = await send(
        http, "GET", url, what="discovery", url_check=url_check, time_limit=time_limit,
        headers={"Accept": "application/json"},
    )
    if reply.status != 200:
        raise UpstreamError(f"discovery at {short(url, 200)} answered HTTP {reply.status}")
    return ProviderMetadata.from_document(
        reply.json_object("discovery"), issuer, allow_http_loopback=allow_http_loopback
    )

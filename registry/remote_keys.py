"""Partner JWKS (RFC 7517 §5) fetched from a ``jwks_uri``, cached, and guarded against SSRF.

One error type; its message says why and never quotes a response body::

    RemoteKeyError
        unsafe URL (scheme, userinfo, fragment, host, resolved address, redirect hop),
        transport failure or timeout, bad response (status, type, size, encoding),
        bad document (not a JWKS, private or symmetric keys, too many keys),
        no usable key for (kid, alg)

Cache per URL: a document lives ``FetchPolicy.ttl`` seconds, or the response's
``Cache-Control: max-age`` clamped to [60 s, 3600 s]. An unknown ``kid`` triggers a refetch at
most once per ``min_refetch_interval`` (every fetch attempt counts). When a refetch after
expiry fails, the old keys are served for up to ``ttl`` more (with a warning) and failures are
retried at most once per ``min_refetch_interval``; after that the error is raised.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from adapters import json_reader
from adapters.clock import Clock
from adapters.jose import JWTError, import_public_jwk

__all__ = ["FetchPolicy", "RemoteKeyError", "RemoteKeys", "check_url"]

log = logging.getLogger(__name__)

Resolver = Callable[[str], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MIN_MAX_AGE = 60.0
MAX_MAX_AGE = 3600.0
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_JSON_TYPES = frozenset({"application/json", "application/jwk-set+json"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_REQUEST_HEADERS = {
    "Accept": "application/jwk-set+json, application/json",
    "Accept-Encoding": "identity",
}
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521", "EdDSA": "Ed25519",
           "Ed25519": "Ed25519"}
_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
SUPPORTED_ALGS = frozenset(_CURVES) | _RSA_ALGS


class RemoteKeyError(Exception):
    """A partner's keys could not be fetched, were unsafe to use, or hold no fitting key."""


@dataclass(frozen=True)
class FetchPolicy:
    allow_http_loopback: bool = False  # dev/tests: http://127.0.0.1, http://[::1], localhost
    max_bytes: int = 256 * 1024
    timeout: float = 5.0  # whole fetch, redirects and name resolution included
    ttl: float = 300.0  # without Cache-Control max-age; also the stale-while-error window
    min_refetch_interval: float = 30.0
    max_redirects: int = 3
    max_keys: int = 100


def _short(value: object, limit: int = 64) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _forbidden(ip: IPAddress, *, allow_loopback: bool) -> str | None:
    """Why ``ip`` may not be contacted, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _forbidden(ip.ipv4_mapped, allow_loopback=allow_loopback)
        embedded = [ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        for inner in embedded:
            if inner is not None and _forbidden(inner, allow_loopback=False):
                return "tunnelled non-public"
    if ip.is_loopback:
        return None if allow_loopback else "loopback"
    for kind in ("unspecified", "link_local", "multicast", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if not ip.is_global:
        return "non-global"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_localhost(host: str) -> bool:
    name = host.rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def check_url(url: str, *, allow_http_loopback: bool) -> None:
    """Refuse a URL tessera must not fetch keys from (syntax and literal addresses only)."""
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url):
        raise RemoteKeyError("URL is not a string or contains whitespace or control characters")
    if "#" in url:
        raise RemoteKeyError("URL must not carry a fragment")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise RemoteKeyError(f"malformed URL: {exc}") from None
    if parsed.userinfo:
        raise RemoteKeyError("URL must not carry userinfo")
    host = parsed.raw_host.decode("ascii", "replace").lower()
    if not host:
        raise RemoteKeyError("URL has no host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise RemoteKeyError("URL port out of range")
    ip = _ip_literal(host)
    loopback = ip.is_loopback if ip is not None else _is_localhost(host)
    if parsed.scheme == "http":
        if not (allow_http_loopback and loopback):
            raise RemoteKeyError("the URL must use https")
    elif parsed.scheme != "https":
        raise RemoteKeyError(f"scheme {_short(parsed.scheme)} refused: the URL must use https")
    if ip is not None:
        reason = _forbidden(ip, allow_loopback=allow_http_loopback)
        if reason:
            raise RemoteKeyError(f"host {host} is a {reason} address")
        return
    if not _HOSTNAME.fullmatch(host):
        raise RemoteKeyError(f"host {_short(host)} is not a valid DNS name")
    if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        raise RemoteKeyError(f"host {_short(host)} is an ambiguous numeric address")
    if loopback and not allow_http_loopback:
        raise RemoteKeyError(f"host {host} is a loopback name")


async def system_resolver(host: str) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class _PublishedKey:
    kid: str | None
    jwk: Mapping[str, Any]
    key: Key

    def usable_for(self, alg: str) -> bool:
        if "alg" in self.jwk and self.jwk["alg"] != alg:
            return False
        ops = self.jwk.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            return False
        if alg in _RSA_ALGS:
            return isinstance(self.key, RSAKey) and self.key.public_key.key_size >= MIN_RSA_BITS
        kind = OKPKey if alg in ("EdDSA", "Ed25519") else ECKey
        return isinstance(self.key, kind) and self.key.curve_name == _CURVES[alg]


@dataclass(frozen=True)
class _Entry:
    document: dict[str, Any]
    keys: tuple[_PublishedKey, ...]
    expires_at: float


@dataclass
class _UrlState:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    entry: _Entry | None = None
    last_attempt: float | None = None
    last_error: RemoteKeyError | None = None


def _parse_jwks(document: object, *, max_keys: int) -> tuple[_PublishedKey, ...]:
    """The signing keys of a JWKS; refuses the whole document when it is unsafe."""
    if not isinstance(document, dict):
        raise RemoteKeyError("JWKS must be a JSON object")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise RemoteKeyError("JWKS has no 'keys' list")
    if len(keys) > max_keys:
        raise RemoteKeyError(f"JWKS holds {len(keys)} keys; at most {max_keys} accepted")
    published: list[_PublishedKey] = []
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            raise RemoteKeyError(f"JWKS key #{index} is not an object")
        private = sorted(_PRIVATE_MEMBERS & jwk.keys())
        if private:
            raise RemoteKeyError(f"JWKS key #{index} publishes private members {private}")
        if jwk.get("kty") == "oct":
            raise RemoteKeyError(f"JWKS key #{index} is a symmetric (oct) key")
        use, kid = jwk.get("use"), jwk.get("kid")
        if (use is not None and use != "sig") or (kid is not None and not isinstance(kid, str)):
            continue
        try:
            key = import_public_jwk(jwk)
        except JWTError:
            continue  # RFC 7517 §5: ignore keys of unknown type or with unusable members
        published.append(_PublishedKey(kid, dict(jwk), key))
    return tuple(published)


def _max_age(headers: httpx.Headers) -> float | None:
    directives = [
        part.strip().lower()
        for value in headers.get_list("cache-control")
        for part in value.split(",")
    ]
    if "no-store" in directives or "no-cache" in directives:
        return MIN_MAX_AGE
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age" and value.strip().strip('"').isdigit():
            return min(max(float(value.strip().strip('"')), MIN_MAX_AGE), MAX_MAX_AGE)
    return None


class RemoteKeys:
    """Partner signing keys by ``jwks_uri``: fetched over guarded HTTP, cached per URL."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        clock: Clock,
        policy: FetchPolicy = FetchPolicy(),  # frozen, so one shared default is safe
        resolver: Resolver | None = None,
    ) -> None:
        self._http = http
        self._clock = clock
        self._policy = policy
        self._resolver: Resolver = resolver or system_resolver
        self._states: dict[str, _UrlState] = {}

    async def key(self, jwks_uri: str, kid: str | None, alg: str) -> Key:
        """The partner's key named ``kid`` (or its only key for ``alg``) usable for ``alg``."""
        if alg not in SUPPORTED_ALGS:
            raise RemoteKeyError(f"alg {_short(alg)} is not supported for partner keys")
        state = self._state(jwks_uri)
        entry = await self._current(state, jwks_uri)
        found = _select(entry, kid, alg)
        if found is not None:
            return found
        async with state.lock:
            if state.entry is not None and state.entry is not entry:  # refreshed meanwhile
                entry = state.entry
                found = _select(entry, kid, alg)
                if found is not None:
                    return found
            last = state.last_attempt
            since = float("inf") if last is None else self._clock.now() - last
            if since < self._policy.min_refetch_interval:
                raise RemoteKeyError(
                    f"no key {_wanted(kid, alg)} at {jwks_uri} (last fetch {since:.0f} s ago; "
                    f"refetched at most every {self._policy.min_refetch_interval:.0f} s)"
                )
            try:
                entry = await self._refresh(state, jwks_uri)
            except RemoteKeyError as exc:
                raise RemoteKeyError(f"no key {_wanted(kid, alg)}; refetch failed: {exc}") from exc
        found = _select(entry, kid, alg)
        if found is None:
            raise RemoteKeyError(f"no key {_wanted(kid, alg)} at {jwks_uri}")
        return found

    async def jwks(self, jwks_uri: str) -> dict[str, Any]:
        """The partner's JWKS document as published (a copy of the cached one)."""
        entry = await self._current(self._state(jwks_uri), jwks_uri)
        return copy.deepcopy(entry.document)

    def forget(self, jwks_uri: str) -> None:
        """Drop everything cached for ``jwks_uri``; the next use fetches afresh."""
        self._states.pop(jwks_uri, None)

    def _state(self, jwks_uri: str) -> _UrlState:
        return self._states.setdefault(jwks_uri, _UrlState())

    async def _current(self, state: _UrlState, url: str) -> _Entry:
        entry = state.entry
        if entry is not None and self._clock.now() < entry.expires_at:
            return entry
        async with state.lock:  # one fetch in flight per URL; waiters reuse its result
            entry, now = state.entry, self._clock.now()
            if entry is not None and now < entry.expires_at:
                return entry
            error = state.last_error
            backing_off = (
                error is not None
                and state.last_attempt is not None
                and now - state.last_attempt < self._policy.min_refetch_interval
            )
            if not backing_off:
                try:
                    return await self._refresh(state, url)
                except RemoteKeyError as exc:
                    error = exc
                    if entry is not None and now < entry.expires_at + self._policy.ttl:
                        log.warning("serving expired JWKS of %s for up to %.0f s: %s",
                                    url, entry.expires_at + self._policy.ttl - now, exc)
            if entry is not None and now < entry.expires_at + self._policy.ttl:
                return entry
            raise RemoteKeyError(f"JWKS unavailable: {error}") from error

    async def _refresh(self, state: _UrlState, url: str) -> _Entry:
        state.last_attempt = self._clock.now()
        try:
            document, max_age = await self._fetch(url)
            keys = _parse_jwks(document, max_keys=self._policy.max_keys)
        except RemoteKeyError as exc:
            state.last_error = exc
            raise
        lifetime = self._policy.ttl if max_age is None else max_age
        state.entry = _Entry(document, keys, self._clock.now() + lifetime)
        state.last_error = None
        return state.entry

    async def check_target(self, url: str) -> None:
        """Refuse a URL we must not fetch: its syntax, a literal address, and every address its
        host resolves to (for other fetchers of remote documents: OIDC discovery)."""
        check_url(url, allow_http_loopback=self._policy.allow_http_loopback)
        await self._check_resolved(url)

    async def fetch_document(self, url: str, *, media_types: frozenset[str],
                             max_bytes: int, max_redirects: int | None = None) -> bytes:
        """Any remote document (an IdP's SAML metadata) under the same guards as a JWKS;
        ``max_redirects`` lowers the policy's (0: the document must be at ``url`` itself)."""
        async def read(response: httpx.Response, current: str) -> tuple[bytes, float | None]:
            return await self._read_bytes(response, current, media_types, max_bytes), None

        try:
            async with asyncio.timeout(self._policy.timeout):
                body, _ = await self._follow(url, read, max_redirects)
                return body
        except (TimeoutError, httpx.TimeoutException):
            raise RemoteKeyError(
                f"fetching {url} took longer than {self._policy.timeout:g} s") from None

    async def _fetch(self, url: str) -> tuple[Any, float | None]:
        try:
            async with asyncio.timeout(self._policy.timeout):
                return await self._follow(url, self._read)
        except (TimeoutError, httpx.TimeoutException):
            raise RemoteKeyError(
                f"fetching {url} took longer than {self._policy.timeout:g} s"
            ) from None

    async def _follow(
        self, url: str,
        read: Callable[[httpx.Response, str], Awaitable[tuple[Any, float | None]]],
        max_redirects: int | None = None,
    ) -> tuple[Any, float | None]:
        current = url
        limit = self._policy.max_redirects
        if max_redirects is not None:
            limit = min(limit, max_redirects)
        for _hop in range(limit + 1):
            await self.check_target(current)
            try:
                async with self._http.stream(
                    "GET", current, headers=_REQUEST_HEADERS, auth=None,
                    follow_redirects=False, timeout=self._policy.timeout,
                ) as response:
                    if response.status_code not in _REDIRECTS:
                        return await read(response, current)
                    location = response.headers.get("location")
                    if not location:
                        raise RemoteKeyError(f"{current} redirected without a Location")
                    try:
                        current = str(httpx.URL(current).join(location))
                    except (httpx.InvalidURL, ValueError):
                        raise RemoteKeyError(f"{current} redirected to a malformed URL") from None
            except httpx.TimeoutException:
                raise
            except httpx.HTTPError as exc:
                raise RemoteKeyError(f"fetching {current} failed: {type(exc).__name__}") from None
        raise RemoteKeyError(f"{url} redirected more than {limit} times")

    async def _check_resolved(self, url: str) -> None:
        host = httpx.URL(url).raw_host.decode("ascii")
        if _ip_literal(host) is not None:
            return  # checked by check_url
        try:
            addresses = await self._resolver(host)
        except (OSError, UnicodeError):
            raise RemoteKeyError(f"cannot resolve {host}") from None
        if not addresses:
            raise RemoteKeyError(f"{host} resolves to no address")
        for address in addresses:
            ip = _ip_literal(address)
            reason = (
                "unparsable" if ip is None
                else _forbidden(ip, allow_loopback=self._policy.allow_http_loopback)
            )
            if reason:
                raise RemoteKeyError(f"{host} resolves to a {reason} address")

    async def _read(self, response: httpx.Response, url: str) -> tuple[Any, float | None]:
        body = await self._read_bytes(response, url, _JSON_TYPES, self._policy.max_bytes)
        try:
            document = json_reader.loads(body, max_bytes=None)  # _read_bytes bounded it
        except json_reader.JSONInputError as exc:
            raise RemoteKeyError(f"{url} answered a body that is not JSON ({exc})") from None
        return document, _max_age(response.headers)

    async def _read_bytes(self, response: httpx.Response, url: str,
                          media_types: frozenset[str], limit: int) -> bytes:
        if response.status_code != 200:
            raise RemoteKeyError(f"{url} answered HTTP {response.status_code}")
        media = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in media_types:
            what = "JSON" if media_types is _JSON_TYPES else ", ".join(sorted(media_types))
            raise RemoteKeyError(f"{url} answered content type {_short(media)}, not {what}")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            raise RemoteKeyError(f"{url} answered a {_short(encoding)}-encoded body")
        declared = response.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise RemoteKeyError(f"{url} answered a malformed Content-Length")
            if int(declared) > limit:
                raise RemoteKeyError(f"{url} answered more than {limit} bytes")
        body = bytearray()
        async for chunk in response.aiter_bytes():  # identity only, so these are the raw bytes
            body += chunk
            if len(body) > limit:
                raise RemoteKeyError(f"{url} answered more than {limit} bytes")
        return bytes(body)


def _wanted(kid: str | None, alg: str) -> str:
    return f"with kid {_short(kid)} for {alg}" if kid is not None else f"for {alg}"


def _select(entry: _Entry, kid: str | None, alg: str) -> Key | None:
    """The one key fitting (kid, alg); None when there is none (a refetch may help)."""
    if kid is not None:
        named = [pk for pk in entry.keys if pk.kid == kid]
        if not named:
            return None
        usable = [pk for pk in named if pk.usable_for(alg)]
        if not usable:
            raise RemoteKeyError(f"key {_short(kid)} is not usable for {alg}")
    else:
        usable = [pk for pk in entry.keys if pk.usable_for(alg)]
        if not usable:
            return None
    if len(usable) > 1:
        raise RemoteKeyError(f"several keys {_wanted(kid, alg)}: ambiguous")
    return usable[0].key

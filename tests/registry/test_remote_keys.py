"""registry.remote_keys: partner JWKS fetched over guarded HTTP, cached, refetched sparingly.

The partner is outside our machine, so its HTTP side is an ``httpx.MockTransport`` and its DNS
a fake resolver; one test talks to a real HTTP server on 127.0.0.1. Nothing leaves loopback.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from adapters.clock import FrozenClock
from registry.remote_keys import FetchPolicy, RemoteKeyError, RemoteKeys, check_url

URL = "https://partner.example/jwks"
T0 = 1_700_000_000.0
SECRET = "BODY-SECRET-never-echo"  # planted in bodies; must never appear in an error

pytestmark = pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")

EC256 = ECKey.generate_key("P-256", parameters={"kid": "ec256"})
EC256_B = ECKey.generate_key("P-256", parameters={"kid": "ec256-b"})
EC384 = ECKey.generate_key("P-384", parameters={"kid": "ec384"})
EC521 = ECKey.generate_key("P-521", parameters={"kid": "ec521"})
ED25519 = OKPKey.generate_key("Ed25519", parameters={"kid": "ed25519"})
X25519 = OKPKey.generate_key("X25519", parameters={"kid": "x25519"})
RSA2048 = RSAKey.generate_key(2048, parameters={"kid": "rsa2048"})
with warnings.catch_warnings():
    warnings.simplefilter("ignore", SecurityWarning)  # a weak key is what we need here
    RSA1024 = RSAKey.generate_key(1024, parameters={"kid": "rsa1024"})


def public(key: Key, **extra: Any) -> dict[str, Any]:
    jwk = key.as_dict(private=False)
    jwk.update(extra)
    return jwk


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = json.dumps(document).encode()
    return httpx.Response(status, content=body,
                          headers={"content-type": "application/json", **(headers or {})})


def assert_verifies(private: Key, found: Key, alg: str) -> None:
    token = jws.serialize_compact({"alg": alg}, b"assertion", private, algorithms=[alg])
    assert jws.deserialize_compact(token, found, algorithms=[alg]).payload == b"assertion"


Route = Callable[[httpx.Request], httpx.Response | Awaitable[httpx.Response]]


class Remote:
    """The partners' side: answers by URL and counts what it was asked."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[httpx.Request] = []

    def publish(self, url: str, document: Any, **headers: str) -> None:
        self.routes[url] = lambda _request: json_response(document, headers=headers)

    def redirect(self, url: str, location: str | None, status: int = 302) -> None:
        headers = {} if location is None else {"location": location}
        self.routes[url] = lambda _request: httpx.Response(status, headers=headers,
                                                           content=SECRET.encode())

    def hits(self, url: str | None = None) -> int:
        return sum(1 for r in self.requests if url is None or str(r.url) == url)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get(str(request.url))
        if route is None:
            return httpx.Response(404, content=SECRET.encode())
        answer = route(request)
        return await answer if isinstance(answer, Awaitable) else answer


class FakeDNS:
    def __init__(self) -> None:
        self.table: dict[str, list[str]] = {
            "partner.example": ["93.184.216.34"],
            "cdn.example": ["93.184.216.35", "2606:2800:220:1:248:1893:25c8:1946"],
            "evil.example": ["10.0.0.5"],
            "mixed.example": ["93.184.216.34", "127.0.0.1"],
            "metadata.example": ["169.254.169.254"],
            "v6local.example": ["fe80::1"],
            "mapped.example": ["::ffff:10.0.0.1"],
            "cgnat.example": ["100.64.0.1"],
            "dev.example": ["127.0.0.1", "::1"],
            "empty.example": [],
            "garbage.example": ["not-an-address"],
        }
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(self.table[host])


Factory = Callable[..., RemoteKeys]


@pytest.fixture
def remote() -> Remote:
    remote = Remote()
    remote.publish(URL, jwks(public(EC256)))
    return remote


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def dns() -> FakeDNS:
    return FakeDNS()


@pytest.fixture
async def make(remote: Remote, clock: FrozenClock, dns: FakeDNS) -> AsyncIterator[Factory]:
    clients: list[httpx.AsyncClient] = []

    def factory(**policy: Any) -> RemoteKeys:
        client = httpx.AsyncClient(transport=httpx.MockTransport(remote.handle))
        clients.append(client)
        return RemoteKeys(client, clock, FetchPolicy(**policy), resolver=dns)

    yield factory
    for client in clients:
        await client.aclose()


async def refused(call: Awaitable[Any], match: str) -> str:
    with pytest.raises(RemoteKeyError, match=match) as caught:
        await call
    message = str(caught.value)
    cause = caught.value.__cause__
    assert SECRET not in message and (cause is None or SECRET not in str(cause))
    return message


# --- check_url: the syntactic guard --------------------------------------------------------

@pytest.mark.parametrize("url", [
    "https://partner.example/jwks",
    "https://partner.example:8443/.well-known/jwks.json?v=2",
    "https://93.184.216.34/jwks",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/jwks",
    "HTTPS://Partner.Example/jwks",
    "https://bücher.example/jwks",
])
def test_check_url_accepts_public_https(url: str) -> None:
    check_url(url, allow_http_loopback=False)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/jwks", "http://[::1]/jwks", "http://localhost:9000/jwks",
    "https://127.0.0.1/jwks", "https://localhost/jwks",
])
def test_check_url_accepts_loopback_only_when_allowed(url: str) -> None:
    check_url(url, allow_http_loopback=True)
    with pytest.raises(RemoteKeyError):
        check_url(url, allow_http_loopback=False)


@pytest.mark.parametrize(("url", "why"), [
    ("http://partner.example/jwks", "https"),
    ("ftp://partner.example/jwks", "https"),
    ("file:///etc/passwd", "https|host"),
    ("http://10.0.0.1/jwks", "https"),
    ("http://169.254.169.254/latest/meta-data/", "https"),
    ("https://user:pw@partner.example/jwks", "userinfo"),
    ("https://user@partner.example/jwks", "userinfo"),
    ("https://partner.example\\@evil.example/jwks", "userinfo"),
    ("https://partner.example/jwks#kid", "fragment"),
    ("https://partner.example/jwks#", "fragment"),
    ("https://10.0.0.1/jwks", "private"),
    ("https://192.168.1.10/jwks", "private"),
    ("https://169.254.169.254/jwks", "link-local"),
    ("https://[fe80::1]/jwks", "link-local"),
    ("https://[fd00::1]/jwks", "private"),
    ("https://[::ffff:10.0.0.1]/jwks", "private"),
    ("https://224.0.0.1/jwks", "multicast"),
    ("https://0.0.0.0/jwks", "unspecified"),
    ("https://[::]/jwks", "unspecified"),
    ("https://240.0.0.1/jwks", "reserved"),
    ("https://100.64.0.1/jwks", "non-global"),
    ("https://2130706433/jwks", "numeric"),
    ("https://0x7f000001/jwks", "numeric"),
    ("https://127.1/jwks", "numeric"),
    ("https:///jwks", "no host"),
    ("https://partner .example/jwks", "whitespace"),
    ("https://partner.example/jwks\r\nX: y", "whitespace"),
    ("https://part%6Eer.example/jwks", "DNS name"),
    ("https://partner.example:99999/jwks", "port"),
    ("https://[::1/jwks", "malformed"),
])
def test_check_url_refuses(url: str, why: str) -> None:
    with pytest.raises(RemoteKeyError, match=why):
        check_url(url, allow_http_loopback=False)


@pytest.mark.parametrize("url", ["http://10.0.0.1/jwks", "http://partner.example/jwks",
                                 "http://[fe80::1]/jwks", "https://169.254.169.254/"])
def test_loopback_allowance_opens_loopback_only(url: str) -> None:
    with pytest.raises(RemoteKeyError):
        check_url(url, allow_http_loopback=True)


async def test_unsafe_jwks_uri_is_never_requested(make: Factory, remote: Remote) -> None:
    remote.publish("https://user@partner.example/jwks", jwks(public(EC256)))
    await refused(make().jwks("https://user@partner.example/jwks"), "userinfo")
    assert remote.hits() == 0


# --- name resolution: every address must be public ------------------------------------------

async def test_public_name_is_resolved_then_fetched(make: Factory, dns: FakeDNS) -> None:
    assert (await make().jwks(URL))["keys"][0]["kid"] == "ec256"
    assert dns.asked == ["partner.example"]


@pytest.mark.parametrize(("host", "why"), [
    ("evil.example", "private"),
    ("mixed.example", "loopback"),  # one bad address among good ones is enough
    ("metadata.example", "link-local"),
    ("v6local.example", "link-local"),
    ("mapped.example", "private"),
    ("cgnat.example", "non-global"),
    ("dev.example", "loopback"),
    ("empty.example", "no address"),
    ("garbage.example", "unparsable"),
    ("unknown.example", "cannot resolve"),
])
async def test_names_resolving_to_forbidden_addresses_are_refused(
    make: Factory, remote: Remote, host: str, why: str
) -> None:
    url = f"https://{host}/jwks"
    remote.publish(url, jwks(public(EC256)))
    message = await refused(make().jwks(url), why)
    assert remote.hits() == 0
    assert "10.0.0.5" not in message and "169.254" not in message  # addresses stay internal


async def test_loopback_names_resolve_when_allowed(make: Factory, remote: Remote) -> None:
    remote.publish("https://dev.example/jwks", jwks(public(EC256)))
    assert await make(allow_http_loopback=True).jwks("https://dev.example/jwks")
    await refused(make(allow_http_loopback=True).jwks("https://evil.example/jwks"), "private")
    assert remote.hits() == 1


# --- redirects: followed by hand, every hop re-checked ----------------------------------------

@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirect_to_public_https_is_followed(
    make: Factory, remote: Remote, status: int
) -> None:
    remote.redirect(URL, "https://cdn.example/partner/jwks", status)
    remote.publish("https://cdn.example/partner/jwks", jwks(public(EC384)))
    assert_verifies(EC384, await make().key(URL, "ec384", "ES384"), "ES384")
    assert remote.hits() == 2


async def test_relative_redirect_is_resolved_against_the_hop(
    make: Factory, remote: Remote
) -> None:
    remote.redirect(URL, "/v2/jwks")
    remote.publish("https://partner.example/v2/jwks", jwks(public(EC256)))
    assert await make().key(URL, "ec256", "ES256")


@pytest.mark.parametrize(("target", "why"), [
    ("http://169.254.169.254/latest/meta-data/", "https"),
    ("http://10.0.0.1/jwks", "https"),
    ("https://10.0.0.1/jwks", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[fe80::1]/jwks", "link-local"),
    ("https://evil.example/jwks", "private"),
    ("https://mixed.example/jwks", "loopback"),
    ("http://partner.example/jwks", "https"),
    ("https://127.0.0.1/jwks", "loopback"),
    ("https://user@cdn.example/jwks", "userinfo"),
    ("file:///etc/passwd", "https|host"),
    ("gopher://cdn.example/", "https"),
])
async def test_redirect_to_forbidden_target_is_refused_before_requesting_it(
    make: Factory, remote: Remote, target: str, why: str
) -> None:
    remote.redirect(URL, target)
    await refused(make().jwks(URL), why)
    assert remote.hits() == 1  # the refused hop was never requested


async def test_loopback_allowance_does_not_open_private_redirects(
    make: Factory, remote: Remote
) -> None:
    remote.redirect("http://127.0.0.1:9/jwks", "http://10.0.0.1/jwks")
    await refused(make(allow_http_loopback=True).jwks("http://127.0.0.1:9/jwks"), "https")
    assert remote.hits() == 1


async def test_redirects_are_capped(make: Factory, remote: Remote) -> None:
    hops = [URL] + [f"https://cdn.example/hop{i}" for i in range(1, 5)]
    for here, there in itertools.pairwise(hops):
        remote.redirect(here, there)
    remote.publish(hops[3], jwks(public(EC256)))  # reached after exactly 3 redirects
    assert await make(max_redirects=3).jwks(URL)
    remote.requests.clear()
    remote.redirect(hops[3], hops[4])  # now a 4th redirect would be needed
    await refused(make(max_redirects=3).jwks(URL), "more than 3")
    assert remote.hits() == 4


async def test_redirect_without_location_is_refused(make: Factory, remote: Remote) -> None:
    remote.redirect(URL, None)
    await refused(make().jwks(URL), "Location")


# --- the response: status, type, encoding, size, time -----------------------------------------

@pytest.mark.parametrize("status", [203, 204, 304, 404, 500, 503])
async def test_only_200_is_accepted(make: Factory, remote: Remote, status: int) -> None:
    remote.routes[URL] = lambda _r: json_response({"keys": [], "x": SECRET}, status)
    await refused(make().jwks(URL), f"HTTP {status}")


@pytest.mark.parametrize("media", ["application/json", "application/json; charset=utf-8",
                                   "application/jwk-set+json", "Application/JSON ; charset=UTF-8"])
async def test_json_media_types_are_accepted(make: Factory, remote: Remote, media: str) -> None:
    remote.publish(URL, jwks(public(EC256)), **{"content-type": media})
    assert await make().key(URL, "ec256", "ES256")


@pytest.mark.parametrize("media", ["text/html", "text/plain", "application/xml",
                                   "application/jwt", "application/jsonp", ""])
async def test_other_media_types_are_refused(make: Factory, remote: Remote, media: str) -> None:
    remote.publish(URL, jwks(public(EC256)), **{"content-type": media})
    await refused(make().jwks(URL), "not JSON")


class Tracked(httpx.AsyncByteStream):
    """A body that counts how many chunks were pulled from it."""

    def __init__(self, chunk: bytes, count: int | None, delay: float = 0.0) -> None:
        self.chunk, self.count, self.delay, self.sent = chunk, count, delay, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.count is None or self.sent < self.count:
            if self.delay:
                await asyncio.sleep(self.delay)
            self.sent += 1
            yield self.chunk


def streamed(body: Tracked, **headers: str) -> Route:
    return lambda _r: httpx.Response(
        200, headers={"content-type": "application/json", **headers}, stream=body
    )


async def test_identity_encoding_is_asked_for_and_compression_refused(
    make: Factory, remote: Remote
) -> None:
    body = Tracked(b"\x1f\x8b" + SECRET.encode(), 1)
    remote.routes[URL] = streamed(body, **{"content-encoding": "gzip"})
    await refused(make().jwks(URL), "gzip")
    assert body.sent == 0
    assert remote.requests[0].headers["accept-encoding"] == "identity"


async def test_declared_oversize_is_refused_before_reading(
    make: Factory, remote: Remote
) -> None:
    body = Tracked(SECRET.encode(), 1)
    remote.routes[URL] = streamed(body, **{"content-length": str(10**9)})
    await refused(make().jwks(URL), "more than")
    assert body.sent == 0


async def test_malformed_content_length_is_refused(make: Factory, remote: Remote) -> None:
    remote.routes[URL] = streamed(Tracked(b"{}", 1), **{"content-length": "-1"})
    await refused(make().jwks(URL), "Content-Length")


async def test_undeclared_oversize_is_cut_off_while_streaming(
    make: Factory, remote: Remote
) -> None:
    body = Tracked(b" " * 16384, None)  # endless, no Content-Length
    remote.routes[URL] = streamed(body)
    await refused(make(max_bytes=65536).jwks(URL), "more than 65536 bytes")
    assert body.sent == 5  # 80 KiB pulled: stopped at the first chunk over the limit


async def test_size_limit_is_inclusive(make: Factory, remote: Remote) -> None:
    document = json.dumps(jwks(public(EC256))).encode()
    limit = len(document) + 100
    remote.routes[URL] = lambda _r: httpx.Response(
        200, headers={"content-type": "application/json"}, content=document.ljust(limit))
    assert await make(max_bytes=limit).jwks(URL)
    await refused(make(max_bytes=limit - 1).jwks(URL), "more than")


async def test_slow_headers_hit_the_overall_timeout(make: Factory, remote: Remote) -> None:
    async def stall(_request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return json_response(jwks(public(EC256)))

    remote.routes[URL] = stall
    started = time.monotonic()
    await refused(make(timeout=0.2).jwks(URL), "longer than 0.2 s")
    assert time.monotonic() - started < 2


async def test_slow_body_hits_the_overall_timeout(make: Factory, remote: Remote) -> None:
    remote.routes[URL] = streamed(Tracked(b" ", None, delay=0.05))  # a trickle, never too big
    started = time.monotonic()
    await refused(make(timeout=0.2).jwks(URL), "longer than")
    assert time.monotonic() - started < 2


async def test_transport_failure_becomes_remote_key_error(make: Factory, remote: Remote) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    remote.routes[URL] = down
    await refused(make().jwks(URL), "ConnectError")


async def test_client_credentials_are_not_sent_to_partners(
    remote: Remote, clock: FrozenClock, dns: FakeDNS
) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(remote.handle),
                                 auth=("tessera", "internal-secret")) as client:
        await RemoteKeys(client, clock, resolver=dns).jwks(URL)
    assert "authorization" not in remote.requests[0].headers


# --- the document ---------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "why"), [
    (b"<html>" + SECRET.encode(), "not JSON"),
    (b'{"keys": [' + SECRET.encode(), "not JSON"),
    (b"\xff\xfe" + SECRET.encode(), "not JSON"),
    (b"[" * 100000, "not JSON|more than"),
    (b'{"keys": [], "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "not JSON.*nested deeper"),
    (b'{"keys": [{"kty": "EC", "n": NaN}]}', "not JSON"),
    (b'{"keys": [{"kty": "EC", "e": 1e400}]}', "not JSON"),
    (b'{"keys": [], "keys": [{"kty": "EC"}]}', "not JSON.*duplicate"),
    (b'{"keys": [{"kid": "\\ud800"}]}', "not JSON"),
    (b'[{"keys": []}]', "JSON object"),
    (b'{"jwks": []}', "'keys' list"),
    (b'{"keys": {"kty": "EC"}}', "'keys' list"),
    (b'{"keys": ["' + SECRET.encode() + b'"]}', "not an object"),
])
async def test_malformed_documents_are_refused(
    make: Factory, remote: Remote, body: bytes, why: str
) -> None:
    remote.routes[URL] = lambda _r: httpx.Response(
        200, headers={"content-type": "application/json"}, content=body)
    await refused(make().jwks(URL), why)


@pytest.mark.parametrize("member", ["d", "p", "q", "dp", "dq", "qi", "k"])
async def test_a_published_private_member_refuses_the_whole_document(
    make: Factory, remote: Remote, member: str
) -> None:
    leaked = public(EC256_B, **{member: "AAAA"})
    remote.publish(URL, jwks(public(EC256), leaked))
    await refused(make().key(URL, "ec256", "ES256"), "private members")


async def test_a_private_key_as_exported_refuses_the_document(
    make: Factory, remote: Remote
) -> None:
    remote.publish(URL, jwks(public(EC256), RSA2048.as_dict(private=True)))
    await refused(make().key(URL, "ec256", "ES256"), r"private members \['d', 'dp'")


async def test_symmetric_keys_refuse_the_document(make: Factory, remote: Remote) -> None:
    remote.publish(URL, jwks(public(EC256), {"kty": "oct", "kid": "hmac"}))
    await refused(make().key(URL, "ec256", "ES256"), "symmetric")


async def test_key_count_is_capped(make: Factory, remote: Remote) -> None:
    three = [public(EC256, kid=f"k{i}") for i in range(3)]
    remote.publish(URL, jwks(*three))
    assert await make(max_keys=3).key(URL, "k2", "ES256")
    remote.publish(URL, jwks(*three, public(EC256, kid="k3")))
    await refused(make(max_keys=3).jwks(URL), "4 keys; at most 3")


async def test_non_signing_and_unusable_keys_are_skipped(make: Factory, remote: Remote) -> None:
    remote.publish(URL, jwks(
        public(EC256_B, use="enc"),
        {"kty": "EC", "kid": "broken", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "PQC", "kid": "future"},
        public(EC384, kid=7),
        public(EC256, use="sig"),
    ))
    keys = make()
    assert_verifies(EC256, await keys.key(URL, "ec256", "ES256"), "ES256")
    assert_verifies(EC256, await keys.key(URL, None, "ES256"), "ES256")  # the enc key is not a fit
    for kid in ("ec256-b", "broken", "future"):
        await refused(keys.key(URL, kid, "ES256"), "no key")
    assert len((await keys.jwks(URL))["keys"]) == 5  # the document itself is served as published


# --- choosing a key for (kid, alg) -----------------------------------------------------------

ALL = jwks(*(public(k) for k in (EC256, EC384, EC521, ED25519, X25519, RSA2048, RSA1024)))


@pytest.mark.parametrize(("private", "alg"), [
    (EC256, "ES256"), (EC384, "ES384"), (EC521, "ES512"),
    (ED25519, "EdDSA"), (ED25519, "Ed25519"),
    (RSA2048, "RS256"), (RSA2048, "PS256"), (RSA2048, "RS512"), (RSA2048, "PS384"),
])
async def test_key_by_kid_is_usable_for_its_alg(
    make: Factory, remote: Remote, private: Key, alg: str
) -> None:
    remote.publish(URL, ALL)
    found = await make().key(URL, private.kid, alg)
    assert found.thumbprint() == private.thumbprint()
    assert_verifies(private, found, alg)


@pytest.mark.parametrize(("private", "alg"), [(EC256, "ES256"), (RSA2048, "RS256"),
                                              (ED25519, "EdDSA")])
async def test_kidless_lookup_takes_the_only_fitting_key(
    make: Factory, remote: Remote, private: Key, alg: str
) -> None:
    anonymous = {k: v for k, v in public(EC256).items() if k != "kid"}
    remote.publish(URL, jwks(anonymous, public(RSA2048), public(ED25519)))
    assert_verifies(private, await make().key(URL, None, alg), alg)


async def test_kidless_lookup_with_several_fits_is_ambiguous(
    make: Factory, remote: Remote
) -> None:
    remote.publish(URL, jwks(public(EC256), public(EC256_B)))
    await refused(make().key(URL, None, "ES256"), "ambiguous")


async def test_duplicate_kid_is_ambiguous(make: Factory, remote: Remote) -> None:
    remote.publish(URL, jwks(public(EC256, kid="same"), public(EC256_B, kid="same")))
    await refused(make().key(URL, "same", "ES256"), "ambiguous")


@pytest.mark.parametrize(("jwk", "alg"), [
    (public(EC384, kid="k"), "ES256"),
    (public(EC256, kid="k"), "ES512"),
    (public(EC256, kid="k"), "RS256"),
    (public(RSA1024, kid="k"), "RS256"),
    (public(RSA2048, kid="k"), "ES256"),
    (public(X25519, kid="k"), "EdDSA"),
    (public(ED25519, kid="k"), "ES256"),
    (public(RSA2048, kid="k", alg="RS256"), "PS256"),
    (public(EC256, kid="k", key_ops=["encrypt"]), "ES256"),
])
async def test_key_not_fit_for_alg_is_refused(
    make: Factory, remote: Remote, jwk: dict[str, Any], alg: str
) -> None:
    remote.publish(URL, jwks(jwk))
    await refused(make().key(URL, "k", alg), f"not usable for {alg}")


async def test_key_own_alg_member_must_match(make: Factory, remote: Remote) -> None:
    remote.publish(URL, jwks(public(RSA2048, kid="k", alg="PS256")))
    assert_verifies(RSA2048, await make().key(URL, "k", "PS256"), "PS256")


@pytest.mark.parametrize("alg", ["HS256", "none", "ES256K", "RSA-OAEP", "None", ""])
async def test_unsupported_algs_are_refused_without_fetching(
    make: Factory, remote: Remote, alg: str
) -> None:
    await refused(make().key(URL, "ec256", alg), "not supported")
    assert remote.hits() == 0


# --- cache lifetime ----------------------------------------------------------------------------

@pytest.mark.parametrize(("cache_control", "lifetime"), [
    (None, 300), ("max-age=600", 600), ("public, max-age=120", 120),
    ("max-age=5", 60), ("max-age=0", 60), ("max-age=99999999", 3600),
    ("no-store", 60), ("no-cache, max-age=900", 60), ("max-age=soon", 300),
])
async def test_cache_lifetime_honours_clamped_max_age(
    make: Factory, remote: Remote, clock: FrozenClock, cache_control: str | None, lifetime: int
) -> None:
    headers = {} if cache_control is None else {"cache-control": cache_control}
    remote.publish(URL, jwks(public(EC256)), **headers)
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    clock.advance(lifetime - 1)
    await keys.key(URL, "ec256", "ES256")
    assert remote.hits() == 1
    clock.advance(2)
    await keys.key(URL, "ec256", "ES256")
    assert remote.hits() == 2


async def test_forget_drops_the_entry(make: Factory, remote: Remote) -> None:
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    remote.publish(URL, jwks(public(EC384)))
    keys.forget(URL)
    keys.forget("https://never.example/jwks")  # unknown URLs are fine
    assert await keys.key(URL, "ec384", "ES384")
    assert remote.hits() == 2


async def test_jwks_returns_a_copy(make: Factory, remote: Remote) -> None:
    keys = make()
    document = await keys.jwks(URL)
    document["keys"].clear()
    assert len((await keys.jwks(URL))["keys"]) == 1
    assert remote.hits() == 1


# --- unknown kid: refetch at most once per interval ------------------------------------------

async def test_unknown_kid_refetches_at_most_once_per_interval(
    make: Factory, remote: Remote, clock: FrozenClock
) -> None:
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    remote.publish(URL, jwks(public(EC256), public(EC384)))  # the partner rotates in ec384
    await refused(keys.key(URL, "ec384", "ES384"), "refetched at most every 30 s")
    assert remote.hits() == 1  # the first fetch was just now

    clock.advance(31)
    assert_verifies(EC384, await keys.key(URL, "ec384", "ES384"), "ES384")
    assert remote.hits() == 2

    await refused(keys.key(URL, "nope-1", "ES256"), "no key")
    clock.advance(29)
    await refused(keys.key(URL, "nope-2", "ES256"), "no key")
    assert remote.hits() == 2  # a second unknown kid within the interval does not refetch

    clock.advance(2)
    await refused(keys.key(URL, "nope-3", "ES256"), "no key")
    assert remote.hits() == 3
    await refused(keys.key(URL, "nope-3", "ES256"), "no key")
    assert remote.hits() == 3


async def test_kidless_miss_follows_the_same_rule(
    make: Factory, remote: Remote, clock: FrozenClock
) -> None:
    remote.publish(URL, jwks(public(RSA2048)))
    keys = make()
    await refused(keys.key(URL, None, "ES256"), "no key for ES256")
    remote.publish(URL, jwks(public(RSA2048), public(EC256)))
    clock.advance(30)
    assert_verifies(EC256, await keys.key(URL, None, "ES256"), "ES256")
    assert remote.hits() == 2


async def test_failed_refetch_on_unknown_kid_keeps_the_cache(
    make: Factory, remote: Remote, clock: FrozenClock
) -> None:
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    remote.routes[URL] = lambda _r: httpx.Response(503, content=SECRET.encode())
    clock.advance(31)
    await refused(keys.key(URL, "new", "ES256"), "refetch failed: .*HTTP 503")
    assert await keys.key(URL, "ec256", "ES256")
    assert remote.hits() == 2


# --- stale while error -------------------------------------------------------------------------

async def test_stale_keys_are_served_for_one_more_ttl_when_refetch_fails(
    make: Factory, remote: Remote, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    remote.routes[URL] = lambda _r: httpx.Response(500, content=SECRET.encode())

    clock.advance(301)  # expired; the refetch fails
    with caplog.at_level(logging.WARNING, logger="registry.remote_keys"):
        assert_verifies(EC256, await keys.key(URL, "ec256", "ES256"), "ES256")
    assert remote.hits() == 2
    assert any("serving expired JWKS" in r.getMessage() for r in caplog.records)
    assert all(SECRET not in r.getMessage() for r in caplog.records)

    clock.advance(10)  # failures are retried at most once per min_refetch_interval
    assert await keys.key(URL, "ec256", "ES256")
    assert remote.hits() == 2

    clock.advance(290)  # T0 + 601: past expiry + ttl
    await refused(keys.key(URL, "ec256", "ES256"), "unavailable: .*HTTP 500")
    assert remote.hits() == 3

    remote.publish(URL, jwks(public(EC256)))
    await refused(keys.key(URL, "ec256", "ES256"), "HTTP 500")  # still backing off
    assert remote.hits() == 3
    clock.advance(30)
    assert await keys.key(URL, "ec256", "ES256")
    assert remote.hits() == 4


async def test_stale_keys_are_replaced_once_the_partner_recovers(
    make: Factory, remote: Remote, clock: FrozenClock
) -> None:
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    remote.routes[URL] = lambda _r: httpx.Response(500)
    clock.advance(301)
    assert await keys.key(URL, "ec256", "ES256")
    remote.publish(URL, jwks(public(EC384)))
    clock.advance(30)
    assert await keys.key(URL, "ec384", "ES384")
    await refused(keys.key(URL, "ec256", "ES256"), "no key")


async def test_first_fetch_failures_are_rate_limited_too(
    make: Factory, remote: Remote, clock: FrozenClock
) -> None:
    remote.routes[URL] = lambda _r: httpx.Response(500)
    keys = make()
    await refused(keys.key(URL, "ec256", "ES256"), "HTTP 500")
    await refused(keys.key(URL, "ec256", "ES256"), "HTTP 500")
    assert remote.hits() == 1
    remote.publish(URL, jwks(public(EC256)))
    clock.advance(30)
    assert await keys.key(URL, "ec256", "ES256")
    assert remote.hits() == 2


# --- concurrency ---------------------------------------------------------------------------------

async def test_concurrent_callers_share_one_fetch(make: Factory, remote: Remote) -> None:
    gate = asyncio.Event()

    async def slow(_request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return json_response(jwks(public(EC256), public(EC384)))

    remote.routes[URL] = slow
    keys = make()
    calls = [asyncio.ensure_future(keys.key(URL, kid, alg))
             for kid, alg in [("ec256", "ES256"), ("ec384", "ES384")] * 5]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    assert len(await asyncio.gather(*calls)) == 10
    assert remote.hits() == 1


async def test_concurrent_unknown_kid_shares_one_refetch(
    make: Factory, remote: Remote, clock: FrozenClock
) -> None:
    keys = make()
    await keys.key(URL, "ec256", "ES256")
    gate = asyncio.Event()

    async def rotated(_request: httpx.Request) -> httpx.Response:
        await gate.wait()
        return json_response(jwks(public(EC256), public(EC521)))

    remote.routes[URL] = rotated
    clock.advance(31)
    calls = [asyncio.ensure_future(keys.key(URL, "ec521", "ES512")) for _ in range(8)]
    for _ in range(5):
        await asyncio.sleep(0)
    gate.set()
    for found in await asyncio.gather(*calls):
        assert found.thumbprint() == EC521.thumbprint()
    assert remote.hits() == 2


# --- a real HTTP server on loopback --------------------------------------------------------------

@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    body = json.dumps(jwks(public(ED25519), public(RSA2048))).encode()

    class Partner(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/jwk-set+json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "max-age=120")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Partner)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_real_loopback_server(
    loopback_server: tuple[str, list[str]], clock: FrozenClock
) -> None:
    base, seen = loopback_server
    async with httpx.AsyncClient(trust_env=False) as http:
        keys = RemoteKeys(http, clock, FetchPolicy(allow_http_loopback=True))
        assert_verifies(ED25519, await keys.key(f"{base}/jwks", "ed25519", "EdDSA"), "EdDSA")
        assert_verifies(RSA2048, await keys.key(f"{base}/jwks", None, "PS256"), "PS256")
        clock.advance(119)
        assert await keys.key(f"{base}/jwks", "rsa2048", "RS256")
        assert seen == ["/jwks"]  # cached for the server's max-age
        clock.advance(2)
        assert await keys.key(f"{base}/jwks", "rsa2048", "RS256")
        assert seen == ["/jwks", "/jwks"]

        await refused(keys.jwks(f"{base}/redirect"), "https")  # hop to the metadata address
        assert seen[-1] == "/redirect"

        strict = RemoteKeys(http, clock)  # loopback not allowed: no request at all
        await refused(strict.jwks(f"{base}/jwks"), "https")
        assert len(seen) == 3

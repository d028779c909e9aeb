"""Load generator for tessera's token endpoint (W1), ID-JAG round trip (W2), introspection
endpoint (W3) and SAML assertions out (W5).

It starts nothing: point it at a running tessera (``tessera serve`` / Hypercorn) whose issuer is
on the loopback interface. The targets are in the performance spec (``performance.md``, workloads
W1, W2 and W3): concurrency 32, 20 s measured after a 3 s warm-up; report the median of 3 runs
with the command line.

W1, client credentials + DPoP (fresh ES256 proof per request, client_secret_basic)::

    python scripts/bench_tokens.py --issuer http://127.0.0.1:8000/t/demo \\
        --client-id bench --client-secret "$BENCH_SECRET" \\
        --concurrency 32 --duration 20 --warmup 3

    # one Python process signing proofs may saturate before the server does:
    python scripts/bench_tokens.py --issuer http://127.0.0.1:8000/t/demo \\
        --client-id bench --client-secret "$BENCH_SECRET" --processes 2

    # the same without DPoP (plain Bearer tokens):
    python scripts/bench_tokens.py --issuer http://127.0.0.1:8000/t/demo \\
        --client-id bench --client-secret "$BENCH_SECRET" --no-dpop

W3, introspection of one valid DPoP-bound token (obtained first, then introspected repeatedly)::

    python scripts/bench_tokens.py --mode introspect --issuer http://127.0.0.1:8000/t/demo \\
        --client-id bench --client-secret "$BENCH_SECRET" \\
        --concurrency 32 --duration 20 --warmup 3

W2, ID-JAG round trip (``--mode idjag``): one operation is (1) an RFC 8693 token exchange at the
IdP tenant (``--issuer``, the agent's ``--client-id``/``--client-secret``) of one ID token
(``--id-token``, reused for every operation) for an ID-JAG with ``audience`` = the resource
tenant's issuer (``--audience``), then (2) the RFC 7523 jwt-bearer redemption of that ID-JAG at
``{audience}/token`` with the agent's client there (``--resource-client-id`` and
``--resource-client-secret``) for a DPoP-bound access token. Both requests use client_secret_basic
and carry a fresh ES256 DPoP proof by the same worker key (the ID-JAG is bound to it by
``cnf.jkt``); ``--scope`` goes into the exchange. The latency is the whole round trip; a failure of
either step is counted under ``exchange <status> <error>`` or ``redeem <status> <error>``, and the
audience must be on loopback too. Set up against a running server, one broker hosting both
tenants (here ``tessera serve`` on its default port 8000): run the CLI in the server's working
directory with the same environment (``TESSERA_DATABASE_URL`` and so on). The CLI signs ID tokens
and records trust links with the issuers of ``TESSERA_BASE_URL``, by default
``http://127.0.0.1:8000``; for a server on another port export ``TESSERA_BASE_URL`` (for example
``http://127.0.0.1:8124``) for the CLI commands and use that prefix in the URLs below::

    tessera tenant create acme --json; tessera tenant create pricing --json
    tessera client create --tenant acme --name agent --json   # -> AGENT_ID / AGENT_SECRET
    tessera client create --tenant pricing --name agent \\
        --audience http://127.0.0.1:8000/t/pricing/demo --json   # -> RC_ID / RC_SECRET
    tessera trust add --tenant acme --peer-tenant pricing --send
    tessera trust add --tenant pricing --peer-tenant acme --accept
    tessera connection set --tenant acme --client "$AGENT_ID" \\
        --audience http://127.0.0.1:8000/t/pricing --remote-client-id "$RC_ID" --grant read
    ID_TOKEN=$(tessera id-token --tenant acme --client "$AGENT_ID" --sub alice --lifetime 3600)

    python scripts/bench_tokens.py --mode idjag --issuer http://127.0.0.1:8000/t/acme \\
        --client-id "$AGENT_ID" --client-secret "$AGENT_SECRET" \\
        --audience http://127.0.0.1:8000/t/pricing \\
        --resource-client-id "$RC_ID" --resource-client-secret "$RC_SECRET" \\
        --id-token "$ID_TOKEN" --concurrency 32 --duration 20 --warmup 3

The ID token must outlive the run (``--lifetime`` in seconds). ``--no-dpop`` and ``--resource``
do not apply to this mode.

W5, SAML assertion out (``--mode saml``): one operation is the RFC 8693 token exchange of a
user's ID token (``--id-token``, reused) for a signed SAML 2.0 assertion for the legacy app whose
entity ID is ``--audience`` (``requested_token_type`` saml2), by a client with that entity ID
among its audiences; no DPoP (the answer is a bearer assertion, ``token_type`` N_A). The user
must be a user of the tenant (the CLI cannot make one; ``scripts/benchkit.py user TENANT``
does, and ``bench_side_by_side.py --workloads W5`` sets all of it up)::

    python scripts/bench_tokens.py --mode saml --issuer http://127.0.0.1:8000/t/saml \\
        --client-id "$CLIENT_ID" --client-secret "$CLIENT_SECRET" \\
        --audience https://legacy.bench.example/sp --id-token "$ID_TOKEN"

Add ``--json`` for one JSON object on stdout. Only operations that complete after the warm-up
and before the end of the measured window count; requests still in flight at the end are
cancelled and not counted. An operation whose proof is answered with ``use_dpop_nonce`` is
retried with the new nonce, and its latency includes the retry; nonces are kept per target URL.
Before the load, one operation (a token request, or one whole ID-JAG round trip) checks the
configuration; if it fails, nothing else is sent.

HTTP is a minimal HTTP/1.1 client on asyncio streams, not a general-purpose library, so that the
generator is not the bottleneck (httpx cost ~3 ms of CPU per request): each worker coroutine
owns one keep-alive connection (concurrency = connections; in ``idjag`` mode a second one when
the audience is on another host or port), sends prebuilt request bytes with only the DPoP header
(and for a redemption the ID-JAG) added per request, and reads responses delimited by
Content-Length or chunked encoding (or the connection's close). Each request has a 10 s timeout;
after a timeout, an error or ``Connection: close`` the connection is opened again for the next
request.

Exit status: 0 when every measured operation succeeded, 1 when any failed (or none succeeded),
2 for bad arguments or a non-loopback issuer (or audience).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ipaddress
import json
import math
import multiprocessing as mp
import os
import queue
import ssl
import sys
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_NONCE_RETRIES = 2  # per operation: a stale nonce can be answered with use_dpop_nonce again
MAX_ERROR_SAMPLES = 5
SAMPLE_CHARS = 300
TRANSPORT_ERROR_PAUSE = 0.05  # seconds; keeps a dead server from turning workers into busy loops
WORKLOADS = {"token": "W1", "idjag": "W2", "introspect": "W3", "saml": "W5"}
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ID_JAG_TYPE = "urn:ietf:params:oauth:token-type:id-jag"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"
SAML2_TYPE = "urn:ietf:params:oauth:token-type:saml2"
# the redemption form up to the ID-JAG, which ends it
REDEEM_BODY_PREFIX = urlencode({"grant_type": JWT_BEARER, "assertion": ""}).encode("ascii")
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.version == 4:
        return address in ipaddress.ip_network("127.0.0.0/8")
    return address == ipaddress.ip_address("::1")


def _b64url_bytes(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def basic_authorization(client_id: str, client_secret: str) -> str:
    """``client_secret_basic`` (RFC 6749 §2.3.1): encode id and secret, then base64 them.

    Everything but the unreserved characters is percent-encoded (a space becomes ``%20``, not
    ``+``), which every form-urlencoded decoder reads back the same way.
    """
    pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii")


class ProofSigner:
    """One P-256 key pair (new, or ``key``) for proofs of one ``htm`` and ``htu``. The
    protected-header segment and the claims between ``jti``, ``iat`` and ``nonce`` are fixed
    bytes, so a proof costs one sign and a little byte pasting."""

    __slots__ = ("_claims_mid", "_header", "_key", "_nonce", "_nonce_claim")

    def __init__(
        self, htu: str, htm: str = "POST", key: ec.EllipticCurvePrivateKey | None = None
    ) -> None:
        self._key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
        numbers = self._key.public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
        }
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}
        self._header = _b64url_bytes(json.dumps(header, separators=(",", ":")).encode()) + b"."
        # the claims, in this order: jti, htm, htu, iat and, when the server wants one, nonce
        self._claims_mid = (
            f'","htm":{json.dumps(htm)},"htu":{json.dumps(htu)},"iat":'.encode("ascii")
        )
        self._nonce: str | None = None
        self._nonce_claim = b""

    def for_htu(self, htu: str, htm: str = "POST") -> ProofSigner:
        """A signer with the same key for another target."""
        return ProofSigner(htu, htm, key=self._key)

    def proof(self, nonce: str | None) -> bytes:
        if nonce != self._nonce:
            self._nonce = nonce
            self._nonce_claim = b"" if nonce is None else b',"nonce":' + json.dumps(nonce).encode()
        claims = b'{"jti":"%b%b%d%b}' % (
            base64.urlsafe_b64encode(os.urandom(18)),  # 24 characters, no padding
            self._claims_mid,
            int(time.time()),
            self._nonce_claim,
        )
        signing_input = self._header + _b64url_bytes(claims)
        r, s = decode_dss_signature(self._key.sign(signing_input, _ECDSA_SHA256))
        return signing_input + b"." + _b64url_bytes(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


@dataclass(frozen=True)
class Config:
    """Everything a load-generator process needs; picklable for spawned children."""

    mode: str
    token_url: str
    introspect_url: str
    authorization: str
    token_body: bytes
    dpop: bool
    warmup: float
    duration: float
    timeout: float
    introspect_token: str | None = None
    initial_nonce: str | None = None
    # idjag: where and as whom the ID-JAG is redeemed; nonces learnt by the preflight, per URL
    redeem_url: str = ""
    redeem_authorization: str = ""
    initial_nonces: tuple[tuple[str, str], ...] = ()
    fresh_connections: bool = False  # a new TCP connection per request
    client_closes: bool = False  # fresh: "Connection: keep-alive" and the client closes
    max_requests: int = 0  # stop once this many operations completed (0: run the duration)


@dataclass
class Outcome:
    ok: bool
    key: str = ""
    sample: str = ""
    access_token: str | None = None
    nonce_retries: int = 0
    transport: bool = False  # no response at all (other than a timeout)


@dataclass
class Tally:
    """The state shared by the worker coroutines of one process."""

    nonce: str | None = None
    nonces: dict[str, str] = field(default_factory=dict)  # idjag: DPoP-Nonce per target URL
    latencies: array = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    samples: list[str] = field(default_factory=list)
    nonce_retries: int = 0
    completed: int = 0  # operations finished (warm-up included), for --requests
    stopped_at: float | None = None  # perf_counter when --requests was reached
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def note_error(self, key: str, sample: str) -> None:
        self.errors[key] += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(f"{key}: {sample[:SAMPLE_CHARS]}")


class ProtocolError(Exception):
    """The server sent something that is not an HTTP/1.x response this client understands."""


TRANSPORT_ERRORS = (OSError, EOFError, asyncio.LimitOverrunError, ProtocolError)


@dataclass(frozen=True)
class Target:
    """Where requests for a URL go: socket address, TLS or not, Host header, request-target."""

    host: str
    port: int
    tls: bool
    authority: str
    path: str

    @classmethod
    def of(cls, url: str) -> Target:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        default_port = 443 if tls else 80
        port = parts.port or default_port
        authority = f"[{host}]" if ":" in host else host
        if port != default_port:
            authority = f"{authority}:{port}"
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=")
        if parts.query:
            path = f"{path}?{parts.query}"
        return cls(host, port, tls, authority, path)


def request_head(url: str, authorization: str, body: bytes | None, close: bool = False) -> bytes:
    """Request line and every header but DPoP for POSTing the form ``body`` to ``url``; with
    ``body`` None, every header but DPoP and Content-Length.

    It ends with one CRLF: a header line or the empty line comes next.
    """
    target = Target.of(url)
    length = "" if body is None else f"Content-Length: {len(body)}\r\n"
    return (
        f"POST {target.path} HTTP/1.1\r\n"
        f"Host: {target.authority}\r\n"
        f"Authorization: {authorization}\r\n"
        f"Content-Type: {FORM_CONTENT_TYPE}\r\n"
        f"{length}"
        "Accept: application/json\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n"
        "User-Agent: tessera-bench\r\n"
    ).encode("latin-1")


@dataclass(frozen=True)
class Wire:
    """The constant request bytes, built once per process: only a proof is added per request."""

    target: Target
    token: bytes  # the whole token request, without DPoP
    token_dpop_head: bytes  # the token request up to and including "DPoP: "
    token_dpop_tail: bytes  # what follows the proof: end of the header block, then the body
    introspect: bytes  # the whole introspection request for cfg.introspect_token
    # idjag: the redemption request up to Content-Length, which depends on the ID-JAG
    redeem_target: Target | None = None
    redeem_head: bytes = b""

    @classmethod
    def of(cls, cfg: Config) -> Wire:
        close = cfg.fresh_connections and not cfg.client_closes
        token_head = request_head(cfg.token_url, cfg.authorization, cfg.token_body, close)
        introspect_body = urlencode({"token": cfg.introspect_token or ""}).encode("ascii")
        introspect_head = request_head(cfg.introspect_url, cfg.authorization, introspect_body,
                                       close)
        redeeming = bool(cfg.redeem_url)
        return cls(
            target=Target.of(cfg.token_url),
            token=token_head + b"\r\n" + cfg.token_body,
            token_dpop_head=token_head + b"DPoP: ",
            token_dpop_tail=b"\r\n\r\n" + cfg.token_body,
            introspect=introspect_head + b"\r\n" + introspect_body,
            redeem_target=Target.of(cfg.redeem_url) if redeeming else None,
            redeem_head=(request_head(cfg.redeem_url, cfg.redeem_authorization, None, close)
                         if redeeming else b""),
        )

    def redeem_request(self, id_jag: bytes, proof: bytes) -> bytes:
        body = REDEEM_BODY_PREFIX + id_jag
        return b"%bContent-Length: %d\r\nDPoP: %b\r\n\r\n%b" % (
            self.redeem_head, len(body), proof, body)


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1); trailer fields are dropped."""
    chunks: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size_text = size_line.split(b";", 1)[0].strip()
        if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
            raise ProtocolError(f"bad chunk size line {size_line[:80]!r}")
        size = int(size_text, 16)
        if size == 0:
            break
        chunks.append(await reader.readexactly(size))
        if await reader.readexactly(2) != b"\r\n":
            raise ProtocolError("chunk data not followed by CRLF")
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return b"".join(chunks)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, str | None, bytes, bool]:
    """One response: (status, DPoP-Nonce or None, body, whether the connection stays open)."""
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")  # the last two are empty: the block ends with CRLF CRLF
        status_line = lines[0]
        code = status_line[9:12]
        if (
            not status_line.startswith(b"HTTP/1.")
            or status_line[8:9] != b" "
            or not code.isdigit()
            or status_line[12:13] not in (b"", b" ")
        ):
            raise ProtocolError(f"bad status line {status_line[:80]!r}")
        status = int(code)
        if status >= 200:
            break
        if status == 101:
            raise ProtocolError("unexpected 101 Switching Protocols")
        # any other 1xx is an interim response without a body: the final one follows
    length: int | None = None
    transfer_coding: bytes | None = None
    nonce: str | None = None
    close = keep_alive = False
    for line in lines[1:-2]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError(f"bad header line {line[:80]!r}")
        name = name.strip().lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or (length is not None and int(value) != length):
                raise ProtocolError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif name == b"dpop-nonce":
            nonce = value.strip().decode("latin-1")
        elif name == b"transfer-encoding":
            transfer_coding = value.rsplit(b",", 1)[-1].strip().lower()
        elif name == b"connection":
            options = {option.strip() for option in value.lower().split(b",")}
            close = close or b"close" in options
            keep_alive = keep_alive or b"keep-alive" in options
    # HTTP/1.1 keeps the connection unless told otherwise; HTTP/1.0 only when asked to
    keep = not close and (status_line[5:8] != b"1.0" or keep_alive)
    if status in (204, 304):
        body = b""
    elif transfer_coding == b"chunked":
        body = await read_chunked(reader)
    elif transfer_coding is None and length is not None:
        body = await reader.readexactly(length) if length else b""
    else:  # no length given: the body ends when the server closes (RFC 9112 §6.3)
        body = await reader.read()
        keep = False
    return status, nonce, body, keep


class Connection:
    """One HTTP/1.1 keep-alive connection that serves one request at a time. It is opened on
    first use and opened again after the server closed it or after any error."""

    __slots__ = ("_fresh", "_reader", "_ssl", "_target", "_timeout", "_writer")

    def __init__(self, target: Target, timeout: float, fresh: bool = False) -> None:
        self._fresh = fresh  # closed after every exchange: a new TCP connection per request
        self._target = target
        self._timeout = timeout
        self._ssl = ssl.create_default_context() if target.tls else None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, str | None, bytes]:
        """Send one whole request and return (status, DPoP-Nonce or None, body).

        Raises TimeoutError when the exchange (including any connect) takes longer than the
        timeout, or one of TRANSPORT_ERRORS; the connection is closed after either.
        """
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = self._reader, self._writer
                if reader is None or writer is None or reader.at_eof() or writer.is_closing():
                    self.close()
                    target = self._target
                    reader, writer = await asyncio.open_connection(
                        target.host, target.port, ssl=self._ssl
                    )
                    self._reader, self._writer = reader, writer
                writer.write(request)
                if writer.transport.get_write_buffer_size():
                    await writer.drain()
                status, nonce, body, keep = await read_response(reader)
        except BaseException:
            self.close()
            raise
        if not keep or self._fresh:
            self.close()
        return status, nonce, body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _json_body(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except ValueError:  # includes JSONDecodeError and UnicodeDecodeError
        return None
    return body if isinstance(body, dict) else None


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _failure(status: int, raw: bytes, body: dict[str, Any] | None) -> Outcome:
    code = str(body.get("error")) if body and "error" in body else "unexpected_body"
    return Outcome(False, f"{status} {code}", _text(raw))


def _exchange_failure(exc: BaseException, timeout: float) -> Outcome:
    """The outcome of a request that got no (complete, well-formed) response."""
    if isinstance(exc, TimeoutError):
        return Outcome(False, "timeout", f"TimeoutError: no response within {timeout:g} s")
    sample = str(exc) or repr(exc)
    if isinstance(exc, asyncio.IncompleteReadError):
        sample = f"connection closed mid-response ({len(exc.partial)} bytes of a part read)"
    return Outcome(False, f"transport {type(exc).__name__}", sample, transport=True)


async def request_token(
    conn: Connection, wire: Wire, tally: Tally, signer: ProofSigner | None
) -> Outcome:
    """One client-credentials grant, retried with a fresh proof when a nonce is demanded."""
    retries = 0
    while True:
        if signer is None:
            request = wire.token
        else:
            proof = signer.proof(tally.nonce)
            request = b"".join((wire.token_dpop_head, proof, wire.token_dpop_tail))
        status, nonce, raw = await conn.exchange(request)
        if nonce:
            tally.nonce = nonce
        body = _json_body(raw)
        if status == 200 and body is not None:
            token_type = str(body.get("token_type", ""))
            expected = "dpop" if signer is not None else "bearer"
            if not body.get("access_token"):
                return Outcome(False, "200 no_access_token", _text(raw), nonce_retries=retries)
            if token_type.lower() != expected:
                return Outcome(False, f"200 token_type={token_type or '-'}", _text(raw),
                               nonce_retries=retries)
            return Outcome(True, access_token=str(body["access_token"]), nonce_retries=retries)
        if (
            status == 400
            and signer is not None
            and nonce
            and body is not None
            and body.get("error") == "use_dpop_nonce"
            and retries < MAX_NONCE_RETRIES
        ):
            retries += 1
            continue
        outcome = _failure(status, raw, body)
        outcome.nonce_retries = retries
        return outcome


async def post_with_proof(
    conn: Connection,
    build: Callable[[bytes], bytes],
    signer: ProofSigner,
    nonces: dict[str, str],
    url: str,
) -> tuple[int, bytes, dict[str, Any] | None, int]:
    """Send ``build(proof)`` with a fresh proof, again with a new one when the answer is
    ``use_dpop_nonce``; the nonce is kept per target ``url``. Returns (status, raw body, JSON
    body or None, nonce retries)."""
    retries = 0
    while True:
        status, nonce, raw = await conn.exchange(build(signer.proof(nonces.get(url))))
        if nonce:
            nonces[url] = nonce
        body = _json_body(raw)
        if (
            status == 400
            and nonce
            and body is not None
            and body.get("error") == "use_dpop_nonce"
            and retries < MAX_NONCE_RETRIES
        ):
            retries += 1
            continue
        return status, raw, body, retries


def _step_failure(step: str, outcome: Outcome, retries: int) -> Outcome:
    outcome.key = f"{step} {outcome.key}"
    outcome.nonce_retries += retries
    return outcome


async def idjag_round_trip(
    conns: tuple[Connection, Connection],
    wire: Wire,
    cfg: Config,
    tally: Tally,
    signers: tuple[ProofSigner, ProofSigner],
) -> Outcome:
    """(1) token exchange of the ID token for an ID-JAG at the IdP tenant, (2) jwt-bearer
    redemption of the ID-JAG at the audience, each with a proof by the same key. A failure's key
    names its step: ``exchange ...`` or ``redeem ...``."""
    exchange_conn, redeem_conn = conns
    exchange_signer, redeem_signer = signers
    head, tail = wire.token_dpop_head, wire.token_dpop_tail
    try:
        status, raw, body, retries = await post_with_proof(
            exchange_conn, lambda proof: b"".join((head, proof, tail)), exchange_signer,
            tally.nonces, cfg.token_url)
    except TRANSPORT_ERRORS as exc:  # TimeoutError is an OSError
        return _step_failure("exchange", _exchange_failure(exc, cfg.timeout), 0)
    if status != 200 or body is None:
        return _step_failure("exchange", _failure(status, raw, body), retries)
    id_jag = body.get("access_token")
    issued = body.get("issued_token_type")
    token_type = str(body.get("token_type", ""))
    if not id_jag or not isinstance(id_jag, str):
        return _step_failure("exchange", Outcome(False, "200 no_access_token", _text(raw)),
                             retries)
    if issued != ID_JAG_TYPE:
        return _step_failure(
            "exchange", Outcome(False, f"200 issued_token_type={issued or '-'}", _text(raw)),
            retries)
    if token_type.lower() != "n_a":
        return _step_failure(
            "exchange", Outcome(False, f"200 token_type={token_type or '-'}", _text(raw)),
            retries)
    total_retries = retries
    assertion = quote(id_jag, safe="").encode("ascii")
    try:
        status, raw, body, retries = await post_with_proof(
            redeem_conn, lambda proof: wire.redeem_request(assertion, proof), redeem_signer,
            tally.nonces, cfg.redeem_url)
    except TRANSPORT_ERRORS as exc:
        return _step_failure("redeem", _exchange_failure(exc, cfg.timeout), total_retries)
    total_retries += retries
    if status != 200 or body is None:
        return _step_failure("redeem", _failure(status, raw, body), total_retries)
    token_type = str(body.get("token_type", ""))
    if not body.get("access_token"):
        return _step_failure("redeem", Outcome(False, "200 no_access_token", _text(raw)),
                             total_retries)
    if token_type.lower() != "dpop":
        return _step_failure(
            "redeem", Outcome(False, f"200 token_type={token_type or '-'}", _text(raw)),
            total_retries)
    return Outcome(True, access_token=str(body["access_token"]), nonce_retries=total_retries)


async def introspect(conn: Connection, wire: Wire) -> Outcome:
    status, _, raw = await conn.exchange(wire.introspect)
    body = _json_body(raw)
    if status == 200 and body is not None:
        if body.get("active") is True:
            return Outcome(True)
        return Outcome(False, "200 inactive", _text(raw))
    return _failure(status, raw, body)


async def request_saml(conn: Connection, wire: Wire) -> Outcome:
    """One token exchange of the ID token for a SAML assertion (no DPoP: the assertion is a
    bearer credential of the legacy app, ``token_type`` N_A)."""
    status, _, raw = await conn.exchange(wire.token)
    body = _json_body(raw)
    if status == 200 and body is not None:
        issued = body.get("issued_token_type")
        if issued != SAML2_TYPE:
            return Outcome(False, f"200 issued_token_type={issued or '-'}", _text(raw))
        if str(body.get("token_type", "")).lower() != "n_a":
            return Outcome(False, f"200 token_type={body.get('token_type') or '-'}", _text(raw))
        if not body.get("access_token"):
            return Outcome(False, "200 no_access_token", _text(raw))
        return Outcome(True)
    return _failure(status, raw, body)


def open_connections(cfg: Config, wire: Wire) -> tuple[Connection, Connection]:
    """A worker's connections (opened on first use): the one for the issuer and the one for the
    redemptions, which is the same unless the audience is on another host, port or scheme."""
    conn = Connection(wire.target, cfg.timeout, cfg.fresh_connections)
    other = wire.redeem_target
    if other is None or (other.host, other.port, other.tls) == (
        wire.target.host, wire.target.port, wire.target.tls
    ):
        return conn, conn
    return conn, Connection(other, cfg.timeout, cfg.fresh_connections)


async def worker(
    cfg: Config,
    wire: Wire,
    tally: Tally,
    signers: tuple[ProofSigner, ...],
    measure_from: float,
    end: float,
) -> None:
    """Issue operations back to back over one keep-alive connection (in ``idjag`` mode two when
    the audience is elsewhere) until ``end``."""
    conn, redeem_conn = open_connections(cfg, wire)
    perf_counter = time.perf_counter
    introspecting = cfg.mode == "introspect"
    idjag = cfg.mode == "idjag"
    saml = cfg.mode == "saml"
    signer = signers[0] if signers else None
    try:
        while True:
            started = perf_counter()
            if started >= end:
                return
            try:
                if introspecting:
                    outcome = await introspect(conn, wire)
                elif saml:
                    outcome = await request_saml(conn, wire)
                elif idjag:
                    outcome = await idjag_round_trip(
                        (conn, redeem_conn), wire, cfg, tally, (signers[0], signers[1]))
                else:
                    outcome = await request_token(conn, wire, tally, signer)
            except TRANSPORT_ERRORS as exc:  # TimeoutError is an OSError
                outcome = _exchange_failure(exc, cfg.timeout)
            finished = perf_counter()
            if tally.stopped_at is not None:
                return
            if measure_from <= finished <= end:
                tally.nonce_retries += outcome.nonce_retries
                if outcome.ok:
                    tally.latencies.append((finished - started) * 1000.0)
                else:
                    tally.note_error(outcome.key, outcome.sample)
            tally.completed += 1
            if cfg.max_requests and tally.completed >= cfg.max_requests:
                tally.stopped_at = finished
                tally.stopped.set()
                return
            if not outcome.ok and outcome.transport:
                await asyncio.sleep(TRANSPORT_ERROR_PAUSE)
    finally:
        conn.close()
        redeem_conn.close()


def worker_signers(cfg: Config) -> tuple[ProofSigner, ...]:
    """The proof signers of one worker: none, one for the token endpoint, or in ``idjag`` mode
    one key for both the exchange and the redemption."""
    if cfg.mode == "idjag":
        signer = ProofSigner(cfg.token_url)
        return signer, signer.for_htu(cfg.redeem_url)
    if cfg.mode == "token" and cfg.dpop:
        return (ProofSigner(cfg.token_url),)
    return ()


def make_signers(cfg: Config, workers: int) -> list[tuple[ProofSigner, ...]]:
    return [worker_signers(cfg) for _ in range(workers)]


def process_tree(pids: tuple[int, ...]) -> list[int]:
    """``pids`` and all their descendants that are alive now (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def tree_usage(pids: tuple[int, ...]) -> tuple[float, float]:
    """(CPU seconds, utime + stime of every thread, and RSS in MB) summed over the process
    trees of ``pids``; children that exited are not counted."""
    tick = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu = rss = 0.0
    for pid in process_tree(pids):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        cpu += (int(fields[11]) + int(fields[12])) / tick  # utime, stime (fields 14 and 15)
        rss += int(fields[21]) * page / 1e6  # rss in pages (field 24)
    return cpu, rss


async def sample_usage(pids: tuple[int, ...], tally: Tally, measure_from: float,
                       end: float) -> dict[str, float]:
    """Server and load-generator CPU over the measured window, and the server's RSS."""
    await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
    cpu0, rss0 = tree_usage(pids) if pids else (0.0, 0.0)
    own0 = time.process_time()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(tally.stopped.wait(), max(0.0, end - time.perf_counter()))
    cpu1, rss1 = tree_usage(pids) if pids else (0.0, 0.0)
    return {"server_cpu_s": cpu1 - cpu0, "rss_mb_start": rss0, "rss_mb_end": rss1,
            "client_cpu_s": time.process_time() - own0}


async def run_load(cfg: Config, signers: list[tuple[ProofSigner, ...]],
                   cpu_pids: tuple[int, ...] = ()) -> dict[str, Any]:
    """Run len(signers) workers, one keep-alive connection each, until warm-up + duration
    (or until ``cfg.max_requests`` operations completed)."""
    tally = Tally(nonce=cfg.initial_nonce, nonces=dict(cfg.initial_nonces))
    wire = Wire.of(cfg)
    start = time.perf_counter()
    measure_from, end = start + cfg.warmup, start + cfg.warmup + cfg.duration
    tasks = [
        asyncio.create_task(worker(cfg, wire, tally, signer, measure_from, end))
        for signer in signers
    ]
    sampler = asyncio.create_task(sample_usage(cpu_pids, tally, measure_from, end))
    _, pending = await asyncio.wait(tasks, timeout=max(0.0, end - time.perf_counter()))
    for task in pending:
        task.cancel()
    usage = await sampler
    results = await asyncio.gather(*tasks, return_exceptions=True)
    crashed = [r for r in results if isinstance(r, BaseException)
               and not isinstance(r, asyncio.CancelledError)]
    for exc in crashed[:MAX_ERROR_SAMPLES]:
        tally.note_error(f"worker crashed {type(exc).__name__}", str(exc))
    return {
        "latencies": tally.latencies,
        "errors": dict(tally.errors),
        "samples": tally.samples,
        "nonce_retries": tally.nonce_retries,
        "in_flight_at_end": len(pending),
        "workers": len(signers),
        "usage": usage,
        "completed": tally.completed,
        "measured_s": (min(end, tally.stopped_at) - measure_from
                       if tally.stopped_at is not None else cfg.duration),
    }


def child_main(cfg: Config, workers: int, results: Any, barrier: Any, index: int,
               cpu_pids: tuple[int, ...] = ()) -> None:
    """Entry point of one load-generator process: set up, wait for the others, run, report."""
    try:
        signers = make_signers(cfg, workers)
        barrier.wait(timeout=120)
        result = asyncio.run(run_load(cfg, signers, cpu_pids if index == 0 else ()))
        result["index"] = index
        results.put(result)
    except BaseException:
        results.put({"index": index, "fatal": traceback.format_exc()})
        raise


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def run_processes(cfg: Config, concurrency: int, processes: int,
                  cpu_pids: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    shares = split(concurrency, processes)
    if processes == 1:
        return [asyncio.run(run_load(cfg, make_signers(cfg, shares[0]), cpu_pids))]
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(processes)
    children = [
        ctx.Process(target=child_main, args=(cfg, share, results, barrier, i, cpu_pids),
                    daemon=True)
        for i, share in enumerate(shares)
    ]
    for child in children:
        child.start()
    collected: list[dict[str, Any]] = []
    deadline = time.monotonic() + 120 + cfg.warmup + cfg.duration + cfg.timeout + 30
    while len(collected) < processes:
        try:
            collected.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
        except queue.Empty:
            break
    for child in children:
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
    missing = processes - len(collected)
    collected.extend({"fatal": "no result from load-generator process"} for _ in range(missing))
    return collected


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summarise(
    cfg: Config, args: argparse.Namespace, parts: list[dict[str, Any]]
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    samples: list[str] = []
    fatal: list[str] = []
    nonce_retries = in_flight = completed = 0
    measured = cfg.duration
    usage: dict[str, float] = {}
    for part in parts:
        if "fatal" in part:
            fatal.append(part["fatal"])
            continue
        if part.get("usage") and part["usage"].get("rss_mb_end") is not None and not usage:
            usage = part["usage"]
        measured = min(measured, part.get("measured_s", cfg.duration))
        completed += part.get("completed", 0)
        latencies.extend(part["latencies"])
        errors.update(part["errors"])
        samples.extend(part["samples"])
        nonce_retries += part["nonce_retries"]
        in_flight += part["in_flight_at_end"]
    latencies.sort()
    ok = len(latencies)

    def ms(value: float) -> float | None:
        return None if math.isnan(value) else round(value, 3)

    report: dict[str, Any] = {
        "workload": WORKLOADS[cfg.mode],
        "mode": cfg.mode,
        "issuer": args.issuer,
    }
    if cfg.mode in ("idjag", "saml"):
        report["audience"] = args.audience
    if args.cpu_pid:
        cpu = usage.get("server_cpu_s", math.nan)
        report["server"] = {
            "pids": args.cpu_pid,
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_op": round(cpu * 1000.0 / ok, 4) if ok else None,
            "cpu_cores": round(cpu / measured, 3) if measured > 0 else None,
            "rss_mb_start": round(usage.get("rss_mb_start", math.nan), 1),
            "rss_mb_end": round(usage.get("rss_mb_end", math.nan), 1),
        }
        if args.processes == 1 and ok:
            report["client_cpu_ms_per_op"] = round(usage["client_cpu_s"] * 1000.0 / ok, 4)
    return report | {
        "fresh_connections": cfg.fresh_connections,
        "operations_completed": completed,
        "dpop": cfg.dpop,
        "processes": args.processes,
        "concurrency": args.concurrency,
        "concurrency_per_process": split(args.concurrency, args.processes),
        "warmup_s": cfg.warmup,
        "duration_s": cfg.duration,
        "ok": ok,
        "errors_total": sum(errors.values()) + len(fatal),
        "errors": dict(errors.most_common()),
        "error_samples": samples[:MAX_ERROR_SAMPLES],
        "failed_processes": fatal,
        "measured_s": round(measured, 3),
        "throughput_per_s": round(ok / measured, 1) if measured > 0 else 0.0,
        "latency_ms": {
            "p50": ms(percentile(latencies, 50)),
            "p90": ms(percentile(latencies, 90)),
            "p99": ms(percentile(latencies, 99)),
            "max": ms(latencies[-1] if latencies else math.nan),
            "mean": ms(sum(latencies) / ok if ok else math.nan),
        },
        "nonce_retries": nonce_retries,
        "in_flight_at_end": in_flight,
    }


def print_report(report: dict[str, Any]) -> None:
    lat = report["latency_ms"]

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    dpop = "DPoP (ES256)" if report["dpop"] else "Bearer"
    where = report["issuer"]
    if "audience" in report:
        where = f"{where} -> {report['audience']}"
    print(f"tessera bench  {report['workload']} {report['mode']}  {dpop}  {where}")
    print(
        f"  processes {report['processes']}, concurrency {report['concurrency']} "
        f"(per process {report['concurrency_per_process']}), warm-up {report['warmup_s']:g} s, "
        f"measured {report['duration_s']:g} s"
    )
    if report["fresh_connections"]:
        print("  a new TCP connection per request")
    print(f"  ok          {report['ok']} (operations completed, warm-up included: "
          f"{report['operations_completed']})")
    print(f"  throughput  {report['throughput_per_s']:.1f} ok/s")
    print(
        f"  latency ms  p50 {fmt(lat['p50'])}  p90 {fmt(lat['p90'])}  p99 {fmt(lat['p99'])}  "
        f"max {fmt(lat['max'])}  (mean {fmt(lat['mean'])})"
    )
    print(f"  errors      {report['errors_total']}")
    for key, count in report["errors"].items():
        print(f"    {count:>8}  {key}")
    for sample in report["error_samples"]:
        print(f"    sample: {sample}")
    for fatal in report["failed_processes"]:
        print("    load-generator process failed:\n" + fatal)
    print(f"  nonce retries {report['nonce_retries']}, in flight at end (not counted) "
          f"{report['in_flight_at_end']}")
    if "server" in report:
        server = report["server"]
        print(f"  server CPU  {server['cpu_ms_per_op']} ms/op ({server['cpu_cores']} cores), "
              f"RSS {server['rss_mb_start']} -> {server['rss_mb_end']} MB "
              f"(pids {server['pids']} and descendants)")


def preflight(cfg: Config) -> tuple[Outcome, Tally]:
    """One operation before the load (a token request, or in ``idjag`` mode one whole round
    trip): checks the configuration, learns the DPoP nonces and, for introspection, yields the
    token to introspect."""

    async def once() -> tuple[Outcome, Tally]:
        tally = Tally()
        # the token to introspect is DPoP-bound too, unless --no-dpop
        signers = worker_signers(replace(cfg, mode="token") if cfg.mode == "introspect" else cfg)
        wire = Wire.of(cfg)
        conn, redeem_conn = open_connections(cfg, wire)
        try:
            if cfg.mode == "idjag":
                outcome = await idjag_round_trip(
                    (conn, redeem_conn), wire, cfg, tally, (signers[0], signers[1]))
            elif cfg.mode == "saml":
                outcome = await request_saml(conn, wire)
            else:
                outcome = await request_token(conn, wire, tally, signers[0] if signers else None)
        except TRANSPORT_ERRORS as exc:
            outcome = _exchange_failure(exc, cfg.timeout)
        finally:
            conn.close()
            redeem_conn.close()
        return outcome, tally

    return asyncio.run(once())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load generator for tessera's token (W1) and introspection (W3) endpoints, "
        "the ID-JAG round trip (W2) and SAML assertions out (W5). Targets a running server on "
        "loopback only.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--issuer", required=True,
                        help="tenant issuer, e.g. http://127.0.0.1:8000/t/demo "
                        "(idjag: the IdP tenant)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--mode", choices=sorted(WORKLOADS), default="token",
                        help="token: W1 client credentials; idjag: W2 token exchange for an "
                        "ID-JAG + jwt-bearer redemption; introspect: W3 introspection; saml: "
                        "W5 token exchange of --id-token for a SAML assertion for --audience")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="keep-alive connections (one worker each), over all processes")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first")
    parser.add_argument("--processes", type=int, default=1,
                        help="load-generator processes, each with concurrency/N connections")
    parser.add_argument("--no-dpop", action="store_true", help="plain Bearer tokens, no proofs")
    parser.add_argument("--scope", help="scope parameter of the token request")
    parser.add_argument("--resource", action="append",
                        help="resource indicator (RFC 8707) of the token request; repeatable")
    idjag = parser.add_argument_group("idjag mode (all required with --mode idjag)")
    idjag.add_argument("--audience",
                       help="issuer of the resource tenant, e.g. http://127.0.0.1:8000/t/pricing "
                       "(saml: the legacy app's entity ID)")
    idjag.add_argument("--resource-client-id", help="the agent's client at the audience")
    idjag.add_argument("--resource-client-secret")
    idjag.add_argument("--id-token", help="ID token of a user, issued by --issuer to --client-id "
                       "(also saml)")
    parser.add_argument("--token-url", help="token endpoint (default: {issuer}/token)")
    parser.add_argument("--introspect-url",
                        help="introspection endpoint (default: {issuer}/introspect; node "
                        "oidc-provider: {issuer}/token/introspection)")
    parser.add_argument("--fresh-connections", action="store_true",
                        help="a new TCP connection per request (Connection: close) instead of "
                        "keep-alive")
    parser.add_argument("--client-closes", action="store_true",
                        help="with --fresh-connections: ask for keep-alive and close the "
                        "connection from the client side after each response (default: send "
                        "Connection: close, the server closes)")
    parser.add_argument("--requests", type=int, default=0,
                        help="stop once this many operations completed, warm-up included (the "
                        "duration is then the longest run); only with --processes 1")
    parser.add_argument("--cpu-pid", type=int, action="append",
                        help="server process whose CPU time (utime + stime, with its "
                        "descendants) over the measured window is reported per operation, "
                        "with its RSS; repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.client_closes and not args.fresh_connections:
        parser.error("--client-closes needs --fresh-connections")
    if args.requests and args.processes != 1:
        parser.error("--requests needs --processes 1")
    idjag_options = ("audience", "resource_client_id", "resource_client_secret", "id_token")
    if args.mode == "saml":
        missing = [f"--{name}" for name in ("audience", "id-token")
                   if not getattr(args, name.replace("-", "_"))]
        given = [f"--{name}" for name in ("resource", "resource-client-id",
                                          "resource-client-secret")
                 if getattr(args, name.replace("-", "_"))]
        if missing:
            parser.error(f"--mode saml requires {', '.join(missing)}")
        if given:
            parser.error(f"{', '.join(given)}: not used by --mode saml")
    elif args.mode == "idjag":
        missing = [f"--{name.replace('_', '-')}" for name in idjag_options
                   if not getattr(args, name)]
        if missing:
            parser.error(f"--mode idjag requires {', '.join(missing)}")
        if args.no_dpop:
            parser.error("--mode idjag always uses DPoP: --no-dpop does not apply")
        if args.resource:
            parser.error("--mode idjag does not send --resource")
    else:
        given = [f"--{name.replace('_', '-')}" for name in idjag_options if getattr(args, name)]
        if given:
            parser.error(f"{', '.join(given)}: only used by --mode idjag")
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.concurrency < args.processes:
        parser.error("--concurrency must be at least --processes")
    if not args.duration > 0 or not args.warmup >= 0:
        parser.error("--duration must be > 0 and --warmup >= 0")
    return args


def refuse_non_loopback(what: str, url: str) -> bool:
    """Print why and return True unless ``url`` is an http(s) URL on a loopback host."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and is_loopback_host(parts.hostname):
        return False
    print(
        f"refusing to run: {what} {url!r} is not an http(s) URL on a loopback host "
        "(127.0.0.0/8, ::1 or localhost)",
        file=sys.stderr,
    )
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if refuse_non_loopback("issuer", args.issuer):
        return 2
    if args.mode == "idjag" and refuse_non_loopback("audience", args.audience):
        return 2
    for what in ("token_url", "introspect_url"):
        url = getattr(args, what)
        if url and refuse_non_loopback(what.replace("_", " "), url):
            return 2
    issuer = args.issuer.rstrip("/")
    form: list[tuple[str, str]] = [("grant_type", "client_credentials")]
    if args.mode == "idjag":
        form = [
            ("grant_type", TOKEN_EXCHANGE),
            ("requested_token_type", ID_JAG_TYPE),
            ("audience", args.audience),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("subject_token", args.id_token),
        ]
    elif args.mode == "saml":
        form = [
            ("grant_type", TOKEN_EXCHANGE),
            ("requested_token_type", SAML2_TYPE),
            ("audience", args.audience),
            ("subject_token_type", ID_TOKEN_TYPE),
            ("subject_token", args.id_token),
        ]
    if args.scope:
        form.append(("scope", args.scope))
    form.extend(("resource", resource) for resource in args.resource or ())
    redeem_url = redeem_authorization = ""
    if args.mode == "idjag":
        redeem_url = f"{args.audience.rstrip('/')}/token"
        redeem_authorization = basic_authorization(args.resource_client_id,
                                                   args.resource_client_secret)
    cfg = Config(
        mode=args.mode,
        token_url=args.token_url or f"{issuer}/token",
        introspect_url=args.introspect_url or f"{issuer}/introspect",
        authorization=basic_authorization(args.client_id, args.client_secret),
        token_body=urlencode(form).encode("ascii"),
        dpop=not args.no_dpop and args.mode != "saml",
        warmup=args.warmup,
        duration=args.duration,
        timeout=10.0,
        redeem_url=redeem_url,
        redeem_authorization=redeem_authorization,
        fresh_connections=args.fresh_connections,
        client_closes=args.client_closes,
        max_requests=args.requests,
    )
    outcome, tally = preflight(cfg)
    if not outcome.ok:
        what = {"idjag": "ID-JAG round trip", "saml": "SAML exchange"}.get(cfg.mode,
                                                                           "token request")
        print(f"preflight {what} failed: {outcome.key}: {outcome.sample[:SAMPLE_CHARS]}",
              file=sys.stderr)
        return 1
    cfg = replace(cfg, introspect_token=outcome.access_token, initial_nonce=tally.nonce,
                  initial_nonces=tuple(tally.nonces.items()))
    report = summarise(cfg, args, run_processes(cfg, args.concurrency, args.processes,
                                                tuple(args.cpu_pid or ())))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return 0 if report["ok"] > 0 and report["errors_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

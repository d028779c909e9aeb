"""Where a request's TLS client certificate comes from, and the one place that decides it.

Two sources, one answer per request (``client_certificate``):

* tessera terminates TLS itself: the ASGI TLS extension
  (``scope["extensions"]["tls"]["client_cert_chain"]``, leaf first, PEM). Hypercorn 0.18 does
  not fill it; ``broker.hypercorn_tls`` does, from the connection's ``ssl_object``. OpenSSL
  has already verified the chain against ``--ca-certs`` during the handshake.
* a TLS-terminating proxy forwards the certificate in RFC 9440 ``Client-Cert``. The header
  counts only when the peer address is one of ``Settings.trusted_proxies`` (and then it wins
  over the TLS extension, which would name the proxy's own certificate); the proxy verified the
  chain. From anyone else it is ignored.

``ClientCertMiddleware`` reads both once, strips ``Client-Cert`` and ``Client-Cert-Chain``
from every request (nothing downstream can see a forged one) and leaves the result in the
scope; parsing happens only when an endpoint asks.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters import mtls
from adapters.errors import InvalidRequest, InvalidToken
from broker.runtime import ClientView

log = logging.getLogger("tessera")

SCOPE_KEY = "tessera.client_cert"
STRIPPED = (b"client-cert", b"client-cert-chain")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """IP addresses and CIDR blocks; ``ValueError`` names a bad entry."""
    out = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ValueError(f"trusted_proxies: {value!r} is not an IP address or CIDR") from exc
    return tuple(out)


def is_trusted(peer: Any, networks: tuple[Network, ...]) -> bool:
    if not networks or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]))
    except (ValueError, IndexError, TypeError):
        return False
    return any(address in net for net in networks)


@dataclass
class Presented:
    """The raw certificate as it arrived; parsed once, on first use."""

    source: str  # "tls" (PEM from the TLS extension) or "header" (RFC 9440 value)
    raw: str
    _parsed: x509.Certificate | None = None
    _failed: bool = False

    def certificate(self) -> x509.Certificate | None:
        if self._parsed is None and not self._failed:
            try:
                self._parsed = (mtls.load_certificate(self.raw) if self.source == "tls"
                                else mtls.parse_client_cert_header(self.raw))
            except mtls.CertificateError as exc:
                log.warning("unusable client certificate from %s: %s", self.source, exc)
                self._failed = True
        return self._parsed


class ClientCertMiddleware:
    """Pure ASGI: decide the request's certificate source, strip the proxy headers."""

    def __init__(self, app: ASGIApp, trusted_proxies: Iterable[str] = ()) -> None:
        self.app = app
        self.networks = trusted_networks(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            forwarded: list[bytes] = []
            headers = scope.get("headers") or []
            if any(name in STRIPPED for name, _ in headers):
                forwarded = [v for n, v in headers if n == b"client-cert"]
                scope["headers"] = [(n, v) for n, v in headers if n not in STRIPPED]
            scope[SCOPE_KEY] = self._presented(scope, forwarded)
        await self.app(scope, receive, send)

    def _presented(self, scope: Scope, forwarded: list[bytes]) -> Presented | None:
        if forwarded and is_trusted(scope.get("client"), self.networks):
            if len(forwarded) != 1:
                log.warning("trusted proxy sent %d Client-Cert headers; ignored", len(forwarded))
                return None
            return Presented("header", forwarded[0].decode("latin-1"))
        chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain")
        if chain:
            return Presented("tls", str(next(iter(chain))))
        return None


def client_certificate(request: Request) -> x509.Certificate | None:
    """The request's client certificate (see the module docstring), or None."""
    presented = request.scope.get(SCOPE_KEY)
    return presented.certificate() if isinstance(presented, Presented) else None


def binding_thumbprint(request: Request, client: ClientView) -> str | None:
    """RFC 8705 §3: the ``x5t#S256`` to bind this client's tokens to, when it registered
    ``tls_client_certificate_bound_access_tokens``; such a client must present a certificate."""
    if not client.tls_client_certificate_bound_access_tokens:
        return None
    cert = client_certificate(request)
    if cert is None:
        raise InvalidRequest("this client's tokens are bound to its TLS client certificate: "
                             "present one")
    return mtls.x5t_s256(cert)


def check_bound_token(request: Request, claims: dict[str, Any]) -> None:
    """A resource's check of a certificate-bound token (RFC 8705 §3): the request's
    certificate must be the one the token names; ``InvalidToken`` otherwise."""
    expected = (claims.get("cnf") or {}).get("x5t#S256")
    if expected is None:
        return
    cert = client_certificate(request)
    if cert is None:
        raise InvalidToken("certificate-bound token presented without a client certificate")
    if not hmac.compare_digest(mtls.x5t_s256(cert), str(expected)):
        raise InvalidToken("certificate-bound token presented with another certificate")

"""ASGI middleware protecting any ASGI app (Starlette, FastMCP's app) with tessera's access
tokens, through a ``TokenVerifier``.

It answers the RFC 9728 metadata at the resource's well-known URL itself
(``/.well-known/oauth-protected-resource`` + the resource's path, §3.1) unless the resource
names tessera's copy, and refuses with RFC 6750 §3 / RFC 9449 §7.1 challenges:

    401  WWW-Authenticate: Bearer resource_metadata="...", error="invalid_token", ...
    403  WWW-Authenticate: Bearer resource_metadata="...", error="insufficient_scope",
         scope="mcp:read"

A request without credentials gets the challenge without ``error`` (RFC 6750 §3.1). The
verified token is put in ``scope["state"]["tessera_token"]`` (``request.state.tessera_token``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from adapters.dpop import SUPPORTED_ALGS
from broker.resource_server.verifier import Refusal, ResourceConfig, TokenVerifier

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
METADATA = "/.well-known/oauth-protected-resource"


def _quoted(value: str) -> str:
    clean = "".join(c for c in value if c >= " " and c != "\x7f")
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def metadata_url(config: ResourceConfig) -> str:
    if config.resource_metadata:
        return config.resource_metadata
    parts = urlsplit(config.resource)
    return f"{parts.scheme}://{parts.netloc}{METADATA}{parts.path.rstrip('/')}"


def www_authenticate(config: ResourceConfig, refusal: Refusal | None) -> str:
    """The challenges: Bearer always names ``resource_metadata``; DPoP names its algs. Only the
    scheme the request used carries the error."""
    def params(scheme: str) -> str:
        items: dict[str, str] = {}
        if scheme == "Bearer":
            items["resource_metadata"] = metadata_url(config)
        else:
            items["algs"] = " ".join(sorted(SUPPORTED_ALGS))
        if refusal is not None and refusal.scheme == scheme and refusal.status in (401, 403):
            items["error"] = refusal.error
            items["error_description"] = refusal.description
            if refusal.scope:
                items["scope"] = refusal.scope
        elif scheme == "Bearer" and config.required_scopes:
            items["scope"] = " ".join(config.required_scopes)
        return scheme + " " + ", ".join(f"{k}={_quoted(v)}" for k, v in items.items())

    return f"{params('Bearer')}, {params('DPoP')}"


def protected_resource_metadata(config: ResourceConfig, *, dpop_required: bool = False
                                ) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "resource": config.resource,
        "authorization_servers": [config.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(config.scopes_supported or config.required_scopes),
    }
    if config.resource_name:
        doc["resource_name"] = config.resource_name
    if dpop_required:
        doc["dpop_bound_access_tokens_required"] = True
    return doc


CertThumbprint = Callable[[Scope], str | None]


class TesseraAuthMiddleware:
    def __init__(self, app: ASGIApp, verifier: TokenVerifier, *,
                 public_paths: tuple[str, ...] = (), public_base: str | None = None,
                 cert_thumbprint: CertThumbprint | None = None,
                 dpop_required: bool = False) -> None:
        self.app, self.verifier, self.public_paths = app, verifier, public_paths
        self.public_base = public_base.rstrip("/") if public_base else None
        self.cert_thumbprint, self.dpop_required = cert_thumbprint, dpop_required
        own = urlsplit(metadata_url(verifier.config))
        resource = urlsplit(verifier.config.resource)
        self.metadata_path = own.path if own.netloc == resource.netloc else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == self.metadata_path and scope.get("method") in ("GET", "HEAD"):
            doc = protected_resource_metadata(self.verifier.config,
                                              dpop_required=self.dpop_required)
            await _send(send, 200, doc, {"cache-control": "public, max-age=300",
                                         "access-control-allow-origin": "*"})
            return
        if path in self.public_paths or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        config = self.verifier.config
        headers = _headers(scope)
        try:
            credentials = _credentials(headers)
            if credentials is None:
                await _send(send, 401, {"error": "invalid_token",
                                        "error_description": "authorization required"},
                            {"www-authenticate": www_authenticate(config, None)})
                return
            scheme, token = credentials
            proofs = headers.get("dpop", [])
            if len(proofs) > 1:
                raise Refusal(400, "invalid_dpop_proof", "one DPoP header", "DPoP")
            verified = await self.verifier.verify(
                token, scheme=scheme, method=scope.get("method", "GET"), url=self._url(scope),
                dpop_proof=proofs[0] if proofs else None,
                cert_thumbprint=self.cert_thumbprint(scope) if self.cert_thumbprint else None)
        except Refusal as refusal:
            extra = {"www-authenticate": www_authenticate(config, refusal)}
            if refusal.status == 503:
                extra = {"retry-after": "5"}
            await _send(send, refusal.status, {"error": refusal.error,
                                               "error_description": refusal.description},
                        extra)
            return
        scope.setdefault("state", {})["tessera_token"] = verified
        await self.app(scope, receive, send)

    def _url(self, scope: Scope) -> str:
        path = scope.get("path", "/")
        if self.public_base:
            return self.public_base + path
        host = _headers(scope).get("host", [""])[0]
        return f"{scope.get('scheme', 'http')}://{host}{path}"


def _headers(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


def _credentials(headers: Mapping[str, list[str]]) -> tuple[str, str] | None:
    values = headers.get("authorization", [])
    if not values:
        return None
    if len(values) > 1 or len(values[0]) > 8_192:
        raise Refusal(400, "invalid_request", "one Authorization header, of bounded size")
    scheme, _, token = values[0].partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "dpop") or not token or " " in token:
        raise Refusal(400, "invalid_request", "use Authorization: Bearer or DPoP")
    return scheme.lower(), token


async def _send(send: Send, status: int, body: Mapping[str, Any],
                headers: Mapping[str, str]) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
           (b"cache-control", b"no-store")]
    raw = [h for h in raw if h[0].decode() not in headers]
    raw += [(k.encode(), v.encode("latin-1", "replace")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})

"""OAuth Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): a
``client_id`` that is an https URL names a JSON document, fetched by the authorization server,
that describes the client. MCP clients and authorization servers SHOULD support them.

A tenant opts in (setting ``client_id_metadata_documents``; discovery then says
``client_id_metadata_document_supported``). The rules, each a refusal (the client is then
unknown: ``invalid_client`` at the token endpoint, an error page at /authorize):

  the URL: https (http to loopback only in development), a path other than "/", no fragment,
  no userinfo, no dot segments · fetched through the registry's SSRF guards (every resolved
  address public, bounded size and time, no redirects beyond the guarded ones) · a JSON
  object whose ``client_id`` is exactly the URL · no ``client_secret`` and no shared-secret
  method: ``token_endpoint_auth_method`` ``none`` (default) or ``private_key_jwt`` with an
  inline ``jwks`` · ``redirect_uris`` a list of URIs the usual redirect rules accept.

A document client is never first-party (consent is asked) and has no registered audiences:
a resource server lets it in only when it allows any client. Documents are cached for
``TTL`` seconds, refusals for ``NEGATIVE_TTL``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from registry.remote_keys import RemoteKeyError, RemoteKeys
from tenants import clients
from tenants.directory import DirectoryError

TTL = 300.0
NEGATIVE_TTL = 30.0
MAX_BYTES = 16_384
MAX_CACHED = 1_000
METHODS = ("none", "private_key_jwt")
MEDIA = frozenset({"application/json"})


class DocumentError(Exception):
    """The URL or its document is not a usable client."""


@dataclass(frozen=True)
class DocumentClient:
    client_id: str
    name: str
    auth_method: str
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    scopes: tuple[str, ...]


def is_document_url(client_id: str) -> bool:
    return client_id.startswith(("https://", "http://"))


def check_client_id_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise DocumentError("client_id URL must be https")
    if parts.fragment or "#" in url or parts.username or parts.password:
        raise DocumentError("client_id URL must carry no fragment or userinfo")
    if parts.path in ("", "/"):
        raise DocumentError("client_id URL must have a path")
    if any(seg in (".", "..") for seg in parts.path.split("/")):
        raise DocumentError("client_id URL must have no dot segments")
    if len(url) > 2000:
        raise DocumentError("client_id URL too long")


def parse(url: str, body: bytes) -> DocumentClient:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DocumentError("the client metadata document is not JSON") from None
    if not isinstance(doc, dict):
        raise DocumentError("the client metadata document is not a JSON object")
    if doc.get("client_id") != url:
        raise DocumentError("the document's client_id is not its URL")
    if "client_secret" in doc or "client_secret_expires_at" in doc:
        raise DocumentError("a client metadata document must not carry a secret")
    method = doc.get("token_endpoint_auth_method", "none")
    if method not in METHODS:
        raise DocumentError(f"token_endpoint_auth_method must be one of {', '.join(METHODS)}")
    jwks = doc.get("jwks")
    if method == "private_key_jwt" and not (isinstance(jwks, dict)
                                            and isinstance(jwks.get("keys"), list)):
        raise DocumentError("private_key_jwt needs an inline jwks")
    uris = doc.get("redirect_uris", [])
    if not isinstance(uris, list) or len(uris) > 20 or not all(
            isinstance(u, str) for u in uris):
        raise DocumentError("redirect_uris must be a list of URIs")
    try:
        for uri in uris:
            clients.check_redirect_uri(uri)
    except DirectoryError as exc:
        raise DocumentError(f"redirect_uris: {exc}") from None
    scope = doc.get("scope", "openid")
    name = doc.get("client_name", url)
    return DocumentClient(
        url, name[:200] if isinstance(name, str) else url, method,
        jwks if method == "private_key_jwt" else None, tuple(uris),
        tuple(str(scope).split()) if isinstance(scope, str) else ("openid",))


class DocumentClients:
    """Fetched documents by URL, through ``RemoteKeys``' guarded fetch."""

    def __init__(self, remote: RemoteKeys) -> None:
        self.remote = remote
        self._cache: dict[str, tuple[float, DocumentClient | None]] = {}

    async def resolve(self, url: str, now: float) -> DocumentClient | None:
        hit = self._cache.get(url)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            check_client_id_url(url)
            await self.remote.check_target(url)
            body = await self.remote.fetch_document(url, media_types=MEDIA, max_bytes=MAX_BYTES)
            found: DocumentClient | None = parse(url, body)
        except (DocumentError, RemoteKeyError, ValueError):  # ValueError: urlsplit's, hostile
            found = None
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[url] = (now + (TTL if found else NEGATIVE_TTL), found)
        return found

"""Resource servers of a tenant (RFC 8707 resource indicators, RFC 9728 protected resource
metadata): what a token for a registered resource may carry.

Pure rules, no I/O; ``broker.runtime.Broker.resource_server`` reads a row into a
``ResourceServer``. Who calls which rule:
  jwt-bearer (ID-JAG redemption)   ``allows_client`` · ``resolve_scope`` · ``check_binding``
  client_credentials               ``allows_client`` · ``check_binding``
  /t/{tenant}/resources/{name}/... ``protected_resource_metadata``
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.errors import InvalidRequest, InvalidScope

METADATA_PATH = "/.well-known/oauth-protected-resource"


@dataclass(frozen=True, slots=True)
class ResourceServer:
    tenant_id: str
    name: str
    identifier: str
    display_name: str
    scopes: Mapping[str, str]  # scope -> description
    default_scopes: tuple[str, ...]
    allowed_clients: frozenset[str]  # empty: any client of the tenant
    access_token_lifetime: int
    require_dpop: bool
    require_mtls: bool

    def allows_client(self, client_id: str) -> bool:
        return not self.allowed_clients or client_id in self.allowed_clients


def resolve_scope(rs: ResourceServer, requested: Sequence[str] | None,
                  ceiling: frozenset[str] | None = None) -> tuple[str, ...]:
    """RFC 6749 §3.3 against the resource's registered scopes: every requested scope must be
    one the resource defines (and within ``ceiling``), else ``invalid_scope``; nothing
    requested gets the resource's default scopes, and no default is ``invalid_scope`` too."""
    wanted = tuple(dict.fromkeys(requested or ()))
    if not wanted:
        if not rs.default_scopes:
            raise InvalidScope(f"no scope requested and resource {rs.identifier} has no "
                               "default scope")
        wanted = rs.default_scopes
    unknown = [s for s in wanted if s not in rs.scopes]
    if unknown:
        raise InvalidScope(f"scope not defined by resource {rs.identifier}: "
                           f"{' '.join(unknown)}")
    beyond = [s for s in wanted if ceiling is not None and s not in ceiling]
    if beyond:
        raise InvalidScope(f"scope beyond what this tenant accepts from the issuer: "
                           f"{' '.join(beyond)}")
    return wanted


def check_binding(rs: ResourceServer, *, dpop_jkt: str | None, x5t: str | None) -> None:
    """The sender constraint the resource requires (RFC 9449, RFC 8705 §3)."""
    if rs.require_dpop and dpop_jkt is None:
        raise InvalidRequest(f"resource {rs.identifier} accepts only DPoP-bound access "
                             "tokens: send a DPoP proof")
    if rs.require_mtls and x5t is None:
        raise InvalidRequest(f"resource {rs.identifier} accepts only certificate-bound access "
                             "tokens: present a TLS client certificate")


def certificate_binding(targets: Sequence[ResourceServer], registered: str | None,
                        presented: str | None) -> str | None:
    """The ``x5t#S256`` to bind the token to: the client's registration asks for it, or a
    resource requires it and the client presented a certificate (RFC 8705 §3)."""
    if registered is not None:
        return registered
    return presented if any(rs.require_mtls for rs in targets) else None


def protected_resource_metadata(rs: ResourceServer, issuer: str) -> dict[str, Any]:
    """RFC 9728 §2: the resource's metadata, naming this tenant as its authorization server.
    No ``jwks_uri`` or ``resource_signing_alg_values_supported``: those name keys the resource
    itself signs its responses with, which tessera does not know (the tenant's JWKS, which
    verifies the access tokens, is found through the authorization server's metadata)."""
    doc: dict[str, Any] = {
        "resource": rs.identifier,
        "authorization_servers": [issuer],
        "scopes_supported": sorted(rs.scopes),
        "bearer_methods_supported": ["header"],
        "resource_name": rs.display_name,
    }
    if rs.require_dpop:
        doc["dpop_bound_access_tokens_required"] = True
        doc["dpop_signing_alg_values_supported"] = ["ES256", "EdDSA", "RS256", "PS256"]
    if rs.require_mtls:
        doc["tls_client_certificate_bound_access_tokens"] = True
    return doc


def metadata_url(identifier: str) -> str:
    """RFC 9728 §3.1: the well-known URL of an identifier (inserted between host and path)."""
    scheme, _, rest = identifier.partition("://")
    host, slash, path = rest.partition("/")
    path = (slash + path).rstrip("/")
    return f"{scheme}://{host}{METADATA_PATH}{path}"

"""The resource-server toolkit: what an API or an MCP server needs to accept tessera's access
tokens without calling tessera on every request.

    keys.py       the tenant's JWKS, cached, refetched on an unknown ``kid`` (key rotation)
    feed.py       the signed revocation feed, pulled with ETag; bounded staleness
    verifier.py   one token check: signature, ``iss``, ``aud`` = the resource, expiry,
                  revocation, DPoP proof and ``ath`` or mTLS binding, scopes; optional
                  introspection with a short cache
    asgi.py       ASGI middleware (Starlette or any ASGI app): 401/403 with WWW-Authenticate
                  ``resource_metadata``/``error``/``scope``, RFC 9728 metadata served
    mcp_sdk.py    a ``TokenVerifier`` for the Python ``mcp`` SDK's FastMCP

It imports nothing of the broker's runtime (no database): a resource server runs it in its own
process and talks to tessera over HTTP only.
"""

from broker.resource_server.feed import RevocationFeed
from broker.resource_server.keys import RemoteJWKS
from broker.resource_server.verifier import Refusal, ResourceConfig, TokenVerifier, Verified

__all__ = ["Refusal", "RemoteJWKS", "ResourceConfig", "RevocationFeed", "TokenVerifier",
           "Verified"]

"""An MCP server (the Python ``mcp`` SDK's MCPServer, formerly FastMCP) protected by tessera's
resource-server toolkit: ``python -m tests.peers.mcp.server`` with

    MCP_ISSUER   the tessera tenant that issues its tokens (its authorization server)
    MCP_PORT     the loopback port to listen on; the resource is http://127.0.0.1:PORT/mcp
    MCP_POLL     revocation feed poll interval, seconds (the staleness bound; default 15)

One tool, ``whoami``, answers who the token names. Protected resource metadata (RFC 9728) is
the SDK's, at /.well-known/oauth-protected-resource/mcp, naming MCP_ISSUER.
"""

from __future__ import annotations

import os

import httpx
import uvicorn
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from broker.resource_server import RemoteJWKS, ResourceConfig, RevocationFeed, TokenVerifier
from broker.resource_server.mcp_sdk import TesseraTokenVerifier

SCOPE = "mcp:tools"


def build() -> tuple[MCPServer, int]:
    issuer, port = os.environ["MCP_ISSUER"], int(os.environ["MCP_PORT"])
    resource = f"http://127.0.0.1:{port}/mcp"
    http = httpx.AsyncClient(timeout=5.0)
    jwks = RemoteJWKS(f"{issuer}/jwks", http)
    feed = RevocationFeed(issuer, http, jwks, poll_interval=float(os.environ.get("MCP_POLL", 15)))
    verifier = TokenVerifier(ResourceConfig(resource, issuer, required_scopes=(SCOPE,)),
                             jwks, feed)
    server = MCPServer(
        "prices", token_verifier=TesseraTokenVerifier(verifier),
        auth=AuthSettings(issuer_url=issuer, resource_server_url=resource,
                          required_scopes=[SCOPE], validate_token_resource=True))

    @server.tool()
    def whoami() -> dict[str, object]:
        """Who the access token names."""
        token = get_access_token()
        assert token is not None
        return {"sub": token.subject, "client_id": token.client_id, "scopes": token.scopes,
                "sub_id": (token.claims or {}).get("sub_id")}

    return server, port


def main() -> None:
    server, port = build()
    app = server.streamable_http_app(host="127.0.0.1")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()

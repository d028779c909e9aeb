"""A ``TokenVerifier`` for the Python ``mcp`` SDK (``FastMCP(token_verifier=...)``), backed by
the toolkit's local check. The SDK hands over only the bearer token, so this verifier accepts
Bearer tokens (a DPoP- or certificate-bound token is refused: protect such a server with
``asgi.TesseraAuthMiddleware`` instead); scopes are the SDK's ``required_scopes`` to enforce.
``mcp`` is imported when the verifier is used, so the toolkit does not depend on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.resource_server.verifier import Refusal, TokenVerifier

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken


class TesseraTokenVerifier:
    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        from mcp.server.auth.provider import AccessToken

        try:
            verified = await self.verifier.verify(token, required_scopes=())
        except Refusal:
            return None
        return AccessToken(token=token, client_id=verified.client_id,
                           scopes=list(verified.scopes), expires_at=verified.expires_at,
                           resource=self.verifier.config.resource, subject=verified.subject,
                           claims={k: verified.claims[k] for k in ("iss", "act", "sub_id")
                                   if k in verified.claims})

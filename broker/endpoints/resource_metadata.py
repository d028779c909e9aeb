"""RFC 9728 Protected Resource Metadata that tessera serves on behalf of a tenant's registered
resource servers: ``{issuer}/resources/{name}/.well-known/oauth-protected-resource``. A resource
server names this URL as ``resource_metadata`` in its 401 ``WWW-Authenticate`` (RFC 9728 §5.1);
the document's ``resource`` is the registered identifier, which the client checks (§3.3)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from adapters.errors import NotFound, OAuthError
from broker.errors import error_response
from broker.json_response import JSONResponse
from broker.resources import protected_resource_metadata
from broker.runtime import Broker


async def resource_metadata(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        tenant = await broker.tenant(request.path_params["tenant"])
        name = request.path_params["name"]
        rs = (await broker.resource_server(tenant.id, name=name)
              if 0 < len(name) <= 64 else None)
        if rs is None:
            raise NotFound("no such resource server")
    except OAuthError as exc:
        return error_response(exc)
    return JSONResponse(protected_resource_metadata(rs, tenant.issuer),
                        headers={"Cache-Control": "public, max-age=300",
                                 "Access-Control-Allow-Origin": "*"})

"""The admin API's HTTP edge: the caller (``broker.admin.callers``: the operator's bearer or
a tenant's admin client), its role and tenant checked against the route's ``roles``
(``broker.admin.roles``) before the body is read, the body read with a size limit by the one
bounded JSON reader (``adapters.json_reader``: size, depth, finite numbers, unique members,
strict UTF-8) and validated by the route's model (a ``400`` naming the field, nothing
written), the handler run as the caller (audit ``actor``), and the answer serialised through
the route's response model.

    401 invalid_token      no or wrong credential (WWW-Authenticate: Bearer, DPoP)
    403 access_denied      the caller's role does not allow the route
    400 invalid_request    body or query refused: ``field`` (and ``errors``) name what; a body
                           over ``max_body_bytes`` or not one JSON object
    404 not_found          the object is not there (or is another tenant's: a tenant-bound
                           caller gets 404 for every path of another tenant)
    409 conflict           a create of what exists already; a change the state does not allow
                           now (the route's ``conflict`` says which; documented in OpenAPI)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from adapters import json_reader
from adapters.errors import InvalidRequest, OAuthError
from broker.admin import callers, dispatch, openapi, roles
from broker.admin.routes import PREFIX, ROUTES, AdminRoute, Call
from broker.errors import NO_STORE, error_response
from broker.json_response import JSONResponse
from broker.runtime import Broker


class UriConvertor(Convertor[str]):
    """``{name:uri}``: a non-empty path segment run that may hold slashes (a decoded URI)."""

    regex = "[^/].*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("uri", UriConvertor())


async def read_bounded(request: Request, limit: int) -> bytes:
    """The body, refused when it is larger than ``limit`` (never buffered whole; what is left
    unread is dropped by ``broker.request_context`` before the answer goes out)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise InvalidRequest(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InvalidRequest(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body(request: Request, route: AdminRoute, broker: Broker) -> BaseModel | None:
    limit = broker.settings.max_body_bytes
    raw = await read_bounded(request, limit)
    if route.request is None:
        return None
    if not raw:
        if dispatch.body_required(route):
            raise InvalidRequest("the body must be one JSON object (none was sent)")
        return dispatch.body_model(route, {}, broker)
    try:
        data = json_reader.load_object(raw, max_bytes=limit)
    except json_reader.JSONInputError as exc:
        raise InvalidRequest(f"the body must be one JSON object: {exc}") from None
    return dispatch.body_model(route, data, broker)


def endpoint(route: AdminRoute) -> Callable[[Request], Awaitable[Response]]:
    adapter = dispatch.response_adapter(route.response)

    async def run(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        try:
            principal = await callers.caller(request, broker)
            params = dict(request.path_params)
            roles.authorize(principal, route.roles, params)
            call = Call(broker, params, await _body(request, route, broker),
                        dispatch.query_model(route, request.query_params, broker),
                        principal=principal)
            result = await dispatch.call(route, call)
        except OAuthError as exc:
            return error_response(exc)
        content = adapter.dump_json(adapter.validate_python(result), by_alias=True)
        return Response(content, status_code=route.status, media_type="application/json",
                        headers=NO_STORE)

    run.__name__ = route.operation_id
    return run


async def openapi_document(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    return JSONResponse(openapi.document(broker.settings.base_url),
                        headers={"Cache-Control": "no-cache"})


def routes() -> list[Route]:
    """Every admin route, and the OpenAPI document (public: the API's shape is no secret)."""
    return [Route(PREFIX + "/openapi.json", openapi_document, methods=["GET"]),
            *(Route(PREFIX + r.path, endpoint(r), methods=[r.method]) for r in ROUTES)]

"""One admin operation run in process: the caller's role checked (``broker.admin.roles``),
the request and query models validated as the HTTP edge validates them (a ``400`` naming the
field, nothing written), the handler run as the caller (audit ``actor``), and the answer
as the JSON the edge would send. ``broker.admin.http`` and the command line's local transport
(``broker.cli.transport``) and the console (``broker.console``) all go through here: one
validation path, one role check.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError

from adapters.errors import Conflict, NotFound
from broker.admin import roles
from broker.admin.errors import validation_error
from broker.admin.routes import ROUTES, AdminRoute, Call
from broker.runtime import Broker
from tenants.audit import acting_as

BY_NAME: dict[str, AdminRoute] = {r.operation_id: r for r in ROUTES}


def context(broker: Broker) -> dict[str, Any]:
    return {"allow_http_loopback": broker.settings.allow_http_loopback}


def body_required(route: AdminRoute) -> bool:
    """A PATCH always needs its JSON object (an empty change is a mistake); another route only
    when its model has a required field. Where it is not required, only a zero-length body
    stands for "no body": whitespace or anything else must be one JSON object."""
    if route.request is None:
        return False
    return route.method == "PATCH" or any(
        f.is_required() for f in route.request.model_fields.values())


def body_model(route: AdminRoute, data: Any, broker: Broker) -> BaseModel | None:
    """``data`` (a decoded JSON object) as the route's request model."""
    if route.request is None:
        return None
    try:
        return route.request.model_validate(data, context=context(broker))
    except ValidationError as exc:
        raise validation_error(exc) from None


def query_model(route: AdminRoute, data: Mapping[str, str], broker: Broker) -> BaseModel | None:
    if route.query is None:
        return None
    try:
        return route.query.model_validate(dict(data), context=context(broker))
    except ValidationError as exc:
        raise validation_error(exc, prefix=("query",)) from None


@functools.cache
def response_adapter(response: Any) -> TypeAdapter[Any]:
    return TypeAdapter(response)


def route_named(operation_id: str) -> AdminRoute:
    try:
        return BY_NAME[operation_id]
    except KeyError:
        raise NotFound(f"no admin operation {operation_id!r}") from None


async def call(route: AdminRoute, call: Call) -> Any:
    """``route``'s handler for ``call`` once its principal may (``roles.authorize``: a
    refusal before anything runs), with audit events naming the principal. A route that
    declares a ``conflict`` answers a unique constraint the database enforced (a concurrent
    request wrote the same name or id between the handler's check and its commit) as that
    409, not a 500; nothing of this request was written."""
    roles.authorize(call.principal, route.roles, call.params)
    with acting_as(call.principal.actor):
        try:
            return await route.handler(call)
        except IntegrityError:
            if not route.conflict:
                raise
            raise Conflict(route.conflict) from None


async def run(broker: Broker, operation_id: str, params: Mapping[str, str], *,
              body: Any = None, query: Mapping[str, str] | None = None,
              principal: roles.AdminPrincipal) -> Any:
    """The operation's answer as plain JSON values (what ``GET``/``POST`` over HTTP returns),
    run as ``principal`` (the command line: ``roles.CLI``; the console: the signed-in user)."""
    route = route_named(operation_id)
    roles.authorize(principal, route.roles, params)  # before the body is even looked at
    request = Call(broker, dict(params),
                   body_model(route, body if body is not None else {}, broker),
                   query_model(route, query or {}, broker), principal=principal)
    result = await call(route, request)
    adapter = response_adapter(route.response)
    return adapter.dump_python(adapter.validate_python(result), mode="json", by_alias=True)

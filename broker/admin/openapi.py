"""The admin API's OpenAPI 3.1 document, generated from the route table
(``broker.admin.routes``) and its pydantic models: one operation per route with its request
body, query and path parameters, the success answer and the refusals (``ErrorOut``), links
from each create operation to the operations on what it created (stateful testing), and the
admin bearer as the security scheme. Served at ``GET /admin/v1/openapi.json``."""

from __future__ import annotations

import functools
import re
from importlib import metadata
from typing import Any

from pydantic import TypeAdapter

from broker.admin import dispatch
from broker.admin.models.common import ErrorOut
from broker.admin.routes import PATH_PARAMETERS, PREFIX, ROUTES, AdminRoute

REF = "#/components/schemas/{model}"
PARAM = re.compile(r"{([a-z_]+)(?::uri)?}")


def template(path: str) -> str:
    """A Starlette path as an OpenAPI path template (``{x:uri}`` -> ``{x}``)."""
    return PREFIX + PARAM.sub(r"{\1}", path)


def path_parameters(path: str) -> list[str]:
    return PARAM.findall(path)


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": REF.format(model="ErrorOut")}}}}


def _links(route: AdminRoute) -> dict[str, Any]:
    """From a create operation to every operation on what it made: the operations whose path
    parameters are the creator's own plus those its answer names (``creates``)."""
    if not route.creates:
        return {}
    made = dict(route.creates)
    own = set(path_parameters(route.path))
    links = {}
    for other in ROUTES:
        wanted = set(path_parameters(other.path))
        if other is not route and wanted & set(made) and wanted <= own | set(made):
            links[other.operation_id] = {"operationId": other.operation_id, "parameters": {
                p: (f"$response.body#/{made[p]}" if p in made else f"$request.path.{p}")
                for p in wanted}}
    return links


def _operation(route: AdminRoute, schemas: dict[Any, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id, "summary": route.summary, "tags": [route.tag],
        "parameters": [],
        "responses": {
            str(route.status): {"description": route.summary, "content": {"application/json": {
                "schema": schemas[(("response", route.operation_id), "serialization")]}}},
            "400": _error("refused: the field and why"),
            "401": _error("no or wrong credential"),
            "403": _error("the caller's role does not allow this operation"),
            "404": _error("no such object (in this tenant; any path of another tenant)"),
        },
        "x-tessera-roles": ["operator", *sorted(route.roles)],
    }
    if route.conflict:
        op["responses"]["409"] = _error(f"conflict: {route.conflict}")
    for name in path_parameters(route.path):
        kind, description = PATH_PARAMETERS[name]
        op["parameters"].append({"name": name, "in": "path", "required": True,
                                 "description": description,
                                 "schema": TypeAdapter(kind).json_schema()})
    if route.query is not None:
        for name, field in route.query.model_fields.items():
            schema = TypeAdapter(field.annotation).json_schema()
            op["parameters"].append({"name": name, "in": "query", "required": False,
                                     "schema": schema})
    if route.request is not None:
        op["requestBody"] = {"required": dispatch.body_required(route),
            "content": {"application/json": {
                "schema": schemas[(("request", route.operation_id), "validation")]}}}
    links = _links(route)
    if links:
        op["responses"][str(route.status)]["links"] = links
    return op


def _no_null_defaults(node: Any) -> None:
    """A PATCH field's ``None`` default means "absent"; where null is not allowed, the schema
    must not show it as the default (generators would send it)."""
    if isinstance(node, dict):
        for prop in (node.get("properties") or {}).values():
            if isinstance(prop, dict) and "default" in prop and prop["default"] is None \
                    and not _nullable(prop):
                del prop["default"]
        for value in node.values():
            _no_null_defaults(value)
    elif isinstance(node, list):
        for value in node:
            _no_null_defaults(value)


def _nullable(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "null" or (isinstance(kind, list) and "null" in kind) or any(
        isinstance(s, dict) and s.get("type") == "null" for s in schema.get("anyOf", ()))


def _version() -> str:
    try:
        return metadata.version("tessera")
    except metadata.PackageNotFoundError:  # running from a checkout that is not installed
        return "0"


@functools.cache
def document(base_url: str) -> dict[str, Any]:
    inputs: list[tuple[Any, Any, TypeAdapter[Any]]] = [
        ("ErrorOut", "serialization", TypeAdapter(ErrorOut))]
    for route in ROUTES:
        inputs.append((("response", route.operation_id), "serialization",
                       TypeAdapter(route.response)))
        if route.request is not None:
            inputs.append((("request", route.operation_id), "validation",
                           TypeAdapter(route.request)))
    schemas, top = TypeAdapter.json_schemas(inputs, ref_template=REF)
    components = dict(top.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(template(route.path), {})[route.method.lower()] = _operation(
            route, schemas)
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "tessera admin API", "version": _version(),
                 "description": "Tenants, clients, trust registry, upstream IdPs, legacy "
                 "apps, API keys and runtime control of a tessera broker. Every body is "
                 "validated against its schema; unknown fields are refused."},
        "servers": [{"url": base_url.rstrip("/") or "/"}],
        "security": [{"adminBearer": []}, {"adminClient": []}],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {"adminBearer": {
            "type": "http", "scheme": "bearer",
            "description": "the admin token (tessera admin-token): the operator"},
            "adminClient": {
                "type": "http", "scheme": "DPoP",
                "description": "an access token of an admin client of a tenant (client "
                "credentials at the tenant's token endpoint, resource {issuer}/admin, "
                "DPoP-bound) with its DPoP proof; its roles come from role assignments "
                "(x-tessera-roles lists who may call each operation)"}}},
    }
    _no_null_defaults(doc)
    return doc

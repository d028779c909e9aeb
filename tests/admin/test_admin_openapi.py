"""The OpenAPI document covers the route table: every admin route is an operation with its
request and response models, so a route added without models fails here; the document is
OpenAPI 3.1, served without the admin token, with the bearer security scheme."""

from __future__ import annotations

import re
from typing import Any, get_args, get_origin

import httpx
from pydantic import BaseModel
from starlette.routing import Route

from broker.admin import http as admin_http
from broker.admin.openapi import template
from broker.admin.routes import PATH_PARAMETERS, ROUTES
from broker.app import create_app
from broker.runtime import Broker

BODY_METHODS = ("POST", "PUT", "PATCH")


async def _document(http: httpx.AsyncClient) -> dict[str, Any]:
    r = await http.get("/admin/v1/openapi.json")  # no token: the API's shape is public
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    return dict(r.json())


def _model(response: Any) -> type[BaseModel]:
    """``Model`` or ``list[Model]`` -> ``Model`` (anything else fails the test)."""
    if get_origin(response) is list:
        (response,) = get_args(response)
    assert isinstance(response, type) and issubclass(response, BaseModel), response
    return response


async def test_every_route_is_an_operation_with_its_models(http: httpx.AsyncClient) -> None:
    doc = await _document(http)
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    seen = set()
    for route in ROUTES:
        op = doc["paths"][template(route.path)][route.method.lower()]
        seen.add(op["operationId"])
        assert op["operationId"] == route.operation_id and op["summary"] and op["tags"]
        success = op["responses"][str(route.status)]
        ref = success["content"]["application/json"]["schema"]
        model = _model(route.response)
        if get_origin(route.response) is list:
            assert ref["type"] == "array" and ref["items"]["$ref"].endswith("/" + model.__name__)
        else:
            assert ref["$ref"].endswith("/" + model.__name__)
        assert model.__name__ in schemas
        for code in ("400", "401", "404"):
            assert op["responses"][code]["content"]["application/json"]["schema"][
                "$ref"].endswith("/ErrorOut")
        if route.method in BODY_METHODS:
            assert route.request is not None and issubclass(route.request, BaseModel)
            body = op["requestBody"]["content"]["application/json"]["schema"]
            assert body["$ref"].endswith("/" + route.request.__name__)
            assert schemas[route.request.__name__].get("additionalProperties") is False
        else:
            assert route.request is None and "requestBody" not in op
        names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert names == set(re.findall(r"{([a-z_]+)}", template(route.path)))
        assert names <= set(PATH_PARAMETERS)
    assert len(seen) == len(ROUTES)  # operation ids are unique
    assert sum(len(ops) for ops in doc["paths"].values()) == len(ROUTES)
    assert doc["security"] == [{"adminBearer": []}, {"adminClient": []}]
    assert all(op["x-tessera-roles"][0] == "operator" and "403" in op["responses"]
               for item in doc["paths"].values() for op in item.values())
    assert doc["components"]["securitySchemes"]["adminBearer"] == {
        "type": "http", "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["adminBearer"]["description"]}


async def test_every_served_admin_route_is_in_the_table(broker: Broker) -> None:
    """No admin path is served outside the table (and so outside the document)."""
    app = create_app(broker, background=False, migrate=False)
    served = {(m, r.path) for r in app.routes if isinstance(r, Route)
              and r.path.startswith("/admin/") for m in (r.methods or ()) if m != "HEAD"}
    table = {(r.method, "/admin/v1" + r.path) for r in ROUTES}
    assert served == table | {("GET", "/admin/v1/openapi.json")}
    assert len(admin_http.routes()) == len(ROUTES) + 1


async def test_request_models_refuse_unknown_fields_and_responses_declare_all() -> None:
    for route in ROUTES:
        if route.request is not None:
            assert route.request.model_config.get("extra") == "forbid", route.operation_id
        assert _model(route.response).model_config.get("extra") == "forbid", route.operation_id


async def test_create_operations_link_to_what_they_made(http: httpx.AsyncClient) -> None:
    doc = await _document(http)
    create = doc["paths"]["/admin/v1/tenants/{tenant}/clients"]["post"]
    links = create["responses"]["201"]["links"]
    assert links["get_client"]["parameters"] == {
        "tenant": "$request.path.tenant", "client_id": "$response.body#/client_id"}
    assert {"update_client", "delete_client", "rotate_client_secret"} <= set(links)
    tenant_links = doc["paths"]["/admin/v1/tenants"]["post"]["responses"]["201"]["links"]
    assert tenant_links["update_tenant"]["parameters"] == {"tenant": "$response.body#/id"}


async def test_patch_fields_that_refuse_null_do_not_default_to_it(
    http: httpx.AsyncClient,
) -> None:
    schemas = (await _document(http))["components"]["schemas"]
    patch = schemas["ClientPatch"]["properties"]
    assert "default" not in patch["name"]  # null is refused, absent is "unchanged"
    assert patch["jwks"]["default"] is None  # null clears

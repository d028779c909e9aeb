"""One admin route: method, path (under ``/admin/v1``), handler, summary, tag, request and
response models, status; and the path prefixes the route table (``broker.admin.routes``) uses.

Paths use Starlette's syntax; ``{name:uri}`` takes a non-empty value that may hold slashes
(URIs: audiences, entity IDs), sent percent-encoded (``broker.admin.http`` registers it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from broker.admin.models.common import Empty
from broker.admin.roles import ROLES, AdminPrincipal
from broker.runtime import Broker

PREFIX = "/admin/v1"


@dataclass(frozen=True)
class Call:
    """One admin request as a handler sees it: ``c["tenant"]`` is a path parameter."""

    broker: Broker
    params: Mapping[str, str]
    body: Any = None  # the request model, validated
    query: Any = None  # the query model, validated
    # who calls (``broker.admin.roles``): always named, never a default super-admin
    principal: AdminPrincipal = field(kw_only=True)

    def __getitem__(self, name: str) -> str:
        return self.params[name]


Handler = Callable[[Call], Awaitable[Any]]


@dataclass(frozen=True)
class AdminRoute:
    method: str
    path: str
    operation_id: str
    handler: Handler
    summary: str
    tag: str
    roles: frozenset[str]  # who besides the operator may call it (``broker.admin.roles``)
    request: type[BaseModel] | None = None  # every POST, PUT and PATCH has one (``Empty``)
    response: Any = None
    status: int = 200
    query: type[BaseModel] | None = None
    # what the answer names, as (path parameter, response field): the OpenAPI links
    creates: tuple[tuple[str, str], ...] = ()
    # why it may answer 409 ``conflict`` (``EXISTS``, ``NOT_NOW``); empty: it never does
    conflict: str = ""


# why an operation may answer 409 (the OpenAPI document declares it with this description)
EXISTS = "it exists already (a duplicate create, or a concurrent one that came first)"
NOT_NOW = "not possible now (try again later)"


def route(method: str, path: str, summary: str, tag: str, handler: Handler, *, name: str,
          roles: frozenset[str], request: type[BaseModel] | None = None,
          response: Any = None, status: int = 200, query: type[BaseModel] | None = None,
          creates: tuple[tuple[str, str], ...] = (), conflict: str = "") -> AdminRoute:
    """A row of the table; ``name`` is its OpenAPI operationId, ``roles`` (required) who
    besides the operator may call it (``broker.admin.roles``), ``conflict`` why it may
    answer 409 (``EXISTS``: a create of something that is there already)."""
    if request is None and method in ("POST", "PUT", "PATCH"):
        request = Empty
    if not roles <= ROLES:
        raise ValueError(f"{name}: unknown roles {sorted(roles - ROLES)}")
    return AdminRoute(method, path, name, handler, summary, tag, frozenset(roles), request,
                      response, status, query, creates, conflict)


def status_route(method: str, path: str, summary: str, tag: str, fn: Any, status: str,
                 *keys: str, response: Any, name: str, roles: frozenset[str]) -> AdminRoute:
    """A row that sets a status: ``fn(broker, <path parameters keys>..., status)``."""
    return route(method, path, summary, tag,
                 lambda c: fn(c.broker, *[c[k] for k in keys], status), response=response,
                 name=name, roles=roles)


T = "/tenants/{tenant}"
C = T + "/clients/{client_id}"
P = "/partners/{partner}"
L = T + "/trust-links/{link}"
MC = T + "/managed-connections/{client_id}/{audience:uri}"
U = T + "/upstreams/{upstream}"
K = T + "/api-keys/{key_id}"
A = T + "/agents/{client_id}"
LA = T + "/legacy-apps"

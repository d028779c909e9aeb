"""Where a management command's admin operations run: in this process on the local deployment
(``Local``: the database and master key here, the route's handler called through
``broker.admin.dispatch``, audit actor ``cli``) or on a remote broker over the admin API
(``Remote``: ``--url``/``TESSERA_URL`` and the admin token, nothing local needed). Both take
an operation by its OpenAPI ``operationId`` with the same path parameters and body, so a
command is written once and validated once (by the route's models, wherever it runs).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from adapters.errors import OAuthError
from broker.admin import dispatch, roles
from broker.admin.route import PREFIX
from broker.cli import admin_client
from broker.cli.exits import DENIED, UNAVAILABLE, CliError, for_status
from broker.config import Settings, StartupError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8000
_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


class Transport(Protocol):
    where: str  # "the local deployment" or the remote broker's URL, for messages

    async def call(self, operation_id: str, params: Mapping[str, str] | None = None, *,
                   body: Any = None, query: Mapping[str, str] | None = None) -> Any: ...


@dataclass(frozen=True)
class Job:
    """What a management command does: ``run`` on a transport gives the answer, printed with
    ``columns`` (or ``--json``), or by ``render`` (which returns the exit code)."""

    run: Callable[[Transport], Awaitable[Any]]
    columns: Sequence[str] = ()
    render: Callable[[Any], int] | None = None


def op(operation_id: str, columns: Sequence[str] = (), *, body: Any = None,
       query: Mapping[str, str] | None = None, **params: str) -> Job:
    """A command that is one admin operation."""
    return Job(lambda t: t.call(operation_id, params, body=body, query=query), columns)


@dataclass
class Local:
    broker: Any  # broker.runtime.Broker
    where: str = "the local deployment"

    async def call(self, operation_id: str, params: Mapping[str, str] | None = None, *,
                   body: Any = None, query: Mapping[str, str] | None = None) -> Any:
        try:
            return await dispatch.run(self.broker, operation_id, params or {}, body=body,
                                      query=query, principal=roles.CLI)
        except OAuthError as exc:
            raise CliError(exc.description or exc.error, for_status(exc.status)) from None


@dataclass
class Remote:
    where: str
    client: httpx.AsyncClient
    paths: dict[str, tuple[str, str]] = field(default_factory=dict)

    async def call(self, operation_id: str, params: Mapping[str, str] | None = None, *,
                   body: Any = None, query: Mapping[str, str] | None = None) -> Any:
        route = dispatch.route_named(operation_id)
        values = params or {}
        path = _PARAM.sub(lambda m: quote(str(values[m[1]]), safe=""), route.path)
        try:
            answer = await self.client.request(
                route.method, PREFIX + path,
                json=(body if body is not None else {}) if route.request else None,
                params={k: v for k, v in (query or {}).items() if v is not None})
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.where}: {type(exc).__name__}",
                           UNAVAILABLE) from None
        if answer.status_code >= 400:
            raise CliError(_describe(answer), for_status(answer.status_code))
        try:
            return answer.json()
        except ValueError:
            raise CliError(f"{self.where} did not answer JSON ({answer.status_code})",
                           UNAVAILABLE) from None


def _describe(answer: httpx.Response) -> str:
    try:
        data = answer.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        text = data.get("error_description") or data["error"]
        return str(text)
    return f"HTTP {answer.status_code}"


def remote_url(given: str | None) -> str | None:
    url = given or os.environ.get("TESSERA_URL") or None
    if url is None:
        return None
    if not url.startswith(("https://", "http://")):
        raise CliError(f"--url / TESSERA_URL must be an http(s) URL, not {url[:40]!r}", 2)
    return url.rstrip("/")


async def run_job(job: Job, url: str | None) -> Any:
    """``job`` on the remote broker at ``url``, else on the local deployment."""
    if url is not None:
        return await _remote(job, url)
    return await _local(job)


async def _remote(job: Job, url: str) -> Any:
    """As the operator (the admin token), or as a tenant's admin client where
    ``TESSERA_ADMIN_CLIENT`` names one (``broker.cli.admin_client``)."""
    auth = admin_client.from_environment(url, dict(os.environ))
    headers = {"Accept": "application/json"}
    if auth is None:
        try:
            token = Settings.load().admin_token_value()
        except StartupError:
            raise CliError(f"{url} needs the admin token (TESSERA_ADMIN_TOKEN or "
                           "TESSERA_ADMIN_TOKEN_FILE) or an admin client "
                           "(TESSERA_ADMIN_CLIENT and TESSERA_ADMIN_CLIENT_SECRET)",
                           DENIED) from None
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=url, headers=headers, auth=auth,
                                 timeout=30.0) as client:
        return await job.run(Remote(url, client))


async def _local(job: Job) -> Any:
    """On a broker over the initialised database whose master key this process holds
    (checked before anything runs); ``StartupError`` otherwise."""
    from broker.deployment import Mode, open_deployment
    from broker.runtime import Broker

    settings = Settings.load()
    if not settings.base_url:
        settings = settings.with_base_url(DEFAULT_HOST, DEFAULT_PORT)
    opened = await open_deployment(settings, Mode.USE)
    broker = Broker.build(opened.settings)
    try:
        return await job.run(Local(broker))
    finally:
        await broker.close()


def now() -> float:
    """The command line's clock (expiries given as ``--expires-in``)."""
    return time.time()

"""What an operator sees of each request (pure ASGI middleware, inside the request-id one):

* an access log line (``tessera.access``: method, route, status, duration, request id, tenant,
  client; never the query string, headers or body);
* Prometheus counters and latency (``broker.metrics``), labelled by route template and by the
  tenant the request was resolved to;
* a database that is down or too slow (connect and statement timeouts, see ``tenants.db``)
  becomes ``503 {"error": "temporarily_unavailable"}`` with ``Retry-After`` instead of a 500,
  and is logged once per incident — the first refusal, then one line when it is over with how
  many requests it cost — not once per request.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker import logs, metrics
from tenants.db import is_database_unavailable

RETRY_AFTER: Final = 5
log = logging.getLogger("tessera.database")
QUIET_PATHS: Final = frozenset({"/healthz", "/metrics"})  # neither touches the database


class DatabaseIncident:
    """One incident: from the first refusal until a request gets through again."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.refused = 0

    def failed(self, exc: BaseException) -> None:
        self.refused += 1
        if self.since is None:
            self.since = time.monotonic()
            log.error("database unavailable: %s; answering 503 until it is back",
                      _reason(exc))

    def succeeded(self) -> None:
        if self.since is not None:
            log.warning("database available again after %.1f s; %d requests were answered 503",
                        time.monotonic() - self.since, self.refused)
            self.since, self.refused = None, 0


def _reason(exc: BaseException) -> str:
    """The driver's one-line reason; bound values are hidden by the engines."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [""])[0][:200]
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__


def _unavailable_body(request_id: str | None) -> bytes:
    import json
    return json.dumps({"error": "temporarily_unavailable",
                       "error_description": "the database is unavailable or too slow; try "
                       "again shortly", "request_id": request_id}).encode()


class ObserveMiddleware:
    def __init__(self, app: ASGIApp, incident: DatabaseIncident | None = None) -> None:
        self.app = app
        self.incident = incident or DatabaseIncident()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        context: dict[str, Any] = {"request_id": state.get("request_id")}
        token = logs.bind(context)
        status = 500
        responded = False

        async def watch(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status, responded = int(message["status"]), True
            await send(message)

        try:
            await self.app(scope, receive, watch)
            if scope.get("path") not in QUIET_PATHS and status < 500:
                self.incident.succeeded()
        except Exception as exc:
            if responded or not is_database_unavailable(exc):
                raise
            self.incident.failed(exc)
            metrics.DB_UNAVAILABLE.inc()
            status = 503
            body = _unavailable_body(context.get("request_id"))
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER).encode()),
                (b"cache-control", b"no-store")]})
            await send({"type": "http.response.body", "body": body})
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "(unrouted)"
            tenant = context.get("tenant")
            metrics.observe_request(endpoint, tenant, status, elapsed)
            if context.get("error") and status >= 400:
                metrics.REFUSALS.labels(endpoint, str(context["error"])).inc()
            logs.access_line(scope.get("method") or "", endpoint, status,
                             round(elapsed * 1000, 2))
            logs.unbind(token)

"""Every request's id and the last resort for an unexpected error (RFC 6749 §5.2 error shape).

``RequestContextMiddleware`` (pure ASGI, the outermost of the app's middleware):

* gives every HTTP request an id: the caller's ``X-Request-Id`` when it is one short token of
  safe characters (``SAFE_ID``), else a fresh random one. Handlers read it as ``request_id()``
  (a context variable) or ``request.state.request_id``; every response carries it back in
  ``X-Request-Id``.
* turns an exception no handler caught into ``500`` with a JSON body
  ``{"error": "server_error", "error_description": ..., "request_id": ...}`` and
  ``Cache-Control: no-store``, and logs the traceback once on the ``tessera.server_error``
  logger with the id, the method and the path (never the query, headers or body: they may
  hold credentials). Any other 500 the app answers is logged there too, without traceback.

A 500 is always a bug: bad input gets a 4xx from the handler that understands it. The test
suite fails any test during which the ``tessera.server_error`` logger said something.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from contextvars import ContextVar
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER: Final = b"x-request-id"
SAFE_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
LOGGER: Final = "tessera.server_error"

log = logging.getLogger(LOGGER)
_current: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)


def request_id() -> str | None:
    """The id of the request being handled (None outside a request)."""
    return _current.get()


def _chosen_id(scope: Scope) -> str:
    offered = [value for name, value in scope.get("headers") or () if name == HEADER]
    if len(offered) == 1 and SAFE_ID.fullmatch(offered[0]):
        return offered[0].decode("ascii")
    return secrets.token_hex(8)


def _with_id(message: Message, rid: bytes) -> Message:
    headers = [(k, v) for k, v in message.get("headers") or () if k.lower() != HEADER]
    return {**message, "headers": [*headers, (HEADER, rid)]}


def server_error_body(rid: str) -> bytes:
    return json.dumps({
        "error": "server_error",
        "error_description": "an unexpected error occurred; quote the request id to report it",
        "request_id": rid,
    }).encode()


class RequestContextMiddleware:
    """Pure ASGI: request id in, ``X-Request-Id`` out, JSON 500 for an uncaught exception."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _chosen_id(scope)
        raw_id = rid.encode("ascii")
        scope.setdefault("state", {})["request_id"] = rid
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = _with_id(message, raw_id)
                if message["status"] == 500:
                    log.error("answered 500 to %s %r [request_id=%s]",
                              scope.get("method"), scope.get("path"), rid)
            await send(message)

        token = _current.set(rid)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unexpected error in %s %r [request_id=%s]",
                          scope.get("method"), scope.get("path"), rid)
            if started:  # too late for another answer: let the server drop the connection
                raise
            body = server_error_body(rid)
            await send({"type": "http.response.start", "status": 500, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"), (b"pragma", b"no-cache"), (HEADER, raw_id)]})
            await send({"type": "http.response.body", "body": body})
        finally:
            _current.reset(token)

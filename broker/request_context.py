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

* refuses, before any route sees it, a path holding NUL (``/t/%00/...``: ``404 not_found``)
  or a query string holding ``%00`` (``400 invalid_request``): no tenant, client or
  parameter has one, and PostgreSQL cannot store or even compare it (form bodies and JSON are
  refused the same in ``broker.forms`` and ``adapters.json_reader``).

* reads and drops what is left of a request body the app did not read (an early 401, 404 or
  400) before the answer starts, up to ``DRAIN_LIMIT``: an HTTP/1.1 client sends its whole
  body before it reads, and Hypercorn stops reading a connection whose app has stopped, so
  the client (or its next request on the same connection) would wait forever. A body larger
  than that is left unread and the answer says ``Connection: close``.

A 500 is always a bug: bad input gets a 4xx from the handler that understands it. The test
suite fails any test during which the ``tessera.server_error`` logger said something.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from contextvars import ContextVar
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER: Final = b"x-request-id"
SAFE_ID: Final = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
DRAIN_LIMIT: Final = 8 * 1024 * 1024
LOGGER: Final = "tessera.server_error"

log = logging.getLogger(LOGGER)
_current: ContextVar[str | None] = ContextVar("tessera_request_id", default=None)
_ids = random.Random()  # noqa: S311 (not a secret: see _chosen_id)
if hasattr(os, "register_at_fork"):  # a forked worker draws its own ids, not its parent's
    os.register_at_fork(after_in_child=_ids.seed)


def request_id() -> str | None:
    """The id of the request being handled (None outside a request)."""
    return _current.get()


def _chosen_id(scope: Scope) -> str:
    offered = [value for name, value in scope.get("headers") or () if name == HEADER]
    if len(offered) == 1 and SAFE_ID.fullmatch(offered[0]):
        return offered[0].decode("ascii")
    # 64 random bits from the process's own generator (seeded from os.urandom when each
    # process starts): an id correlates log lines and is no secret (a caller may choose its
    # own), so it does not need secrets' system call per request (~2 us)
    return f"{_ids.getrandbits(64):016x}"


def _with_id(message: Message, rid: bytes) -> Message:
    headers = [(k, v) for k, v in message.get("headers") or () if k.lower() != HEADER]
    return {**message, "headers": [*headers, (HEADER, rid)]}


def _nul_refusal(scope: Scope) -> tuple[int, bytes] | None:
    if "\x00" in scope.get("path", ""):
        return 404, json.dumps({"error": "not_found",
                                "error_description": "no such resource"}).encode()
    if b"%00" in scope.get("query_string", b""):
        return 400, json.dumps({"error": "invalid_request",
                                "error_description": "a query parameter holds a NUL "
                                "character"}).encode()
    return None


async def _drain(receive: Receive) -> bool:
    """Read the rest of the request body; False if it is more than ``DRAIN_LIMIT``."""
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return True  # the client is gone
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
        if size > DRAIN_LIMIT:
            return False


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
        body_done = False

        async def receive_watched() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = _with_id(message, raw_id)
                if not body_done and not await _drain(receive_watched):
                    message["headers"].append((b"connection", b"close"))
                if message["status"] == 500:
                    log.error("answered 500 to %s %r [request_id=%s]",
                              scope.get("method"), scope.get("path"), rid)
            await send(message)

        async def answer(status: int, body: bytes) -> None:
            """An answer of this middleware's own (a refusal, the last-resort 500)."""
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode()),
                       (b"cache-control", b"no-store"), (b"pragma", b"no-cache"),
                       (HEADER, raw_id)]
            if not body_done and not await _drain(receive_watched):
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        refused = _nul_refusal(scope)
        if refused is not None:
            await answer(*refused)
            return
        token = _current.set(rid)
        try:
            await self.app(scope, receive_watched, send_with_id)
        except Exception:
            log.exception("unexpected error in %s %r [request_id=%s]",
                          scope.get("method"), scope.get("path"), rid)
            if started:  # too late for another answer: let the server drop the connection
                raise
            await answer(500, server_error_body(rid))
        finally:
            _current.reset(token)

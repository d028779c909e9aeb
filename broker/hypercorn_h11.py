"""Fixes to Hypercorn 0.18's HTTP/1.1 connections: one write per response of known length, a
connection the client closed is let go at once, and the keep-alive timer as one event-loop timer.

**Coalescing.**
Hypercorn 0.18's ``H11Protocol.stream_send`` writes the status line and headers as soon as
the app sends ``http.response.start``, then the body as its own write: two ``send`` system
calls and two TCP segments per response, each delivered (on loopback, processed) separately.
py-spy put ``StreamWriter.write`` at ~12 % of a W3 introspection's samples. ``install``
makes a response that declares its ``content-length`` keep its header bytes until the first
body chunk (or the end of the message) and write both at once; streamed responses (no
``content-length``: server-sent events, downloads) still get their headers at once. The h11
state machine sees the same events in the same order, so framing and keep-alive are
unchanged.

**Closed connections.** ``TCPServer.run`` reads until the client's FIN, hands the protocol
``Closed``, and then leaves its task group, which waits for every task in it, the
keep-alive timer included: that is stopped only afterwards, in ``_close``. So a client that
closes its end after each response (as load balancers and many HTTP clients do) leaves every
connection in CLOSE_WAIT for ``keep_alive_timeout`` (5 s), with its tasks, h11 state and
buffers; at 400 connections/s that is ~2,000 connections held at once, and RSS grew from 155
to 362 MB over 30,000 such requests (``scripts/bench_tokens.py --fresh-connections
--client-closes``). ``install`` stops the timer as soon as the read side ended; a request
still in flight is still answered (the task group waits for it).

**Server headers.** Hypercorn formats the ``date`` header (RFC 9110 §6.6.1, one-second
resolution) anew for every response (``Config.response_headers``: ~2 % of an introspection's
CPU); ``install`` keeps the formatted headers for the second they name.

**Keep-alive timer.** Hypercorn stops a connection's idle timer when a request arrives and
restarts it after each response (``TCPServer.idle_task``): each time it cancels a task, awaits
its end under a lock, and creates a new task that waits in ``asyncio.wait_for`` (another task)
for the worker's shutdown or ``keep_alive_timeout``. py-spy put that at ~4 % of an
introspection's CPU and ~5 % of a token's. ``IdleTimer`` does the same with one
``loop.call_later`` handle: a connection idle for ``keep_alive_timeout`` is closed as before,
and when the worker shuts down every idle connection is closed at once (one watcher per worker
instead of one waiting task per connection). Reads no longer go through ``asyncio.wait_for``
where no ``read_timeout`` is set (Hypercorn's default and ours).

**Header checks.** h11 checks every header line of every response against its grammar (a
token for the name; no CR, LF or NUL in the value: what stops a value from splitting the
response), ~5 % of an introspection. The lines that recur (content type, cache control, the
date of this second, a content length) are checked once and remembered (up to
``MAX_CHECKED_LINES``, then forgotten and checked again); a line not seen before (a request
id) goes through h11's checks on every response, so a bad line is refused as before. Those
checks are h11's own name and value patterns applied to the new lines alone (~1 us a line;
building an ``h11.Response`` to have them checked cost ~8 us, ~2 % of an introspection), and
a request id, new on every response, is not remembered.

Pinned to the Hypercorn version checked below (pyproject pins it too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from itertools import chain
from typing import Any

from broker.hypercorn_tls import SUPPORTED_HYPERCORN

log = logging.getLogger("tessera")
MAX_CHECKED_LINES = 1024  # distinct response header lines remembered as valid (then forgotten)
# header lines new on every response: checked each time and not remembered (they would push
# the recurring lines out of the set every MAX_CHECKED_LINES responses)
PER_RESPONSE = frozenset({b"x-request-id"})


def install(*, strict: bool = False) -> bool:
    """Coalesce the head and body of fixed-length responses. Idempotent. On a Hypercorn this
    was not written against: ``RuntimeError`` if ``strict``, else False (nothing changed)."""
    from importlib.metadata import version

    import h11
    from hypercorn.events import RawData
    from hypercorn.protocol.events import Body, EndBody, Response
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(H11Protocol, "_tessera_coalesce", False):
        return True
    found = version("hypercorn")
    if found != SUPPORTED_HYPERCORN:
        message = (f"response coalescing needs Hypercorn {SUPPORTED_HYPERCORN} (found {found}): "
                   "see broker/hypercorn_h11.py")
        if strict:
            raise RuntimeError(message)
        log.warning(message)
        return False
    original = H11Protocol.stream_send
    # (config, second) -> Hypercorn's server headers for that second (a date changes each one)
    server_headers: dict[tuple[int, int], list[tuple[bytes, bytes]]] = {}

    def response_headers(config: Any) -> list[tuple[bytes, bytes]]:
        key = (id(config), int(time.time()))
        headers = server_headers.get(key)
        if headers is None:
            server_headers.clear()
            headers = server_headers[key] = config.response_headers("h11")
        return headers

    # header lines h11 has validated (name a token, value without CR, LF or NUL): the same
    # few dozen recur on every response; a per-request one (a request id) is checked each time
    checked: set[tuple[bytes, bytes]] = set()
    check_lines = _line_checks(h11)

    def h11_response(headers: list[tuple[bytes, bytes]], status_code: int) -> Any:
        """``h11.Response``, its header lines checked by h11 once per distinct line."""
        fresh = [line for line in headers if line not in checked]
        if fresh:  # h11's checks of the lines not seen before (LocalProtocolError if bad)
            check_lines(fresh, status_code)
            if len(checked) > MAX_CHECKED_LINES:
                checked.clear()
            checked.update(line for line in fresh if line[0] not in PER_RESPONSE)
        # h11 still lower-cases names and checks Content-Length / Transfer-Encoding;
        # Hypercorn has made every name and value bytes (build_and_validate_headers)
        return h11.Response(headers=headers, status_code=status_code, _parsed=True)

    def h11_bytes(self: Any, event: Any) -> bytes | None:
        """``_send_h11_event`` without the send: the bytes, or None where it sends nothing."""
        try:
            return self.connection.send(event)  # type: ignore[no-any-return]
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return None

    async def stream_send(self: Any, event: Any) -> None:
        head = self._tessera_head
        if head is not None:
            self._tessera_head = None
            if isinstance(event, Body):
                data = h11_bytes(self, h11.Data(data=event.data))
                await self.send(RawData(data=head if data is None else head + data))
                return
            await self.send(RawData(data=head))
        if isinstance(event, EndBody):
            # a fixed-length message ends with nothing to send: no empty write (a lock, a
            # write and a drain per response); a chunked one ends with its last chunk
            data = h11_bytes(self, h11.EndOfMessage())
            if data:
                await self.send(RawData(data=data))
            return
        if (isinstance(event, Response) and event.status_code >= 200
              and any(name.lower() == b"content-length" for name, _ in event.headers)):
            # as H11Protocol.stream_send does, less the write
            headers = list(chain(event.headers, response_headers(self.config)))
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            self._tessera_head = h11_bytes(self, h11_response(headers, event.status_code))
            return
        await original(self, event)

    import hypercorn.asyncio.run as run_module
    from hypercorn.asyncio.tcp_server import MAX_RECV
    from hypercorn.events import Closed

    class ReleasingTCPServer(run_module.TCPServer):  # type: ignore[name-defined,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.idle_task = IdleTimer(self)

        async def _read_data(self) -> None:
            if self.config.read_timeout is not None:
                await super()._read_data()
            else:  # Hypercorn's loop, less the wait_for around a read that has no timeout
                while not self.reader.at_eof():
                    try:
                        data = await self.reader.read(MAX_RECV)
                    except OSError:  # ConnectionError and SSLError are OSErrors
                        break
                    await self.protocol.handle(RawData(data))
                await self.protocol.handle(Closed())
            await self.idle_task.stop()  # the peer closed: no keep-alive left to time

    run_module.TCPServer = ReleasingTCPServer  # type: ignore[misc]
    H11Protocol._tessera_head = None  # type: ignore[attr-defined]
    H11Protocol.stream_send = stream_send  # type: ignore[method-assign]
    H11Protocol._tessera_coalesce = True  # type: ignore[attr-defined]
    return True


def _line_checks(h11: Any) -> Any:
    """``check(lines, status_code)``: h11's own checks of header lines (its name and value
    patterns, through its ``validate``: ``LocalProtocolError`` if one is bad), without building
    an ``h11.Response`` for them (~1 us a line instead of ~8 us). Where this h11 does not have
    them where 0.16 keeps them, the ``Response`` it builds does the same checks."""
    try:
        from h11._headers import _field_name_re, _field_value_re
        from h11._util import validate
    except ImportError:
        validate = None

    def check(lines: list[tuple[bytes, bytes]], status_code: int) -> None:
        if validate is None:
            h11.Response(headers=lines, status_code=status_code)
            return
        for name, value in lines:
            validate(_field_name_re, name, "Illegal header name {!r}", name)
            validate(_field_value_re, value, "Illegal header value {!r}", value)

    return check


class IdleTimer:
    """A connection's keep-alive timer (``TCPServer.idle_task``: ``restart`` when the
    connection turns idle, ``stop`` when a request arrives or the connection ends) as one
    ``call_later`` handle. When it fires, or when the worker shuts down while it is armed, the
    connection is closed as Hypercorn's ``_idle_timeout`` does."""

    __slots__ = ("_armed", "_group", "_handle", "_server")

    def __init__(self, server: Any) -> None:
        self._server = server
        self._armed = _armed_timers(server.context, server.loop)  # the worker's, looked up once
        self._handle: asyncio.TimerHandle | None = None
        self._group: Any = None

    async def restart(self, task_group: Any, action: Any) -> None:
        self._cancel()
        server = self._server
        self._group = task_group
        if server.context.terminated.is_set():
            self.expire()
            return
        self._handle = server.loop.call_later(server.config.keep_alive_timeout, self.expire)
        self._armed.add(self)

    async def stop(self) -> None:
        self._cancel()

    def _cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
            self._armed.discard(self)

    def expire(self) -> None:
        """The connection has been idle too long, or the worker is shutting down: close it."""
        self._cancel()
        group, self._group = self._group, None
        if group is None:
            return
        try:
            group._task_group.create_task(self._server._initiate_server_close())
        except RuntimeError:  # the connection's task group has ended: it is closed already
            pass


def _armed_timers(context: Any, loop: asyncio.AbstractEventLoop) -> set[IdleTimer]:
    """The armed idle timers of one worker (its ``WorkerContext``); the first call starts the
    task that expires them all when the worker shuts down."""
    armed: set[IdleTimer] | None = getattr(context, "_tessera_idle", None)
    if armed is None:
        armed = context._tessera_idle = set()

        async def close_idle_on_shutdown() -> None:
            await context.terminated.wait()
            for timer in list(armed):
                timer.expire()

        # a strong reference: the loop keeps only a weak one to its tasks
        context._tessera_idle_watch = loop.create_task(close_idle_on_shutdown())
    return armed

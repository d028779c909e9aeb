"""Two fixes to Hypercorn 0.18's HTTP/1.1 connections: one write per response of known
length, and a connection the client closed is let go at once.

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

Pinned to the Hypercorn version checked below (pyproject pins it too).
"""

from __future__ import annotations

import logging
import time
from itertools import chain
from typing import Any

from broker.hypercorn_tls import SUPPORTED_HYPERCORN

log = logging.getLogger("tessera")


def install(*, strict: bool = False) -> bool:
    """Coalesce the head and body of fixed-length responses. Idempotent. On a Hypercorn this
    was not written against: ``RuntimeError`` if ``strict``, else False (nothing changed)."""
    from importlib.metadata import version

    import h11
    from hypercorn.events import RawData
    from hypercorn.protocol.events import Body, Response
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
        elif (isinstance(event, Response) and event.status_code >= 200
              and any(name.lower() == b"content-length" for name, _ in event.headers)):
            # as H11Protocol.stream_send does, less the write
            headers = list(chain(event.headers, response_headers(self.config)))
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            self._tessera_head = h11_bytes(
                self, h11.Response(headers=headers, status_code=event.status_code))
            return
        await original(self, event)

    import hypercorn.asyncio.run as run_module

    class ReleasingTCPServer(run_module.TCPServer):  # type: ignore[name-defined,misc]
        async def _read_data(self) -> None:
            await super()._read_data()
            await self.idle_task.stop()  # the peer closed: no keep-alive left to time

    run_module.TCPServer = ReleasingTCPServer  # type: ignore[misc]
    H11Protocol._tessera_head = None  # type: ignore[attr-defined]
    H11Protocol.stream_send = stream_send  # type: ignore[method-assign]
    H11Protocol._tessera_coalesce = True  # type: ignore[attr-defined]
    return True

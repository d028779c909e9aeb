"""One write per HTTP/1.1 response of known length, instead of two.

Hypercorn 0.18's ``H11Protocol.stream_send`` writes the status line and headers as soon as
the app sends ``http.response.start``, then the body as its own write: two ``send`` system
calls and two TCP segments per response, each delivered (on loopback, processed) separately.
py-spy put ``StreamWriter.write`` at ~12 % of a W3 introspection's samples. ``install``
makes a response that declares its ``content-length`` keep its header bytes until the first
body chunk (or the end of the message) and write both at once; streamed responses (no
``content-length``: server-sent events, downloads) still get their headers at once. The h11
state machine sees the same events in the same order, so framing and keep-alive are
unchanged. Pinned to the Hypercorn version checked below (pyproject pins it too).
"""

from __future__ import annotations

import logging
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
            headers = list(chain(event.headers, self.config.response_headers("h11")))
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            self._tessera_head = h11_bytes(
                self, h11.Response(headers=headers, status_code=event.status_code))
            return
        await original(self, event)

    H11Protocol._tessera_head = None  # type: ignore[attr-defined]
    H11Protocol.stream_send = stream_send  # type: ignore[method-assign]
    H11Protocol._tessera_coalesce = True  # type: ignore[attr-defined]
    return True

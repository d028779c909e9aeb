"""HTTP/1.1 connections under Hypercorn as tessera patches it (``broker.hypercorn_h11``): an
idle connection is closed after ``keep_alive_timeout`` and not before, a connection in use is
kept however long it lives, a shutting-down worker closes its idle connections at once, a
connection the client closed is let go at once, and a header line that would split the
response is refused however many valid ones came before. A real Hypercorn server on a
loopback port, driven over raw sockets so that every byte and the end of the stream are seen."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypercorn.asyncio import serve
from hypercorn.config import Config

from broker import hypercorn_h11

REQUEST = b"GET /hello HTTP/1.1\r\nHost: test\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    if scope["path"] == "/stream":  # no content-length: chunked
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"hel", b"lo"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"hello"
    # /echo?V: the query string as a header value (as an app might echo what it was sent)
    extra = ([(b"x-echo", unquote_to_bytes(scope["query_string"]))]
             if scope["path"] == "/echo" else [])
    if scope["path"] == "/name":  # /name?N: the query string as a header name
        extra = [(unquote_to_bytes(scope["query_string"]), b"1")]
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Running:
    def __init__(self, port: int, stop: asyncio.Event, task: asyncio.Task[None]) -> None:
        self.port, self.stop, self.task = port, stop, task


@asynccontextmanager
async def hypercorn(keep_alive_timeout: float) -> AsyncIterator[Running]:
    # patched for this server only, as ``tessera serve`` does; put back after, so that the
    # process's other tests see Hypercorn as they found it (hypercorn_tls patches it first)
    import hypercorn.asyncio.run as run_module
    from hypercorn.protocol.h11 import H11Protocol

    saved = (run_module.TCPServer, H11Protocol.stream_send,
             H11Protocol.__dict__.get("_tessera_coalesce"))
    try:
        assert hypercorn_h11.install(strict=True)
        async with _serving(keep_alive_timeout) as running:
            yield running
    finally:
        run_module.TCPServer, H11Protocol.stream_send = saved[0], saved[1]  # type: ignore[method-assign,misc]
        if saved[2] is None:
            if "_tessera_coalesce" in H11Protocol.__dict__:
                delattr(H11Protocol, "_tessera_coalesce")
        else:
            H11Protocol._tessera_coalesce = saved[2]  # type: ignore[attr-defined]


@asynccontextmanager
async def _serving(keep_alive_timeout: float) -> AsyncIterator[Running]:
    port = _free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_timeout = keep_alive_timeout
    config.graceful_timeout = 10.0
    config.accesslog = config.errorlog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
        else:
            writer.close()
            break
    running = Running(port, stop, task)
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes = REQUEST) -> bytes:
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200"), head
    assert await asyncio.wait_for(reader.readexactly(5), 5) == b"hello"
    return head


async def _until_closed(reader: asyncio.StreamReader, limit: float) -> float:
    """Seconds until the server ends the stream (it sends nothing more before)."""
    started = time.monotonic()
    rest = await asyncio.wait_for(reader.read(), limit)
    assert rest == b"", rest
    return time.monotonic() - started


async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout() -> None:
    async with hypercorn(keep_alive_timeout=0.6) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await _exchange(reader, writer)
        waited = await _until_closed(reader, 5)
        assert 0.45 <= waited <= 3, waited
        writer.close()


async def test_a_connection_in_use_outlives_the_keep_alive_timeout() -> None:
    async with hypercorn(keep_alive_timeout=0.6) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        started = time.monotonic()
        for _ in range(6):  # 6 x 0.35 s: three timeouts' worth, never idle 0.6 s at a stretch
            await _exchange(reader, writer)
            await asyncio.sleep(0.35)
        await _exchange(reader, writer, b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        assert time.monotonic() - started > 1.8
        assert await _until_closed(reader, 5) >= 0.45  # and timed from the last response
        writer.close()


async def test_shutdown_closes_idle_connections_at_once() -> None:
    async with hypercorn(keep_alive_timeout=30) as server:
        readers = []
        for _ in range(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            await _exchange(reader, writer)
            readers.append((reader, writer))
        started = time.monotonic()
        server.stop.set()
        for reader, writer in readers:
            await _until_closed(reader, 5)  # not after the 30 s keep-alive
            writer.close()
        await asyncio.wait_for(server.task, 5)  # nor the 10 s graceful timeout
        assert time.monotonic() - started < 5


async def test_a_connection_the_client_closed_is_let_go_at_once() -> None:
    async with hypercorn(keep_alive_timeout=30) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await _exchange(reader, writer)
        writer.write_eof()  # the client is done: the server must not hold it for 30 s
        assert await _until_closed(reader, 3) < 2
        writer.close()


async def test_a_request_in_flight_when_the_client_closes_is_still_answered() -> None:
    async with hypercorn(keep_alive_timeout=30) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 5)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"hello"), answer
        writer.close()


@pytest.mark.parametrize("idle_for", [0.0, 0.2])
async def test_the_timer_is_stopped_while_a_request_is_handled(idle_for: float) -> None:
    """A request that arrives just before the timeout is answered; the connection's timer
    starts again only after the answer (a slow answer is not cut off mid-request)."""
    async with hypercorn(keep_alive_timeout=0.4) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        await _exchange(reader, writer)
        await asyncio.sleep(idle_for)
        for _ in range(3):  # each /slow takes 0.3 s of the 0.4 s, back to back
            await _exchange(reader, writer, b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        writer.close()


async def _refused(server: Running, request: bytes) -> bytes:
    """On a new connection, ``request``, whose answer would carry a bad header line: nothing
    injected, and no answer but a 500 (or the connection closed). The answer's bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 5)
    assert b"injected" not in answer.lower(), answer
    assert answer == b"" or answer.startswith(b"HTTP/1.1 500"), answer
    writer.close()
    return answer


@pytest.mark.parametrize("bad", [b"a%0D%0AInjected:%201", b"a%0AInjected:%201", b"a%00b"])
async def test_a_header_value_that_would_split_the_response_is_refused(bad: bytes) -> None:
    async with hypercorn(keep_alive_timeout=5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(3):  # the valid lines of this response are known by now
            head = await _exchange(reader, writer, b"GET /echo?fine HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"\r\nx-echo: fine\r\n" in head
        writer.close()
        answer = await _refused(server, b"GET /echo?" + bad + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"x-echo" not in answer, answer


async def test_chunked_and_empty_responses_end_where_they_should() -> None:
    """A streamed answer ends with its last chunk, an empty one with its head; the next
    request on the same connection is read from where the answer ended."""
    async with hypercorn(keep_alive_timeout=5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(2):
            writer.write(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"transfer-encoding: chunked" in head.lower(), head
            body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
            assert body == b"3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n", body
            writer.write(b"GET /empty HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 204"), head
            await _exchange(reader, writer)
        writer.close()


@pytest.mark.parametrize("bad", [b"a%0D%0AInjected:%201", b"x%20y", b"x:y", b""])
async def test_a_header_name_that_is_not_a_token_is_refused(bad: bytes) -> None:
    async with hypercorn(keep_alive_timeout=5) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        head = await _exchange(reader, writer, b"GET /name?x-fine HTTP/1.1\r\nHost: t\r\n\r\n")
        assert b"\r\nx-fine: 1\r\n" in head
        writer.close()
        await _refused(server, b"GET /name?" + bad + b" HTTP/1.1\r\nHost: t\r\n\r\n")


@pytest.mark.parametrize("h11_internals", [True, False])
def test_header_lines_are_checked_with_or_without_h11s_patterns(
        h11_internals: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fresh-line check uses h11's own patterns where h11 keeps them; where it does not,
    an ``h11.Response`` built for the lines checks them: either way a bad line is refused."""
    import sys

    import h11

    if not h11_internals:
        monkeypatch.setitem(sys.modules, "h11._util", None)  # import fails: the fallback
    check = hypercorn_h11._line_checks(h11)
    check([(b"content-type", b"application/json"), (b"x-request-id", b"ab.c-1:2")], 200)
    for bad in ([(b"x-a", b"1\r\nInjected: 1")], [(b"x-a", b"1\nb")], [(b"x-a", b"a\x00")],
                [(b"x a", b"1")], [(b"x:a", b"1")], [(b"", b"1")], [(b"x\r\ny", b"1")]):
        with pytest.raises(h11.LocalProtocolError):
            check(bad, 200)

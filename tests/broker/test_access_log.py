"""The access log line (``broker.logs.access_line``): written straight to tessera's own JSON
handler when nothing else would see it, the same object ``logging`` would have written; through
``logging`` whenever anything else listens, the format is text, or a value cannot be written."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from broker import logs
from broker.config import Settings

ROUTE = "/t/{tenant}/introspect"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """``logs.configure`` replaces the root logger's handlers: put back pytest's."""
    root = logging.getLogger()
    handlers, level, filters = list(root.handlers), root.level, list(root.filters)
    access = logging.getLogger(logs.ACCESS)
    disabled = access.disabled
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        root.filters[:] = filters
        access.disabled = disabled
        access.handlers.clear()


def configured(**settings: Any) -> io.StringIO:
    stream = io.StringIO()
    logs.configure(Settings.load({}, **settings), stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def through_logging(method: str, path: str, status: int, duration_ms: float) -> None:
    """What ``observe`` wrote before ``access_line``: the reference for the same object."""
    logging.getLogger(logs.ACCESS).info("%s %s %d", method, path, status, extra={
        "method": method, "path": path, "status": status, "duration_ms": duration_ms})


def both_ways(stream: io.StringIO, context: dict[str, Any],
              duration_ms: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """In a request with ``context``: the line ``access_line`` writes, then the one
    ``through_logging`` writes, as parsed JSON."""
    token = logs.bind(context)
    try:
        logs.access_line("POST", ROUTE, 200, duration_ms)
        through_logging("POST", ROUTE, 200, duration_ms)
    finally:
        logs.unbind(token)
    direct, reference = (json.loads(x) for x in lines(stream))
    return direct, reference


def test_direct_line_is_the_object_logging_writes(restore_logging: None) -> None:
    stream = configured()
    direct, reference = both_ways(
        stream, {"request_id": "req-1", "tenant": "demo", "client_id": "agent"}, 1.25)
    assert direct.pop("time").endswith("+00:00") and reference.pop("time")
    assert direct == reference
    assert list(direct) == list(reference)  # the same field order too
    assert direct["request_id"] == "req-1" and direct["client_id"] == "agent"


def test_outside_a_request_there_is_no_context(restore_logging: None) -> None:
    stream = configured()
    logs.access_line("GET", "(unrouted)", 404, 0.1)
    (record,) = (json.loads(x) for x in lines(stream))
    assert record["status"] == 404 and "request_id" not in record and "tenant" not in record


def test_another_handler_gets_the_record(restore_logging: None) -> None:
    stream = configured()
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logging.getLogger(logs.ACCESS).addHandler(Keep())
    logs.access_line("POST", ROUTE, 401, 2.0)
    assert [r.status for r in seen] == [401]  # type: ignore[attr-defined]
    assert json.loads(lines(stream)[0])["status"] == 401  # and the JSON line still

    seen.clear()
    logging.getLogger(logs.ACCESS).handlers.clear()
    logging.getLogger().addHandler(Keep())  # one on the root as well
    logs.access_line("POST", ROUTE, 200, 2.0)
    assert [r.status for r in seen] == [200]  # type: ignore[attr-defined]
    assert len(lines(stream)) == 2


def test_a_changed_formatter_is_used(restore_logging: None) -> None:
    stream = configured()
    handler = logging.getLogger().handlers[0]
    handler.setFormatter(logging.Formatter("plain %(message)s"))
    logs.access_line("POST", ROUTE, 200, 1.0)
    assert lines(stream) == [f"plain POST {ROUTE} 200"]


def test_text_format_and_disabled_access_log(restore_logging: None) -> None:
    stream = configured(log_format="text")
    logs.access_line("POST", ROUTE, 200, 1.0)
    (line,) = lines(stream)
    assert f"POST {ROUTE} 200" in line and "status=200" in line and not line.startswith("{")

    quiet = configured(access_log=False)
    logs.access_line("POST", ROUTE, 200, 1.0)
    assert lines(quiet) == []

    warning = configured(log_level="warning")
    logs.access_line("POST", ROUTE, 200, 1.0)
    assert lines(warning) == []


def test_values_json_lacks_are_written_as_the_formatter_writes_them(
        restore_logging: None) -> None:
    stream = configured()
    direct, reference = both_ways(
        stream, {"request_id": "req-2", "tenant": {1, 2}, "client_id": b"\x00"}, 1.0)
    direct.pop("time"), reference.pop("time")
    assert direct == reference and direct["request_id"] == "req-2"


def test_a_value_orjson_cannot_write_is_reported_by_logging(
        restore_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    stream = configured()
    token = logs.bind({"request_id": "req-3", "tenant": 2**70})  # beyond orjson's integers
    try:
        logs.access_line("POST", ROUTE, 200, 1.0)  # no exception into the request
    finally:
        logs.unbind(token)
    assert lines(stream) == []
    assert "Integer exceeds 64-bit range" in capsys.readouterr().err  # logging's own report


class CountingStream(io.StringIO):
    """A stream that counts its writes (each a system call on a real one)."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_lines_of_one_loop_iteration_go_out_in_one_write(restore_logging: None) -> None:
    stream = CountingStream()
    logs.configure(Settings.load({}), stream=stream)
    for status in (200, 401, 404):
        logs.access_line("POST", ROUTE, status, 1.0)
    assert stream.writes == 0  # held until this iteration ends
    await asyncio.sleep(0)
    assert stream.writes == 1
    assert [json.loads(x)["status"] for x in lines(stream)] == [200, 401, 404]
    logs.access_line("POST", ROUTE, 500, 1.0)
    await asyncio.sleep(0)
    assert stream.writes == 2 and json.loads(lines(stream)[-1])["status"] == 500


async def test_held_lines_are_written_first_from_elsewhere_and_on_reconfiguring(
        restore_logging: None) -> None:
    stream = CountingStream()
    logs.configure(Settings.load({}), stream=stream)
    logs.access_line("POST", ROUTE, 201, 1.0)  # held by this loop
    # a thread without a loop (the loop is blocked: its write has not run) writes at once,
    # what this loop held first
    elsewhere = threading.Thread(target=logs.access_line, args=("GET", ROUTE, 202, 1.0))
    elsewhere.start()
    elsewhere.join()
    assert [json.loads(x)["status"] for x in lines(stream)] == [201, 202]

    logs.access_line("POST", ROUTE, 203, 1.0)  # held again; then the handler is replaced
    other = configured()
    assert json.loads(lines(stream)[-1])["status"] == 203 and lines(other) == []
    await asyncio.sleep(0)
    assert len(lines(stream)) == 3 and lines(other) == []  # nothing written twice


def test_lines_held_at_exit_are_written() -> None:
    """A process that ends between a request and its loop's next iteration (``serve``
    stopping) still writes the line: the held lines are written at exit."""
    program = (
        "import asyncio, sys\n"
        "from broker import logs\n"
        "from broker.config import Settings\n"
        "logs.configure(Settings.load({}), stream=sys.stdout)\n"
        "loop = asyncio.new_event_loop()\n"
        "def answered():\n"
        "    logs.access_line('POST', '/t/{tenant}/token', 200, 1.0)\n"
        "    loop.stop()\n"  # this iteration is the last: the write stays scheduled
        "loop.call_soon(answered)\n"
        "loop.run_forever()\n"
        "import os; os.write(1, b'before exit\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == "before exit"  # the line was still held then
    assert json.loads(out[1])["status"] == 200

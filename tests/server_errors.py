"""The suite-wide 500 guard's state (one module, imported once as ``tests.server_errors``; the
hooks that use it are in ``tests/conftest.py``).

``broker.request_context`` logs every 500 the app answers, and every uncaught exception, on the
``tessera.server_error`` logger. ``RECORDS`` collects those records in this process;
``watch_server_log`` adds the log file of a ``tessera serve`` subprocess, whose lines of that
logger are read after each test phase.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.request_context import LOGGER


class _Records(logging.Handler):
    """Every record of the ``tessera.server_error`` logger, in this process."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


RECORDS = _Records()
logging.getLogger(LOGGER).addHandler(RECORDS)
_WATCHED: dict[Path, int] = {}  # a server's log file -> bytes already read
_MARKER = f" {LOGGER}: "  # `tessera serve` logs "time LEVEL name: message"


def watch_server_log(path: Path) -> None:
    """Fail the test during which the ``tessera serve`` writing ``path`` answers a 500."""
    _WATCHED[path] = path.stat().st_size if path.exists() else 0


def _from_server_logs() -> list[str]:
    found = []
    for path, offset in list(_WATCHED.items()):
        try:
            with path.open("rb") as fh:
                fh.seek(offset)
                new = fh.read()
        except FileNotFoundError:
            del _WATCHED[path]
            continue
        _WATCHED[path] = offset + len(new)
        found += [f"{path.name}: {line}" for line in new.decode("utf-8", "replace").splitlines()
                  if _MARKER in line]
    return found


def guard(phase: str) -> Iterator[None]:
    """A ``pytest_runtest_*`` wrapper body: fail ``phase`` if a 500 was answered during it."""
    RECORDS.records.clear()
    _from_server_logs()  # what came before this phase is not its doing
    yield
    messages = [r.getMessage() for r in RECORDS.records] + _from_server_logs()
    RECORDS.records.clear()
    if messages:
        pytest.fail(f"the app answered HTTP 500 during {phase}; no input may cause one:\n"
                    + "\n".join(messages), pytrace=False)

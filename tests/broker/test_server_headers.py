"""Hypercorn's server headers as ``tessera serve`` sends them: the ``date`` header (RFC 9110
§6.6.1) is kept formatted for the second it names (``broker.hypercorn_h11``) and must still
name the current second on every response."""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
import pytest

from tests.server_process import Server, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("server-headers")) as running:
        yield running


def _date(client: httpx.Client, url: str) -> float:
    response = client.get(url)
    assert response.status_code == 200
    assert response.headers["date"].endswith(" GMT")  # IMF-fixdate
    return parsedate_to_datetime(response.headers["date"]).timestamp()


def test_the_date_header_follows_the_clock(server: Server) -> None:
    with httpx.Client(timeout=10) as client:  # one keep-alive connection
        seen = []
        for _ in range(4):
            before = int(time.time())
            date = _date(client, f"{server.base_url}/healthz")  # a fixed-length response
            after = time.time()
            assert before <= date <= after, (before, date, after)
            seen.append(date)
            time.sleep(0.7)
        assert len(set(seen)) >= 2, "the date never moved on"

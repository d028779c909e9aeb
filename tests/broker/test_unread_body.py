"""A request body the app answers without reading (an early 401, 404 or 400) is read and
dropped before the answer, so the client takes it and its next request on the same
HTTP/1.1 connection is answered; a body over ``DRAIN_LIMIT`` is left and the answer closes
the connection. Against a real ``tessera serve`` (Hypercorn), where the stall happened: once
an app stopped reading, Hypercorn stopped reading the connection and the next request on it
waited until the client gave up (Schemathesis' "Read timed out")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from starlette.types import Message

from broker.request_context import DRAIN_LIMIT, RequestContextMiddleware
from tests.server_process import Server, serving

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("unread-body")) as running:
        yield running


def _post(session: requests.Session, url: str, size: int, **headers: str) -> requests.Response:
    body = b'{"name": "' + b"a" * size + b'"}'
    return session.post(url, data=body, timeout=10,
                        headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("size", [200_000, 2 * MIB])
def test_the_next_request_on_the_connection_is_answered(server: Server, size: int) -> None:
    with requests.Session() as session:
        admin = {"Authorization": f"Bearer {server.admin_token}"}
        cases = [  # refused before the body is read: authentication, tenant, route
            (f"{server.base_url}/admin/v1/tenants/x/clients", {"Authorization": "Bearer no"}, 401),
            (f"{server.base_url}/t/no-such-tenant/token", {}, 404),
            (f"{server.base_url}/nowhere", {}, 404),
            (f"{server.base_url}/admin/v1/tenants/x/clients", admin, 400),  # too large
        ]
        for url, headers, status in cases:
            refused = _post(session, url, size, **headers)
            assert refused.status_code == status, (url, refused.text)
            assert refused.headers.get("connection") != "close"
            follow = session.get(f"{server.base_url}/admin/v1/tenants", headers=admin,
                                 timeout=10)  # the same connection (keep-alive)
            assert follow.status_code == 200, follow.text


def test_a_body_over_the_drain_limit_closes_the_connection(server: Server) -> None:
    with requests.Session() as session:
        refused = _post(session, f"{server.base_url}/admin/v1/tenants/x/clients",
                        DRAIN_LIMIT + MIB, Authorization="Bearer no")
        assert refused.status_code == 401
        assert refused.headers.get("connection") == "close"
        follow = session.get(f"{server.base_url}/healthz", timeout=10)
        assert follow.status_code == 200


async def test_the_middleware_reads_the_rest_before_answering() -> None:
    chunks = [b"x" * 1000] * 5
    received: list[bytes] = []
    sent: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # one chunk, then an answer
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        body = chunks.pop(0)
        received.append(body)
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            assert not chunks, "answered before the body was read"
        sent.append(message)

    await RequestContextMiddleware(app)({"type": "http", "method": "POST", "path": "/",
                                         "headers": [], "query_string": b""}, receive, send)
    assert len(received) == 5 and sent[0]["status"] == 401
    assert (b"connection", b"close") not in sent[0]["headers"]


"""broker.request_context: every response names its request id, and an unexpected failure is
a JSON ``server_error`` carrying that id, logged once with its traceback and no secrets; and
the suite's own 500 guard (``tests.server_errors``) notices a 500."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from broker.app import create_app
from broker.request_context import LOGGER, RequestContextMiddleware, request_id
from broker.runtime import Broker
from tests import server_errors
from tests.conftest import ADMIN_TOKEN, BASE_URL, make_settings

FRESH_ID = re.compile(r"[0-9a-f]{16}")


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/healthz"), ("GET", "/nowhere"), ("GET", "/t/no-such-tenant/jwks"),
    ("POST", "/t/no-such-tenant/token"), ("PUT", "/healthz"), ("GET", "/admin/v1/tenants"),
])
async def test_every_response_carries_a_fresh_request_id(http, method, path):
    first = await http.request(method, path)
    second = await http.request(method, path)
    ids = [r.headers["x-request-id"] for r in (first, second)]
    assert all(FRESH_ID.fullmatch(i) for i in ids), ids
    assert ids[0] != ids[1]


@pytest.mark.parametrize("offered", ["abc-123", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
                                     "trace.id:7_x", "a" * 64])
async def test_a_safe_incoming_request_id_is_kept(http, offered):
    r = await http.get("/healthz", headers={"X-Request-Id": offered})
    assert r.headers.get_list("x-request-id") == [offered]


@pytest.mark.parametrize("offered", ["a" * 65, "", "has space", "semi;colon", "quote\"d",
                                     "caf\u00e9", "new\\nline", "<script>"])
async def test_an_unsafe_incoming_request_id_is_replaced(http, offered):
    r = await http.get("/healthz", headers=[("X-Request-Id", offered.encode("utf-8"))])
    assert r.headers.get_list("x-request-id") != [offered]
    assert FRESH_ID.fullmatch(r.headers["x-request-id"])


async def test_two_incoming_request_ids_are_both_replaced(http):
    r = await http.get("/healthz", headers=[("X-Request-Id", "one"), ("X-Request-Id", "two")])
    assert FRESH_ID.fullmatch(r.headers["x-request-id"])


@pytest.fixture
async def broken(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The real app whose tenant lookup has a bug: it raises an error no handler expects."""
    broker = Broker.build(make_settings(f"sqlite+aiosqlite:///{tmp_path}/tessera.db"))

    async def buggy(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug in the lookup")

    broker.lookup = buggy  # type: ignore[method-assign]
    broker.cached_lookup = buggy  # type: ignore[method-assign]
    app = create_app(broker, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as client:
        yield client
    await broker.close()


async def test_unexpected_error_is_json_500_with_request_id(broken, server_error_records,
                                                            caplog):
    secret = "s3cret-" + "z" * 24
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        r = await broken.post(f"/t/acme/token?access_token={secret}",
                              content=f"grant_type=client_credentials&client_secret={secret}",
                              headers={"Content-Type": "application/x-www-form-urlencoded",
                                       "Authorization": f"Bearer {secret}",
                                       "X-Request-Id": "req-42"})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-request-id"] == "req-42"
    body = r.json()
    assert body["error"] == "server_error" and body["request_id"] == "req-42"
    assert body["error_description"] and "Traceback" not in r.text and secret not in r.text
    # logged once, with the traceback and the id; the secret appears nowhere
    ours = [rec for rec in caplog.records if rec.name == LOGGER]
    assert len(ours) == 1
    assert ours[0].exc_info is not None and "req-42" in ours[0].getMessage()
    assert "/t/acme/token" in ours[0].getMessage()
    assert secret not in caplog.text
    assert [rec.getMessage() for rec in server_error_records] == [ours[0].getMessage()]
    server_error_records.clear()  # expected here; the guard would fail the test otherwise


async def test_generated_request_id_is_in_the_500_body(broken, server_error_records):
    r = await broken.get("/t/acme/jwks", headers={"X-Request-Id": "x" * 200})
    assert r.status_code == 500
    rid = r.headers["x-request-id"]
    assert FRESH_ID.fullmatch(rid) and r.json()["request_id"] == rid
    assert len(server_error_records) == 1
    server_error_records.clear()


def test_the_suite_guard_fails_a_phase_with_a_500():
    phase = server_errors.guard("the test")
    next(phase)
    logging.getLogger(LOGGER).error("answered 500 to GET '/x' [request_id=abc]")
    with pytest.raises(pytest.fail.Exception, match="answered 500 to GET"):
        next(phase)
    quiet = server_errors.guard("the test")
    next(quiet)
    with pytest.raises(StopIteration):
        next(quiet)


def test_the_suite_guard_reads_server_logs(tmp_path: Path):
    log = tmp_path / "server.log"
    log.write_text("2026-01-01 INFO tessera: started\n")
    server_errors.watch_server_log(log)
    phase = server_errors.guard("the test")
    next(phase)
    with log.open("a") as fh:
        fh.write("2026-01-01 ERROR tessera.server_error: unexpected error in GET '/t/a/token' "
                 "[request_id=abc]\nTraceback (most recent call last):\n")
    with pytest.raises(pytest.fail.Exception, match="unexpected error in GET"):
        next(phase)
    log.unlink()  # forgotten once gone


async def test_admin_token_never_logged_on_500(broken, server_error_records, caplog):
    with caplog.at_level(logging.DEBUG):
        r = await broken.get("/t/acme/demo/whoami",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 500
    assert ADMIN_TOKEN not in caplog.text
    server_error_records.clear()


def _small_app() -> Starlette:
    """The middleware alone around two handlers (the real app has no handler that fails)."""

    async def whoami(request: Request) -> Response:
        return JSONResponse({"state": request.state.request_id, "context": request_id()})

    async def fails_midway(_request: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"partial"
            raise RuntimeError("broke while streaming")
        return StreamingResponse(body())

    app = Starlette(routes=[Route("/whoami", whoami), Route("/midway", fails_midway)])
    app.add_middleware(RequestContextMiddleware)
    return app


async def test_handlers_see_the_request_id():
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_small_app()),
                                 base_url=BASE_URL) as client:
        r = await client.get("/whoami", headers={"X-Request-Id": "id-7"})
        assert r.json() == {"state": "id-7", "context": "id-7"}
        r = await client.get("/whoami")
        assert r.json()["state"] == r.json()["context"] == r.headers["x-request-id"]
    assert request_id() is None  # outside a request


async def test_failure_after_the_answer_began_drops_the_connection(server_error_records):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_small_app()),
                                 base_url=BASE_URL) as client:
        with pytest.raises(RuntimeError, match="broke while streaming"):
            await client.get("/midway")
    assert len(server_error_records) == 1 and server_error_records[0].exc_info
    server_error_records.clear()


async def test_a_database_that_cannot_be_opened_is_503_not_500(tmp_path: Path,
                                                               server_error_records) -> None:
    """Not a bug but an outage (here: its directory is gone): 503 with Retry-After."""
    url = f"sqlite+aiosqlite:///{tmp_path}/missing/dir/tessera.db"
    broker = Broker.build(make_settings(url))
    app = create_app(broker, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as client:
        r = await client.post("/t/acme/token", data={"grant_type": "client_credentials"},
                              headers={"X-Request-Id": "req-503"})
    await broker.close()
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"] == "temporarily_unavailable"
    assert r.json()["request_id"] == "req-503" == r.headers["x-request-id"]
    assert server_error_records == []


def test_a_forked_process_draws_ids_of_its_own():
    """Generated ids come from a per-process generator: a forked worker must not repeat its
    parent's sequence (uniqueness across the replicas' log lines)."""
    import os

    from broker.request_context import _chosen_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then out without running the parent's cleanup
        os.write(write, ",".join(_chosen_id({}) for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 4096).decode().split(",")
    os.waitpid(pid, 0)
    parent = [_chosen_id({}) for _ in range(4)]
    assert all(FRESH_ID.fullmatch(i) for i in child + parent)
    assert not set(child) & set(parent)

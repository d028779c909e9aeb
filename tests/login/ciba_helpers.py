"""CIBA test helpers: a real notification receiver on loopback (the broker POSTs to it with its
own HTTP client), an approver's browser logged in through the OIDC IdP, polling."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.conftest import BASE_URL
from tests.login.conftest import OIDC, Login
from tests.login.flow import follow_local, redirected_to
from tests.peers.oidc_idp import login_at_idp

CIBA = "urn:openid:params:grant-type:ciba"


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (headers, JSON body)."""

    def __init__(self) -> None:
        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                received.append(({k.lower(): v for k, v in self.headers.items()},
                                 self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cb"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    async def next(self, count: int = 1, within: float = 10.0) -> tuple[dict[str, str], bytes]:
        """The ``count``-th POST received, waiting for it."""
        deadline = time.monotonic() + within
        while len(self.received) < count:
            assert time.monotonic() < deadline, "no notification arrived"
            await asyncio.sleep(0.05)
        return self.received[count - 1]

    def json(self, count: int = 1) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.received[count - 1][1])
        return body

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def approver_browser(login: Login, user: str = "alice") -> httpx.AsyncClient:
    """A browser at the broker with ``user`` logged in through the approvals page."""
    browser = login.browser()
    first = await browser.get(f"/t/{login.tenant}/approvals")
    location = redirected_to(first)
    flow = re.search(r"flow=([^&]+)", location)
    assert flow and "/login?" in location, location
    chooser = await browser.get(location.removeprefix(BASE_URL))
    assert chooser.status_code == 200 and OIDC in chooser.text
    location = redirected_to(await browser.get(
        f"/t/{login.tenant}/login/{OIDC}?flow={flow.group(1)}"))
    async with login.idp_browser() as idp:
        callback = await login_at_idp(idp, location, user)
    page = await follow_local(browser, callback)
    assert page.status_code == 200 and "Pending approvals" in page.text, page.text[:300]
    return browser


async def decide_on_page(login: Login, browser: httpx.AsyncClient, request_id: str,
                         decision: str = "approve") -> httpx.Response:
    page = await browser.get(f"/t/{login.tenant}/approvals")
    assert request_id in page.text, "the request is not on the approver's page"
    match = re.search(rf"approvals/{request_id}/{decision}'><input type=hidden name=csrf "
                      r"value='([0-9a-f]+)'", page.text)
    assert match, page.text[:500]
    return await browser.post(f"/t/{login.tenant}/approvals/{request_id}/{decision}",
                              data={"csrf": match.group(1)})


async def pending_ids(browser: httpx.AsyncClient, tenant: str) -> list[str]:
    r = await browser.get(f"/t/{tenant}/approvals.json")
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["pending"]]

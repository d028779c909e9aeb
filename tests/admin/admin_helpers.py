"""What the admin lifecycle tests share: the admin header, a loopback webhook receiver, a
replica that may call it, and reading a tenant's audit events."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from broker.runtime import Broker
from tenants.models import AuditEvent
from tests.conftest import ADMIN_TOKEN, OffsetClock

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


class Receiver:
    """An HTTP server on 127.0.0.1 that records every POST (headers, body) and answers 204."""

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
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def nth(self, count: int, within: float = 10.0) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + within
        while len(self.received) < count:
            assert time.monotonic() < deadline, "no webhook arrived"
            await asyncio.sleep(0.02)
        return self.received[count - 1]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def loopback_replica(broker: Broker) -> tuple[Broker, OffsetClock]:
    """Another replica of ``broker`` that may call http://127.0.0.1 (development setting),
    with a clock of its own."""
    clock = OffsetClock()
    settings = dataclasses.replace(broker.settings, allow_http_loopback=True)
    return Broker.build(settings, clock=clock), clock


async def events(broker: Broker, tenant: str, action: str | None = None) -> list[AuditEvent]:
    async with broker.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.tenant_id == tenant)
        if action is not None:
            query = query.where(AuditEvent.action == action)
        return list((await session.execute(query.order_by(AuditEvent.seq))).scalars())

"""Liveness and readiness: ``/healthz`` (the process answers: restart it if not) and
``/readyz`` (it can serve: the database answers within its timeouts and the key service can
sign; take it out of the load balancer if not). Neither needs credentials nor says more than
which check failed."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import literal, select
from starlette.requests import Request
from starlette.responses import Response

from broker.json_response import JSONResponse
from broker.runtime import Broker

NO_STORE = {"Cache-Control": "no-store"}
_PING = select(literal(1).label("ok"))


async def liveness(_request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readiness(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    checks: dict[str, str] = {}
    started = time.perf_counter()
    try:
        await asyncio.wait_for(broker.hot.read_one(_PING, {}),
                               broker.settings.db_connect_timeout
                               + broker.settings.db_statement_timeout)
        checks["database"] = "ok"
    except Exception as exc:  # any failure is "not ready", named by its type only
        checks["database"] = f"unavailable ({type(exc).__name__})"
    try:
        broker.keys.check_backends()
        checks["key_service"] = "ok"
    except Exception as exc:
        checks["key_service"] = f"unavailable ({type(exc).__name__})"
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ready else "unavailable", "checks": checks,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
    return JSONResponse(body, status_code=200 if ready else 503,
                        headers={**NO_STORE, **({} if ready else {"Retry-After": "5"})})

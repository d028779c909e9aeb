"""Prometheus metrics (prometheus-client), served at ``/metrics``.

Labels are bounded: ``endpoint`` is the route's template (``/t/{tenant}/token``), never the raw
path; ``tenant`` is a tenant the request was resolved to (``-`` for anything else), so a
scanner cannot mint label values; ``error`` is an OAuth error code. With ``serve --workers N``
every worker writes to ``PROMETHEUS_MULTIPROC_DIR`` (set by ``serve``) and any worker's
``/metrics`` answers for all of them.

``/metrics`` needs ``Authorization: Bearer <TESSERA_METRICS_TOKEN>`` when that setting is
set; without it only loopback clients are answered (tenant names and client ids are not for
the world).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

from broker.json_response import JSONResponse

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("tessera_http_requests", "HTTP requests answered",
                   ["endpoint", "tenant", "status"])
LATENCY = Histogram("tessera_http_request_duration_seconds", "time to answer, by endpoint",
                    ["endpoint"], buckets=LATENCY_BUCKETS)
TOKENS = Counter("tessera_tokens_issued", "tokens issued at the token endpoint",
                 ["tenant", "grant_type"])
REFUSALS = Counter("tessera_oauth_refusals", "OAuth error answers, by endpoint and error code",
                   ["endpoint", "error"])
DB_UNAVAILABLE = Counter("tessera_database_unavailable",
                         "requests answered 503 because the database was down or too slow")
KEY_AGE = Gauge("tessera_signing_key_age_seconds", "age of the tenant's active signing key",
                ["tenant"], multiprocess_mode="max")
POOL = Gauge("tessera_db_pool_connections", "database connections by pool and state",
             ["pool", "state"], multiprocess_mode="livesum")
JOURNAL_BATCH = Histogram("tessera_journal_batch_records",
                          "records per group commit of one-time values and audit events",
                          buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

UNKNOWN = "-"


def observe_request(endpoint: str, tenant: str | None, status: int, seconds: float) -> None:
    REQUESTS.labels(endpoint, tenant or UNKNOWN, str(status)).inc()
    LATENCY.labels(endpoint).observe(seconds)


def registry() -> CollectorRegistry | None:
    """The registry to expose: every worker's files in multiprocess mode, else the default."""
    if os.environ.get(MULTIPROC_ENV):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return None  # prometheus_client's default registry


def _loopback(request: Request) -> bool:
    client = request.client
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client.host).is_loopback
    except ValueError:
        return False


def authorized(request: Request, token: str) -> bool:
    if not token:
        return _loopback(request)
    scheme, _, offered = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(offered.strip().encode(),
                                                              token.encode())


async def endpoint(request: Request) -> Response:
    broker = request.app.state.broker
    if not authorized(request, broker.settings.metrics_token):
        return JSONResponse(
            {"error": "invalid_token", "error_description": "metrics need the metrics token"
             if broker.settings.metrics_token else "metrics answer loopback clients only; set "
             "TESSERA_METRICS_TOKEN to scrape from elsewhere"},
            status_code=401, headers={"WWW-Authenticate": 'Bearer realm="tessera-metrics"',
                                      "Cache-Control": "no-store"})
    broker.sample_pools()
    chosen = registry()
    body = generate_latest(chosen) if chosen is not None else generate_latest()
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

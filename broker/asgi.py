"""ASGI entry point for process managers (``hypercorn broker.asgi:app``, ``serve --workers``).

Settings come from the environment. Migrations and the demo bootstrap are the starting
process's job (``tessera serve`` does both before it spawns workers); this process only proves
it holds the database's master key (``broker.deployment``, Mode.WORKER) and refuses to load,
with one line and exit code 2, when it does not or the database is not initialised.
"""

from __future__ import annotations

import asyncio
import sys

from broker import hypercorn_tls
from broker.app import create_app
from broker.config import Settings, StartupError
from broker.deployment import Mode, open_deployment
from broker.runtime import Broker
from broker.serve import tune_gc


def _settings() -> Settings:
    try:
        opened = asyncio.run(open_deployment(Settings.load(), Mode.WORKER, admin_token=True))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return opened.settings


hypercorn_tls.install(strict=False)  # TLS client certificates reach the app (each worker)
app = create_app(Broker.build(_settings()), migrate=False)
tune_gc()

"""ASGI entry point for process managers (``hypercorn broker.asgi:app``, ``serve --workers``).

Settings come from the environment. Migrations and the demo bootstrap are the starting
process's job (``tessera serve`` does both before it spawns workers).
"""

from __future__ import annotations

from broker import hypercorn_tls
from broker.app import create_app
from broker.config import Settings
from broker.runtime import Broker
from broker.serve import tune_gc

hypercorn_tls.install(strict=False)  # TLS client certificates reach the app (each worker)
app = create_app(Broker.build(Settings.load()), migrate=False)
tune_gc()

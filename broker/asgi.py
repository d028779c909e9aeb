"""ASGI entry point for process managers (``hypercorn broker.asgi:app``, ``serve --workers``).

Settings come from the environment. The demo bootstrap is the starting process's job
(``tessera serve`` does it before it spawns workers); this process proves it holds the
database's master key (``broker.deployment``, Mode.WORKER), migrates a schema that is behind
(serialised across replicas) unless ``TESSERA_AUTO_MIGRATE=false`` (then it refuses), and
refuses to load, with one line and exit code 2, when the key is wrong, the database is not
initialised, or ``TESSERA_BASE_URL`` is not set (every issuer is built from it; a process
manager's socket does not tell this process its public URL).
"""

from __future__ import annotations

import asyncio
import sys

from broker import hypercorn_h11, hypercorn_tls, logs
from broker.app import create_app
from broker.config import Settings, StartupError
from broker.deployment import Mode, open_deployment
from broker.runtime import Broker
from broker.serve import tune_gc


def _settings() -> Settings:
    try:
        settings = Settings.load()
        if not settings.base_url:
            raise StartupError("TESSERA_BASE_URL is not set: the public URL of this server "
                               "(e.g. https://idp.example.com) is the prefix of every issuer")
        logs.configure(settings)
        opened = asyncio.run(open_deployment(settings, Mode.WORKER, admin_token=True))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(6) from None  # as the CLI: cannot start here
    return opened.settings


hypercorn_tls.install(strict=False)  # TLS client certificates reach the app (each worker)
hypercorn_h11.install()  # one write per fixed-length response
app = create_app(Broker.build(_settings()), migrate=False)
tune_gc()

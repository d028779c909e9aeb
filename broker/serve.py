"""``tessera serve``: open the deployment (initialise an empty database, or prove the master key
and migrate), bootstrap the demo, serve with Hypercorn, shut down gracefully."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.run import run as hypercorn_run
from sqlalchemy.exc import SQLAlchemyError

from adapters.errors import OAuthError
from broker import hypercorn_h11, hypercorn_tls
from broker import management as ops
from broker.app import create_app
from broker.config import Settings, StartupError
from broker.deployment import Mode, Opened, open_deployment
from broker.endpoints.demo import demo_audience
from broker.runtime import Broker, TenantView
from tenants.settings import TenantSettings

DEMO_TENANT, DEMO_CLIENT = "demo", "demo-agent"


def _write_private(file: Path, value: dict[str, Any]) -> None:
    file.unlink(missing_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(value, fh)


def _read_saved(file: Path | None) -> dict[str, Any] | None:
    if file is None or not file.exists():
        return None
    try:
        saved = json.loads(file.read_text())
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) else None


async def bootstrap_demo(broker: Broker) -> dict[str, Any] | None:
    """On first start (no tenants at all) create tenant ``demo`` and client ``demo-agent``;
    keep its one-time secret in the demo file (0600, next to the SQLite file; on PostgreSQL
    only where ``TESSERA_DEMO_FILE`` names one). The answer carries ``created`` (True only for
    the start that made it: only that one prints the secret). Replicas starting together on an
    empty database race here; the one that loses finds the demo made and goes on."""
    file = broker.settings.demo_path()
    if not broker.settings.demo:
        return None
    if not await ops.list_tenants(broker):
        try:
            await ops.create_tenant(broker, DEMO_TENANT, display_name="Demo tenant")
        except (OAuthError, SQLAlchemyError):
            if any(t["id"] == DEMO_TENANT for t in await ops.list_tenants(broker)):
                return None  # another replica made it just now
            raise
        issuer = broker.issuer(DEMO_TENANT)
        view = TenantView(DEMO_TENANT, issuer, TenantSettings())
        client = await ops.create_client(
            broker, DEMO_TENANT, name="Demo agent", client_id=DEMO_CLIENT,
            scopes=["demo.read", "demo.write"], audiences=[demo_audience(view)],
        )
        saved = {"tenant": DEMO_TENANT, "client_id": DEMO_CLIENT,
                 "client_secret": client["client_secret"]}
        if file is not None:
            await asyncio.to_thread(_write_private, file, saved)
        return {**saved, "created": True, "file": str(file) if file else None}
    saved = await asyncio.to_thread(_read_saved, file)
    if saved is None:
        return None
    return {**saved, "created": False, "file": str(file)}


def banner(broker: Broker, demo: dict[str, Any] | None, opened: Opened) -> str:
    lines = [f"tessera listening on {broker.settings.base_url}",
             f"  database:           {broker.settings.database_shown()}"
             + (" (initialised now)" if opened.initialised else ""),
             f"  master key:         {opened.key_source} (id {opened.key_id})"]
    if demo:
        issuer = broker.issuer(demo["tenant"])
        lines += [
            f"  demo issuer:        {issuer}",
            f"  discovery:          {issuer}/.well-known/openid-configuration",
            f"  demo client_id:     {demo['client_id']}",
        ]
        # the secret is shown once, by the start that created it; later starts say where it is
        secret = demo["client_secret"] if demo["created"] else "$DEMO_SECRET"
        if demo["created"]:
            lines.append(f"  demo client_secret: {secret}   (shown once; also in "
                         f"{demo['file'] or 'nowhere else'})")
        else:
            lines.append(f"  demo client_secret: in {demo['file']} (0600): "
                         f"DEMO_SECRET=$(python3 -c 'import json; print(json.load(open("
                         f"\"{demo['file']}\"))[\"client_secret\"])')")
        lines += [
            "  get a token and call the demo resource with it:",
            f"    TOKEN=$(curl -s -u \"{demo['client_id']}:{secret}\" "
            f"-d grant_type=client_credentials {issuer}/token | python3 -c "
            "'import json,sys; print(json.load(sys.stdin)[\"access_token\"])') && "
            f"curl -s -H \"Authorization: Bearer $TOKEN\" {issuer}/demo/whoami",
        ]
    lines.append(f"  admin API token:    {opened.admin_token_source}")
    return "\n".join(lines)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (a faster event loop for the same code), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def tune_gc() -> None:
    """Move what start-up built out of the collector's sight and collect the young generation
    less often: each request allocates thousands of short-lived objects, and full collections
    over the long-lived ones showed up as latency spikes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


async def prepare(settings: Settings) -> Broker:
    """Open the deployment (``StartupError`` before anything is written when this process
    does not hold its master key) and bootstrap the demo; print the banner."""
    opened = await open_deployment(settings, Mode.INIT, admin_token=True)
    broker = Broker.build(opened.settings)
    demo = await bootstrap_demo(broker)
    print(banner(broker, demo, opened), flush=True)
    return broker


def check_listen(host: str, port: int) -> None:
    """Fail before anything is printed or prepared when the address cannot be listened on
    (in use, not ours): one line, not Hypercorn's traceback after a "listening" banner."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: "
                               f"{exc.strerror or type(exc).__name__}") from None


CLIENT_CERT_MODES = {"optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def hypercorn_config(host: str, port: int, certfile: str | None, keyfile: str | None,
                     ca_certs: str | None = None, client_cert: str | None = None) -> Config:
    """``ca_certs`` and ``client_cert`` (optional|required): ask TLS clients for a certificate
    chaining to that bundle (OpenSSL verifies it in the handshake; ``broker.hypercorn_tls``
    hands it to the app)."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = 10.0
    config.accesslog = None  # tessera's own access log (broker.observe) names route and tenant
    config.errorlog = logging.getLogger("hypercorn.error")  # through broker.logs' handler
    config.h11_max_incomplete_size = 16 * 1024
    if certfile:
        config.certfile, config.keyfile = certfile, keyfile
    if ca_certs:
        config.ca_certs = ca_certs
        config.verify_mode = CLIENT_CERT_MODES[client_cert or "optional"]
    return config


async def serve(
    settings: Settings, host: str, port: int, certfile: str | None = None,
    keyfile: str | None = None, *, ca_certs: str | None = None, client_cert: str | None = None,
) -> None:
    """One process: the app and the key schedule on this event loop."""
    hypercorn_tls.install(strict=bool(ca_certs))
    hypercorn_h11.install()  # one write per fixed-length response
    check_listen(host, port)
    broker = await prepare(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(broker, migrate=False)
    config = hypercorn_config(host, port, certfile, keyfile, ca_certs, client_cert)
    tune_gc()
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def serve_workers(
    settings: Settings, host: str, port: int, workers: int, certfile: str | None = None,
    keyfile: str | None = None, *, ca_certs: str | None = None, client_cert: str | None = None,
) -> int:
    """Several worker processes on one listening socket (Hypercorn's process manager); each
    worker is a full replica sharing only the database and the master key."""
    hypercorn_tls.install(strict=bool(ca_certs))  # the check; broker.asgi installs per worker
    check_listen(host, port)

    async def _prepare() -> Settings:
        broker = await prepare(settings)
        await broker.close()
        return broker.settings

    proven = asyncio.run(_prepare())
    os.environ["TESSERA_BASE_URL"] = settings.base_url
    os.environ["TESSERA_AUTO_MIGRATE"] = "true" if settings.auto_migrate else "false"
    # the workers (broker.asgi) check the very key this process proved
    os.environ["TESSERA_MASTER_KEY"] = proven.master_key
    for name, value in (("TESSERA_MASTER_KEY_ACCEPTED", proven.master_key_accepted),
                        ("TESSERA_KEY_ROOT", proven.key_root)):  # a master-key rotation's
        if value:
            os.environ[name] = value
    os.environ["TESSERA_ADMIN_TOKEN"] = proven.admin_token
    config = hypercorn_config(host, port, certfile, keyfile, ca_certs, client_cert)
    config.application_path = "broker.asgi:app"
    config.workers = workers
    if event_loop_factory() is not None:
        config.worker_class = "uvloop"
    return hypercorn_run(config)

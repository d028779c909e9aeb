"""Commands on the local deployment itself (never over ``--url``): ``serve``, ``init``,
``migrate``, ``admin-token`` and the development helper ``id-token``."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path
from typing import Any

from broker import logs
from broker.cli.exits import CHECK_FAILED, NOT_FOUND, OK, USAGE, CliError
from broker.cli.inputs import shared_options
from broker.cli.transport import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Job,
    Local,
    Transport,
    op,
    remote_url,
)
from broker.config import Settings, StartupError
from broker.deployment import Mode, open_deployment


def cmd_init(args: argparse.Namespace) -> int:
    """Initialise an empty database (schema, master key check value; the master key and admin
    token files unless given); on an initialised one: verify the key and migrate."""
    opened = asyncio.run(open_deployment(Settings.load(), Mode.INIT, admin_token=True))
    settings = opened.settings
    report = {
        "database": settings.database_shown(),
        "initialised": opened.initialised,
        "master_key": opened.key_source,
        "master_key_id": opened.key_id,
        "admin_token": opened.admin_token_source,
        "created": [str(f) for f in opened.created],
    }
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif opened.initialised:
        print(f"initialised the tessera database {report['database']}\n"
              f"  master key:  {report['master_key']} (id {opened.key_id})\n"
              f"  admin token: {report['admin_token']}")
    else:
        print(f"the tessera database {report['database']} is already initialised; its master "
              f"key (id {opened.key_id}) checked, the schema is current")
    return OK

def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the schema to head (serialised across replicas), or with ``--check`` say where it
    stands: exit 0 at head, 1 behind (nothing written, no master key needed)."""
    from sqlalchemy.exc import SQLAlchemyError

    from tenants import migrate as migrations
    from tenants.db import create_engine

    settings = Settings.load()
    path = settings.sqlite_path()
    if path is not None and not path.exists():
        raise StartupError(f"no tessera database at {path}; run `tessera init` or "
                           "`tessera serve` first")

    async def where() -> migrations.SchemaStatus:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        try:
            return await migrations.status(engine)
        except (SQLAlchemyError, OSError) as exc:
            raise StartupError(f"cannot use the database {settings.database_shown()}: "
                               f"{type(exc).__name__}") from None
        finally:
            await engine.dispose()

    before = asyncio.run(where())
    if not args.check and before.current is not None and not before.at_head:
        asyncio.run(open_deployment(settings, Mode.MIGRATE))
    after = before if args.check else asyncio.run(where())
    report = {"database": settings.database_shown(), "before": before.current,
              "current": after.current, "head": after.head, "at_head": after.at_head}
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    elif args.check or before.at_head:
        print(after.describe())
    else:
        print(f"migrated {report['database']} from {before.current} to {after.current}")
    if before.current is None:
        raise StartupError(f"no tessera schema in {settings.database_shown()}; run `tessera "
                           "init` first")
    return OK if after.at_head else CHECK_FAILED

def cmd_serve(args: argparse.Namespace) -> int:
    from broker.serve import event_loop_factory, serve, serve_workers

    if (args.ca_certs or args.client_cert) and not args.certfile:
        raise CliError("--ca-certs and --client-cert need --certfile", USAGE)
    if args.client_cert and not args.ca_certs:
        raise CliError("--client-cert needs --ca-certs", USAGE)
    client_cert = args.client_cert or ("optional" if args.ca_certs else None)
    settings = Settings.load().with_base_url(args.host, args.port,
                                             "https" if args.certfile else "http")
    logs.configure(settings)
    if args.no_migrate:
        settings = settings.replace(auto_migrate=False)
    if args.workers > 1:
        return serve_workers(settings, args.host, args.port, args.workers, args.certfile,
                             args.keyfile, ca_certs=args.ca_certs, client_cert=client_cert)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(settings, args.host, args.port, args.certfile, args.keyfile,
                             ca_certs=args.ca_certs, client_cert=client_cert))
    except KeyboardInterrupt:
        pass
    return OK

def cmd_admin_token(args: argparse.Namespace) -> int | Job:
    """Print the admin token; ``rotate``: a new one on every replica (also over ``--url``),
    the current one working for ``--overlap`` seconds; on the local deployment the admin token
    file, if the token comes from one, is replaced with the new token."""
    if args.action == "show":
        print(Settings.load().admin_token_value())
        return OK
    rotation = op("rotate_admin_token", body={"overlap_seconds": args.overlap})

    def render(value: Any) -> int:
        settings = Settings.load()
        path = None if remote_url(args.broker_url) or settings.admin_token else \
            settings.admin_token_path()
        if path is not None:
            _replace_secret_file(path, value["admin_token"])
        shown = {**value, "admin_token_file": str(path) if path else None}
        print(json.dumps(shown, indent=2) if args.json else value["admin_token"])
        return OK

    return Job(rotation.run, render=render)


def _replace_secret_file(path: Path, value: str) -> None:
    """``path`` holds ``value`` now (mode 0600, replaced in one step)."""
    fresh = path.with_name(path.name + ".tmp")
    fresh.unlink(missing_ok=True)
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    os.replace(fresh, path)

def cmd_id_token(args: argparse.Namespace) -> Job:
    """Sign an ID token for a user (development and tests): on the local deployment only."""
    from broker import id_jag

    async def mint(t: Transport) -> dict[str, Any]:
        if not isinstance(t, Local):
            raise CliError("id-token signs with the local deployment's keys; it does not "
                           "work over --url", USAGE)
        tenant, client = await t.broker.lookup(args.tenant, args.client)  # NotFound: exit 4
        if client is None:
            raise CliError(f"no client {args.client!r} in tenant {args.tenant!r}", NOT_FOUND)
        token = await id_jag.mint_id_token(t.broker, tenant, subject=args.sub,
                                           client_id=args.client, lifetime=args.lifetime)
        return {"id_token": token}

    def render(value: Any) -> int:
        print(json.dumps(value, indent=2) if args.json else value["id_token"])
        return OK

    return Job(mint, render=render)

def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the broker (Hypercorn)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--certfile", help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--keyfile", help="private key of --certfile (PEM)")
    serve.add_argument("--ca-certs", help="CA bundle (PEM) that TLS client certificates must "
                       "chain to (mutual TLS, RFC 8705)")
    serve.add_argument("--client-cert", choices=["optional", "required"],
                       help="ask TLS clients for a certificate (default with --ca-certs: "
                       "optional)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (replicas; use PostgreSQL for more than one)")
    serve.add_argument("--no-migrate", action="store_true",
                       help="refuse a schema that is behind instead of migrating it (run "
                       "`tessera migrate` yourself)")
    serve.set_defaults(func=cmd_serve, local_only=True)

    init = sub.add_parser("init", help="initialise an empty database: schema, master key and "
                          "admin token (files next to the SQLite file unless given)")
    shared_options([init], tenant=False)
    init.set_defaults(func=cmd_init, local_only=True)
    mig = sub.add_parser("migrate", help="bring the database schema to this version's head "
                         "(serialised across replicas)")
    mig.add_argument("--check", action="store_true",
                     help="only say where the schema stands: exit 0 at head, 1 behind")
    shared_options([mig], tenant=False)
    mig.set_defaults(func=cmd_migrate, local_only=True)

    tok = sub.add_parser("admin-token", help="print the admin API bearer token, or rotate it")
    tok.add_argument("action", nargs="?", choices=("show", "rotate"), default="show")
    tok.add_argument("--overlap", type=int, default=3600, help="rotate: seconds the current "
                     "token keeps working (0-604800)")
    shared_options([tok], tenant=False)
    # showing prints this machine's token; a rotation is an admin operation (also over --url)
    tok.set_defaults(func=cmd_admin_token, local_only=lambda args: args.action == "show")

    idt = sub.add_parser("id-token", help="sign an ID token for a user of a tenant (development "
                         "and tests; local deployment only)")
    idt.add_argument("--client", required=True, help="the client the ID token is issued to")
    idt.add_argument("--sub", required=True, help="the user")
    idt.add_argument("--lifetime", type=int, default=300)
    shared_options([idt])
    idt.set_defaults(func=cmd_id_token, local_only=True)

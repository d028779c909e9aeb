"""The ``tessera`` command line: run the broker (``serve``), prepare its database (``init``,
``migrate``) and manage tenants, clients, upstreams, the trust registry, keys and the audit
chain.

Management commands run the admin API's operations (``broker.admin.routes``): on the local
deployment, in this process (which proves it holds the database's master key before it writes
anything, ``broker.deployment``), or on a remote broker with ``--url URL`` / ``TESSERA_URL``
and the admin token (``TESSERA_ADMIN_TOKEN`` or ``TESSERA_ADMIN_TOKEN_FILE``). Either way the
same models validate the same bodies. Exit codes: see ``broker.cli.exits``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from adapters.errors import OAuthError
from broker.cli import output
from broker.cli.commands import (
    anomaly,
    api_keys,
    clients,
    demo_resource,
    deployment,
    keys,
    legacy_apps,
    master_key,
    registry,
    resources,
    roles,
    runtime,
    self_registration,
    tenants,
    upstreams,
)
from broker.cli.exits import UNAVAILABLE, USAGE, CliError, for_status
from broker.cli.transport import Job, remote_url, run_job
from broker.config import StartupError

EPILOG = """exit codes: 0 done; 1 a check found a problem; 2 usage; 3 conflict (it exists
already, or try again later); 4 not found; 5 refused; 6 deployment unavailable; 7 admin
token missing or wrong.
Management commands run on the local deployment, or on --url / TESSERA_URL with the admin
token (TESSERA_ADMIN_TOKEN or TESSERA_ADMIN_TOKEN_FILE)."""


def version() -> str:
    try:
        return metadata.version("tessera")
    except metadata.PackageNotFoundError:  # a checkout on PYTHONPATH, not installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tessera", description=__doc__.split("\n\n")[0],
                                epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"tessera {version()}")
    # its own dest: subcommands have options named --url too (webhook set --url)
    p.add_argument("--url", dest="broker_url", metavar="URL",
                   help="manage the broker at this URL over its admin API (default "
                   "TESSERA_URL; without either: the local deployment)")
    sub = p.add_subparsers(dest="command", required=True)
    deployment.add_parser(sub)
    master_key.add_parser(sub)
    for area in (tenants, keys, clients, upstreams, registry, self_registration, api_keys,
                 legacy_apps, runtime, anomaly, resources, roles, demo_resource):
        area.add_parser(sub)
    return p


def local_only(args: argparse.Namespace) -> bool:
    """Whether the command acts on this machine's deployment only, as its parser declares it
    (``set_defaults(local_only=...)``: True, or a test of the parsed arguments where only some
    forms are: ``admin-token`` shows the local token, its ``rotate`` works over ``--url``)."""
    declared = getattr(args, "local_only", False)
    return bool(declared(args) if callable(declared) else declared)


def _execute(args: argparse.Namespace) -> int:
    local = local_only(args)
    if local and args.broker_url:
        # TESSERA_URL in the environment is ignored here: it names where to manage, not serve
        raise CliError(f"{args.command} acts on the local deployment only; drop --url", USAGE)
    outcome = args.func(args)
    if isinstance(outcome, int):
        return outcome
    job: Job = outcome
    # serve, init, migrate, admin-token (show) and id-token act on this machine's deployment
    url = None if local else remote_url(args.broker_url)
    value = asyncio.run(run_job(job, url))
    if job.render is not None:
        return job.render(value)
    output.show(value, job.columns, as_json=getattr(args, "json", False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _execute(args)
    except CliError as exc:
        return _fail(exc.message, exc.code)
    except StartupError as exc:  # wrong or missing key, no database: one line, nothing written
        return _fail(str(exc), UNAVAILABLE)
    except OAuthError as exc:
        return _fail(exc.description or exc.error, for_status(exc.status))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        return 0


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _quiet_stdout() -> None:
    """The reader went away (``tessera audit export | head``): say nothing more on stdout,
    and let the interpreter's final flush find nothing to write."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


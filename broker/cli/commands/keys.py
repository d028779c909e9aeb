"""``tessera keys``: a tenant's signing keys (custody, rotation, emergency rotation).

    tessera keys list --tenant T                       backend, state and dates of each key
    tessera keys rotate --tenant T [--wait SECONDS]    promote next (409/exit 3 while it is too
                                                       fresh; --wait retries until it may)
    tessera keys compromise --tenant T --kid K [--reason R]
                                                       K out of service now, a new key active
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from broker.cli.exits import CONFLICT, CliError
from broker.cli.inputs import shared_options
from broker.cli.transport import Job, Transport, op

KEY_COLS = ("kid", "alg", "state", "backend", "created_at", "activated_at", "retire_after")
ROTATION_COLS = ("tenant", "active", "retiring", "next", "dropped")
COMPROMISE_COLS = ("tenant", "kid", "was", "active", "next", "webhook_delivered")
RETRY_EVERY = 5.0


def rotate_waiting(tenant: str, wait: float) -> Job:
    """``rotate_keys``, asked again every few seconds while it answers 409 (the next key is
    not published long enough, or another rotation ran), for at most ``wait`` seconds."""
    rotation = op("rotate_keys", tenant=tenant)

    async def run(t: Transport) -> Any:
        deadline = time.monotonic() + wait
        while True:
            try:
                return await rotation.run(t)
            except CliError as exc:
                left = deadline - time.monotonic()
                if exc.code != CONFLICT or left <= 0:
                    raise
                await asyncio.sleep(min(RETRY_EVERY, left))

    return Job(run, ROTATION_COLS)


def cmd_keys(args: argparse.Namespace) -> Job:
    if args.action == "rotate":
        if args.wait:
            return rotate_waiting(args.tenant, args.wait)
        return op("rotate_keys", ROTATION_COLS, tenant=args.tenant)
    if args.action == "compromise":
        return op("compromise_key", COMPROMISE_COLS, tenant=args.tenant, kid=args.kid,
                  body={"reason": args.reason})
    return op("list_keys", KEY_COLS, tenant=args.tenant)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError("--wait takes 0 to 3600 seconds")
    return value


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="signing keys of a tenant: list, rotate, compromise")
    ksub = keys.add_subparsers(dest="action", required=True)
    ksub.add_parser("list", help="each key's state, backend and dates")
    rot = ksub.add_parser("rotate", help="promote the next key now (refused, exit 3, until it "
                          "has been published long enough)")
    rot.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                     help="retry for up to SECONDS while the rotation is refused as too early")
    comp = ksub.add_parser("compromise", help="emergency rotation: the key leaves the JWKS, "
                           "every token it signed is refused, a new key signs at once")
    comp.add_argument("--kid", required=True)
    comp.add_argument("--reason", default="", help="recorded in the audit chain and webhook")
    shared_options(ksub.choices.values())
    keys.set_defaults(func=cmd_keys)

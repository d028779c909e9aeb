"""``tessera master-key``: rotate the master key, online (``tenants.master_key_rotation``).
On the local deployment only (never over ``--url``): the keys never travel.

    tessera master-key prepare [--new-key-file F]   the new key (F, made 0600 if missing)
                                                    becomes a key of the database
    tessera master-key rewrap [--batch N] [--stop-after N]
                                                    run with master key = new and
                                                    TESSERA_MASTER_KEY_ACCEPTED_FILE = old;
                                                    resumable; ends the rotation
    tessera master-key status                       the key ids and the rotation under way
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from broker.cli.exits import CONFLICT, OK, USAGE, CliError
from broker.cli.inputs import shared_options
from broker.config import (
    Settings,
    create_secret_file,
    parse_master_key,
    read_secret_file,
)
from broker.deployment import Mode, open_deployment
from tenants import deployment, master_key_rotation
from tenants.db import create_engine

NEW_KEY_SUFFIX = ".new"


def _new_key(settings: Settings, given: str | None) -> tuple[bytes, Path, bool]:
    """(the new key, its file, whether it was made now)."""
    if given:
        path = Path(given).expanduser().absolute()
    else:
        current = None if settings.master_key else settings.master_key_path()
        if current is None:
            raise CliError("name the new key's file with --new-key-file (the master key does "
                           "not come from a file here)", USAGE)
        path = current.with_name(current.name + NEW_KEY_SUFFIX)
    made = not path.exists()
    text = create_secret_file(path, "new master key") if made else read_secret_file(
        path, "new master key")
    return parse_master_key(text, str(path)), path, made


async def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    given = Settings.load()
    opened = await open_deployment(given, Mode.USE)
    settings = opened.settings
    new, path, made = _new_key(given, args.new_key_file)
    engine = create_engine(settings.database_url)
    try:
        check = await master_key_rotation.prepare(engine, settings.master_key_bytes(), new,
                                                  time.time())
    except master_key_rotation.RotationError as exc:
        raise CliError(str(exc), CONFLICT) from None
    finally:
        await engine.dispose()
    return {"from": opened.key_id, "to": check.key_id, "new_key_file": str(path),
            "created": made,
            "next": ["restart every replica with TESSERA_MASTER_KEY_ACCEPTED_FILE=" + str(path),
                     "then restart every replica with the new key as master key "
                     f"(TESSERA_MASTER_KEY_FILE={path}) and TESSERA_MASTER_KEY_ACCEPTED_FILE="
                     "the old key's file",
                     "then run `tessera master-key rewrap` with those same two settings"]}


async def _rewrap(args: argparse.Namespace) -> dict[str, Any]:
    opened = await open_deployment(Settings.load(), Mode.USE)
    settings = opened.settings
    accepted = settings.accepted_master_keys()
    if not accepted:
        raise CliError("rewrap needs the old master key as TESSERA_MASTER_KEY_ACCEPTED_FILE "
                       "(and the new one as the master key)", USAGE)
    engine = create_engine(settings.database_url)
    try:
        progress = await master_key_rotation.rewrap(
            engine, settings.master_key_bytes(), accepted[0], batch=args.batch,
            stop_after=args.stop_after)
    except master_key_rotation.RotationError as exc:
        raise CliError(str(exc), CONFLICT) from None
    finally:
        await engine.dispose()
    return {"master_key_id": opened.key_id, "rewrapped": progress.rewrapped,
            "by_kind": progress.by_kind, "finished": progress.finished}


async def _status(_args: argparse.Namespace) -> dict[str, Any]:
    opened = await open_deployment(Settings.load(), Mode.USE)
    engine = create_engine(opened.settings.database_url)
    try:
        found = await deployment.inspect_database(engine)
        facts = await master_key_rotation._facts(engine)
    finally:
        await engine.dispose()
    return {"master_key_id": opened.key_id, "known_key_ids": found.known_ids(),
            "rotation": master_key_rotation.rotation_of(facts)}


def cmd_master_key(args: argparse.Namespace) -> int:
    run = {"prepare": _prepare, "rewrap": _rewrap, "status": _status}[args.action]
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        for name, value in result.items():
            if isinstance(value, list):
                print(f"{name}:")
                for item in value:
                    print(f"  - {item}")
            else:
                print(f"{name}: {value}")
    return OK


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parser(sub: Any) -> None:
    mk = sub.add_parser("master-key", help="rotate the master key (local deployment only)")
    msub = mk.add_subparsers(dest="action", required=True)
    prep = msub.add_parser("prepare", help="make a new master key a key of the database")
    prep.add_argument("--new-key-file", help="the new key (made, mode 0600, if missing; "
                      "default: the master key file's name + .new)")
    rew = msub.add_parser("rewrap", help="re-wrap everything under the new key (run with the "
                          "new key as master key and the old one accepted); resumable")
    rew.add_argument("--batch", type=_positive, default=100, help="values per transaction")
    rew.add_argument("--stop-after", type=_positive, default=None,
                     help="stop after this many values (resume by running again)")
    msub.add_parser("status", help="key ids and the rotation under way")
    shared_options(msub.choices.values(), tenant=False)
    mk.set_defaults(func=cmd_master_key, local_only=True)

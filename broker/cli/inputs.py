"""Reading what a command is given: files, JSON options and ``KEY=VALUE`` pairs, and the
options most commands share (``shared_options``). A file that cannot be read or parsed is a
usage error (exit 2) naming the option, never a traceback; the file's content is never echoed
(it may be a secret)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from broker.cli.exits import USAGE, CliError

NULL: Any = object()  # an option that sets a field to null (absent options are None)


def shared_options(parsers: Iterable[argparse.ArgumentParser], *, tenant: bool = True) -> None:
    """Give each of ``parsers`` (a command's subcommands) the options they share: ``--tenant``
    (required; not with ``tenant=False``: commands of the deployment or the registry) and
    ``--json`` (print the answer as JSON)."""
    for p in parsers:
        if tenant:
            p.add_argument("--tenant", required=True)
        p.add_argument("--json", action="store_true", help="print JSON")


def given(data: dict[str, Any]) -> dict[str, Any]:
    """The fields whose options were given (None: not given; ``NULL``: set to null)."""
    return {k: None if v is NULL else v for k, v in data.items() if v is not None}


def read_text(path: str | None, option: str) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise CliError(f"{option} {path}: {reason}", USAGE) from None


def json_file(path: str | None, option: str) -> Any:
    text = read_text(path, option)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"{option} {path}: not JSON ({_where(exc)})", USAGE) from None


def json_option(raw: str | None, option: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{option} is not JSON ({_where(exc)})", USAGE) from None


def _where(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    return "cannot be parsed"


def pairs(values: Sequence[str], option: str, form: str = "KEY=VALUE",
          *, as_json: bool = False) -> dict[str, Any]:
    """``KEY=VALUE`` options (with ``as_json``, VALUE as JSON when it parses, else a
    string; ``null`` resets)."""
    out: dict[str, Any] = {}
    for pair in values:
        key, sep, raw = pair.partition("=")
        if not sep or not key or (not as_json and not raw):
            raise CliError(f"{option} {pair!r}: {form}", USAGE)
        if as_json:
            try:
                out[key] = json.loads(raw)
            except ValueError:
                out[key] = raw
        else:
            out[key] = raw
    return out

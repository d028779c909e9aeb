"""What a command prints: the answer as indented JSON (``--json``, or when a command names no
columns), else one line per object of ``column=value`` pairs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def show(value: Any, columns: Sequence[str] = (), *, as_json: bool = False) -> None:
    if as_json or not columns:
        print(json.dumps(value, indent=2, sort_keys=True))
        return
    rows = value if isinstance(value, list) else [value]
    for row in rows:
        print("  ".join(f"{c}={json.dumps(row.get(c))}" for c in columns if c in row))


def json_lines(values: Sequence[Any]) -> None:
    for value in values:
        print(json.dumps(value, sort_keys=True))

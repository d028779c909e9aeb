"""Admin API refusals that name the field (a ``400 invalid_request`` with ``field``, and
``errors`` when there are several):

    InvalidRequest (adapters.errors)
    ├── InvalidField   a value the models accepted but the current state refuses
    └── InvalidBody    a body that does not fit its model (pydantic's ValidationError)

Descriptions never repeat the submitted value (it may be a secret).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from adapters.errors import InvalidRequest

PLAIN = {
    "extra_forbidden": "unknown field",
    "missing": "required",
    "json_invalid": "the body is not valid JSON",
    "model_type": "the body must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}


class InvalidField(InvalidRequest):
    def __init__(self, field: str, description: str) -> None:
        super().__init__(f"{field}: {description}")
        self.field = field

    def body(self) -> dict[str, Any]:  # type: ignore[override]
        return {**super().body(), "field": self.field}


class InvalidBody(InvalidRequest):
    def __init__(self, errors: Sequence[dict[str, str]]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        where = f"{first['field']}: " if first["field"] else ""
        super().__init__(f"{where}{first['message']}{more}")
        self.errors = list(errors)

    def body(self) -> dict[str, Any]:  # type: ignore[override]
        out: dict[str, Any] = {**super().body(), "field": self.errors[0]["field"] or None}
        if len(self.errors) > 1:
            out["errors"] = self.errors
        return out


def field_path(loc: Sequence[int | str]) -> str:
    """``("settings", "anomaly_rules", 0, "limit")`` -> ``settings.anomaly_rules[0].limit``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_TAG = re.compile(r"^(str|int|float|bool|none|constrained-[a-z]+|[a-z-]+\[.*\])$")


def _is_tag(part: int | str) -> bool:
    """A union member's tag in a location (``str``, ``list[constrained-str]``), not a field."""
    return isinstance(part, str) and bool(_TAG.match(part))


def validation_error(exc: ValidationError, prefix: Sequence[str] = ()) -> InvalidBody:
    errors = []
    for error in exc.errors(include_url=False, include_input=False)[:20]:
        loc = [*prefix, *(p for p in error["loc"] if not _is_tag(p))]
        message = PLAIN.get(error["type"], error["msg"])
        if error["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        errors.append({"field": field_path(loc), "message": message})
    return InvalidBody(errors)

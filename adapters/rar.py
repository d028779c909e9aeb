"""Rich Authorization Requests (RFC 9396): parsing, schema validation, coverage, consent words.

Pure: no I/O. ``parse`` reads the ``authorization_details`` parameter (§2): a JSON array of
objects, each with a string ``type`` (§2.1) and the common fields of §2.2 in their JSON types.
``validate`` checks each object against the JSON Schema (draft 2020-12, §12.3) its tenant
registered for the type, and against the client's ``authorization_details_types`` (§10).
``covered`` compares requested details with granted ones (§6.1: a token request, a refresh or
a token exchange never gets more than was granted). Every defect raises
``InvalidAuthorizationDetails`` (§5) with a description naming the object and the defect.

RFC 9396 §5 wants unknown fields refused, and JSON Schema ignores them unless told otherwise, so
tenants must write closed schemas; ``registered_schema`` does that::

    registered_schema("payment_initiation", {"properties": {"creditorName": {"type": "string"}}})
    # -> {"type": "object", "properties": {"type": {"const": "payment_initiation"},
    #     "creditorName": {...}}, "required": ["type"], "additionalProperties": false, ...}

Only local references (``"$ref": "#..."``) are allowed in a schema: nothing is ever fetched.
Formats (``"format": "date"``...) are asserted where ``jsonschema`` can check them.
"""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, get_origin

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match

from adapters import json_reader
from adapters.errors import InvalidAuthorizationDetails

COMMON_FIELDS: Final[Mapping[str, Any]] = {
    "type": str, "locations": list[str], "actions": list[str], "datatypes": list[str],
    "identifier": str, "privileges": list[str]}
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
MAX_BYTES: Final = 16_384
MAX_ITEMS: Final = 20
MAX_DEPTH: Final = 32  # nesting of arrays and objects inside one parameter
_DESCRIBE_EXTRAS: Final = 3  # type-specific fields shown by describe()
_DESCRIBE_TEXT: Final = 80  # characters of one value shown by describe()
# RFC 6749 §5.2: error_description = 1*( %x20-21 / %x23-5B / %x5D-7E )
_NOT_DESCRIPTION_CHAR: Final = re.compile(r"[^\x20\x21\x23-\x5B\x5D-\x7E]")


@dataclass(frozen=True)
class DetailType:
    """An authorization details type a tenant registered (RFC 9396 §2.1)."""

    type: str
    schema: Mapping[str, Any]  # JSON Schema (draft 2020-12) for one object of this type
    description: str = ""  # words shown on a consent page


def _fail(description: str) -> InvalidAuthorizationDetails:
    """The error, its description echoing caller input made safe for ``error_description``."""
    return InvalidAuthorizationDetails(
        _NOT_DESCRIPTION_CHAR.sub("?", description.replace('"', "'")[:300]))


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _plain(schema: Any) -> dict[str, Any]:
    """A JSON-only copy of ``schema`` (``jsonschema`` wants ``dict``, the cache wants text)."""
    if not isinstance(schema, Mapping):
        raise ValueError("a schema must be a JSON object")
    try:
        return json.loads(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a schema must be plain JSON: {exc}") from exc


def _refs(node: Any) -> Iterator[str]:
    """Every ``$ref``/``$dynamicRef`` string, also inside data keywords: erring on refusal."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield value
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def check_schema(schema: Any) -> None:
    """Vet a schema a tenant registers: a valid draft 2020-12 JSON object schema with local
    references only. Raises ``ValueError`` with the reason."""
    plain = _plain(schema)
    if plain.get("$schema", DIALECT).rstrip("#") != DIALECT:
        raise ValueError(f"only JSON Schema draft 2020-12 ({DIALECT}) is supported")
    try:
        Draft202012Validator.check_schema(plain)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "(root)"
        raise ValueError(f"invalid schema at {where}: {exc.message}") from exc
    for ref in _refs(plain):
        if not ref.startswith("#"):
            raise ValueError(f"remote references are not allowed: {ref}")


def registered_schema(type_name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` made the schema of type ``type_name``: an object whose ``type`` is required
    and constant, refusing unknown fields unless it sets ``additionalProperties`` itself.
    Checked with ``check_schema``. (Closed schemas do not combine with ``allOf``.)"""
    closed = copy.deepcopy(_plain(schema))
    closed.setdefault("$schema", DIALECT)
    closed["type"] = "object"
    closed["properties"] = {**closed.get("properties", {}), "type": {"const": type_name}}
    closed["required"] = ["type", *(name for name in closed.get("required", ()) if name != "type")]
    closed.setdefault("additionalProperties", False)
    check_schema(closed)
    return closed


@lru_cache(maxsize=256)
def _compiled(canonical_schema: str) -> Draft202012Validator:
    """One validator per schema content (not per object id: ids are reused after collection)."""
    schema = json.loads(canonical_schema)
    check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _check_item(index: int, item: Any) -> None:
    """RFC 9396 §2.1-2.2: an object with a non-empty string ``type``, common fields typed."""
    where = f"authorization_details[{index}]"
    if not isinstance(item, dict):
        raise _fail(f"{where}: not a JSON object")
    if "type" not in item:
        raise _fail(f"{where}: missing type")
    for name, kind in COMMON_FIELDS.items():
        if name not in item:
            continue
        if get_origin(kind) is list:
            if not _is_str_list(item[name]):
                raise _fail(f"{where}.{name}: not an array of strings")
        elif not isinstance(item[name], kind) or (name == "type" and not item[name]):
            raise _fail(f"{where}.{name}: not a {'non-empty ' if name == 'type' else ''}string")


def parse(raw: str | None, *, max_bytes: int = MAX_BYTES,
          max_items: int = MAX_ITEMS) -> tuple[dict[str, Any], ...]:
    """The ``authorization_details`` parameter (§2), structurally checked. None or "" -> ()."""
    if not raw:
        return ()
    if len(raw) > max_bytes or len(raw.encode("utf-8", "surrogatepass")) > max_bytes:
        raise _fail(f"authorization_details is larger than {max_bytes} bytes")
    try:
        value = json_reader.loads(raw, max_bytes=None, max_depth=MAX_DEPTH)
    except json_reader.JSONInputError as exc:
        raise _fail(f"authorization_details is not valid JSON: {exc}") from None
    if not isinstance(value, list):
        raise _fail("authorization_details is not a JSON array")
    if len(value) > max_items:
        raise _fail(f"authorization_details has more than {max_items} objects")
    for index, item in enumerate(value):
        _check_item(index, item)
    return tuple(value)


def _path(index: int, parts: Sequence[str | int]) -> str:
    return f"authorization_details[{index}]" + "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def validate(details: Sequence[dict[str, Any]], types: Mapping[str, DetailType], *,
             allowed: Collection[str] | None = None) -> None:
    """Each object of a registered type the client may use (§10), valid against its schema (§5).
    ``allowed`` is the client's ``authorization_details_types``; None: any registered type."""
    for index, detail in enumerate(details):
        _check_item(index, detail)
        kind = detail["type"]
        if kind not in types:
            raise _fail(f"authorization_details[{index}]: unknown type {kind!r}")
        if allowed is not None and kind not in allowed:
            raise _fail(f"authorization_details[{index}]: type {kind!r} is not allowed "
                        "for this client")
    for index, detail in enumerate(details):
        schema = json.dumps(_plain(types[detail["type"]].schema), sort_keys=True)
        error = best_match(_compiled(schema).iter_errors(detail))
        if error is not None:
            raise _fail(f"{_path(index, list(error.absolute_path))}: {error.message}")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _covers(granted: Mapping[str, Any], requested: Mapping[str, Any]) -> bool:
    for name, wanted in requested.items():
        if name not in granted:
            return False
        have = granted[name]
        if _is_str_list(wanted) and _is_str_list(have):
            if not set(wanted) <= set(have):
                return False
        elif _canonical(wanted) != _canonical(have):  # JSON equality: true is not 1
            return False
    return True


def covered(requested: Sequence[dict[str, Any]], granted: Sequence[dict[str, Any]]) -> bool:
    """True when each requested object is within one granted object (§6.1): same ``type``,
    arrays of strings subsets, every other field equal; fields the request omits narrow it.
    Rights are not pooled across granted objects."""
    return all(any(_covers(grant, want) for grant in granted) for want in requested)


def _text(value: Any) -> str | None:
    """A scalar, an array of scalars or an object of scalars in plain words; control and format
    characters (bidi overrides) removed, long values cut. None: nothing to show."""
    if isinstance(value, list):
        if any(isinstance(item, dict | list) for item in value):
            return None
        return ", ".join(filter(None, map(_text, value))) or None
    if isinstance(value, dict):
        if any(isinstance(item, dict | list) for item in value.values()):
            return None
        return " ".join(filter(None, (_text(value[key]) for key in sorted(value)))) or None
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if value is None:
        return None
    text = "".join(c for c in str(value) if unicodedata.category(c) not in ("Cc", "Cf"))
    text = " ".join(text.split())
    return text if len(text) <= _DESCRIBE_TEXT else text[: _DESCRIBE_TEXT - 1] + "…"


def describe(detail: Mapping[str, Any], types: Mapping[str, DetailType]) -> str:
    """Plain words for a consent page, e.g. ``Payment initiation: initiate, status at
    https://bank.example/payments — instructedAmount: 123.50 EUR``. Deterministic; the caller
    escapes it for HTML."""
    kind = str(detail.get("type", ""))
    registered = types.get(kind)
    text = _text(registered.description if registered and registered.description else kind) or ""
    if actions := _text(detail.get("actions")):
        text += f": {actions}"
    if locations := _text(detail.get("locations")):
        text += f" at {locations}"
    extras = [f"{name}: {words}" for name in ("identifier", "datatypes", "privileges")
              if (words := _text(detail.get(name)))]
    others = (name for name in sorted(detail) if name not in COMMON_FIELDS)
    extras += [f"{name}: {words}" for name in others if (words := _text(detail[name]))][
        :_DESCRIBE_EXTRAS]
    return f"{text} — {'; '.join(extras)}" if extras else text


def to_json(details: Sequence[Mapping[str, Any]]) -> str:
    """Compact canonical JSON (sorted keys) for storage, token claims and form reposting."""
    return json.dumps(list(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)

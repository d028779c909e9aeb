"""The one bounded JSON reader for hostile input (RFC 8259; RFC 7515 §5.2, RFC 7519 §4).

Every JWT header and claims set and every JSON request body or fetched JSON document goes
through ``loads`` (or ``load_object``). On top of ``json.loads`` it refuses:

* more than ``max_bytes`` of UTF-8 (RFC 8259 §9 lets a parser limit size), or bytes that are
  not strict UTF-8 (§8.1; no encoded surrogates);
* nesting deeper than ``max_depth`` arrays and objects, checked *before* parsing, so a
  100 000-level ``[[[[...`` never reaches the recursive decoder (§9 limits depth too);
* ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON at all, §6) and number literals that only
  fit a float as infinity (``1e400``): every number that comes out is finite;
* the same member name twice in one object (§4 leaves it open; RFC 7515 §5.2 and RFC 7519 §4
  allow rejecting it, and two parsers picking different members is a classic confusion);
* strings holding a lone UTF-16 surrogate (``"\\ud800"``), which no UTF-8 encoder can write;
* strings (values or member names) holding U+0000 (``"\\u0000"``): PostgreSQL cannot store it
  in text, and no identifier, claim or setting has a use for it.

The depth check is cheap on the hot path: the number of ``[`` and ``{`` bounds the depth, so
only a document with more brackets than ``max_depth`` (rare for a JWT) is measured, with
linear-time string operations only (no recursion, no Python loop per character): at worst
(a 64 KiB document nested exactly ``max_depth`` deep throughout) about what parsing it costs.
Every defect raises ``JSONInputError`` (a ``ValueError``) with a short description that never
quotes the input.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

MAX_DEPTH: Final = 32
MAX_BYTES: Final = 65_536

# A string once its escapes are gone (see ``_deeper_than``), or its unterminated rest: from a
# quote this always matches, so ``sub`` never retries inside it: linear.
_PLAIN_STRING: Final = re.compile(r'"[^"]*(?:"|\Z)')
_BRACKETS_ONLY: Final = (bytes.maketrans(b"{}", b"[]"),  # one kind; every other byte deleted
                         bytes(sorted(set(range(256)) - set(b"[]{}"))))
_WHITESPACE: Final = " \t\n\r"  # RFC 8259 §2 ws


class JSONInputError(ValueError):
    """Input that is not acceptable JSON; the message says why (without quoting it)."""


def _no_constant(name: str) -> Any:
    raise JSONInputError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONInputError("number out of range")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JSONInputError("duplicate member name")
    return obj


def _deeper_than(text: str, limit: int) -> bool:
    """Arrays/objects nested more than ``limit`` deep, outside strings. No recursion and no
    Python loop per character: string operations cut out the strings and everything that is
    not a bracket; then each round either finds a run of openers that is too deep already, or
    removes the innermost level with one ``replace`` (``limit`` rounds at most).
    Unbalanced brackets count as too deep: such a text is not JSON anyway."""
    if text.count("[") + text.count("{") <= limit:
        return False  # fast path: not enough brackets to be that deep
    # escapes go first (left to right, as a decoder pairs them), so no quote inside a string
    # is left that could end it; then the strings; then every byte but the brackets
    unescaped = text.replace("\\\\", "").replace('\\"', "")
    outside = _PLAIN_STRING.sub("", unescaped).encode("utf-8", "surrogatepass")
    brackets = outside.translate(*_BRACKETS_ONLY).decode("ascii")
    for allowed in range(limit, 0, -1):  # levels the remaining brackets may still nest
        if not brackets:
            return False
        if "[" * (allowed + 1) in brackets:
            return True
        inner_removed = brackets.replace("[]", "")
        if len(inner_removed) == len(brackets):
            return True  # nothing closes
        brackets = inner_removed
    return bool(brackets)


# built once: ``json.loads`` with hooks builds a decoder per call, which costs more than the parse
_DECODER: Final = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float,
                                   object_pairs_hook=_unique_members)


def _decode(text: str) -> Any:
    """``_DECODER.decode`` without its two whitespace scans in the usual case (no whitespace
    around the value, as in every JWT segment)."""
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return _DECODER.decode(text)  # leading whitespace is fine; other defects re-raise
    if end != len(text) and text[end:].strip(_WHITESPACE):
        raise JSONInputError("extra data after the JSON value")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def loads(data: bytes | str, *, max_bytes: int | None = MAX_BYTES,
          max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` within the limits above (``max_bytes`` None: the caller bounded it)."""
    if isinstance(data, bytes | bytearray):
        if max_bytes is not None and len(data) > max_bytes:
            raise JSONInputError(f"larger than {max_bytes} bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise JSONInputError("not UTF-8") from None
    else:
        text = data
        if max_bytes is not None and len(text) > max_bytes:
            raise JSONInputError(f"larger than {max_bytes} bytes")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise JSONInputError("not UTF-8 (a lone surrogate)") from None
        if max_bytes is not None and size > max_bytes:
            raise JSONInputError(f"larger than {max_bytes} bytes")
    if _deeper_than(text, max_depth):
        raise JSONInputError(f"nested deeper than {max_depth} levels")
    try:
        value = _decode(text)
    except JSONInputError:
        raise
    except RecursionError:  # unreachable after the depth check; never let it escape
        raise JSONInputError(f"nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, int digits limit
        raise JSONInputError(f"malformed JSON ({_reason(exc)})") from None
    if "\\u" in text:
        if _has_lone_surrogate(value):
            raise JSONInputError("string with a lone surrogate")
        if "\\u0000" in text and _has_nul(value):
            raise JSONInputError("string with a NUL character")
    return value


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (a member name too) holds U+0000. Only called
    when the text has the escape (a raw NUL is refused by the decoder already)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def load_object(data: bytes | str, *, max_bytes: int | None = MAX_BYTES,
                max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``loads``, and the value must be a JSON object."""
    value = loads(data, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise JSONInputError("not a JSON object")
    return value


def _reason(exc: ValueError) -> str:
    """The decoder's reason without the input it may quote (``JSONDecodeError.msg``)."""
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at position {exc.pos}"
    return "number too long" if "digits" in str(exc) else "invalid"

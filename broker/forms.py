"""Strict parsing of ``application/x-www-form-urlencoded`` request bodies (RFC 6749 §3.2)."""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.requests import ClientDisconnect, Request

from adapters.errors import InvalidRequest

MULTI_VALUED = frozenset({"resource", "audience"})
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _decode(text: str) -> str:
    if "%" not in text and "+" not in text:  # nothing to unescape (most names and values)
        if "\x00" in text:
            raise InvalidRequest("a parameter holds a NUL character")
        return text
    if _BAD_ESCAPE.search(text):
        raise InvalidRequest("malformed percent-encoding in form body")
    try:
        value = unquote_to_bytes(text.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("form body is not UTF-8") from exc
    if "\x00" in value:  # no OAuth parameter has one (RFC 6749 App. A); PostgreSQL cannot store it
        raise InvalidRequest("a parameter holds a NUL character")
    return value


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """application/x-www-form-urlencoded, strictly: every pair has '=', every escape is two
    hex digits, every value is UTF-8 without NUL (WHATWG URL §5.1 without its error
    recovery)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidRequest("form body must be percent-encoded ASCII") from exc
    pairs = []
    for part in text.split("&") if text else ():
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise InvalidRequest("malformed form body")
        pairs.append((_decode(name), _decode(value)))
    return pairs


class Form:
    """Parameters of an OAuth request: single-valued unless the spec allows repeats."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name, []).append(value)
        for name, values in self._values.items():
            if len(values) > 1 and name not in MULTI_VALUED:
                raise InvalidRequest(f"parameter {name!r} is included more than once")

    def get(self, name: str) -> str | None:
        values = self._values.get(name)
        if not values or values[0] == "":
            return None
        return values[0]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise InvalidRequest(f"missing parameter {name!r}")
        return value

    def all(self, name: str) -> list[str]:
        return [v for v in self._values.get(name, []) if v]

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


async def read_form(request: Request, max_bytes: int) -> Form:
    if request.method != "POST":
        raise InvalidRequest("use POST")
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequest("body must be application/x-www-form-urlencoded")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise InvalidRequest("request body too large")
    except ClientDisconnect as exc:
        raise InvalidRequest("client disconnected before the body was complete") from exc
    return Form(parse_form(bytes(body)))


async def read_params(request: Request, max_bytes: int) -> Form:
    """An endpoint that takes GET or POST (authorization, logout): the query or the form."""
    if request.method == "POST":
        return await read_form(request, max_bytes)
    if len(request.url.query) > max_bytes:
        raise InvalidRequest("request too large")
    return Form(parse_form(request.url.query.encode("ascii", "replace")))

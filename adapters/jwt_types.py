"""The JSON types of registered JOSE header parameters and JWT claims (RFC 7515 §4.1, RFC 7519
§2 and §4.1, RFC 7800 §3, RFC 8693 §4, RFC 9068 §2.2, RFC 9396 §9.1, RFC 9449 §6, RFC 8705
§3.1, OpenID Connect Core §2).

``adapters.jose`` applies these to every header and claims set it reads, so no code after it
meets ``"cnf": 5``, ``"aud": {"a": 1}`` or ``"exp": NaN``: a value of the wrong type makes the
whole token malformed (``ValueError`` here, ``JWTError`` there). Unregistered names are left
alone; their readers check them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

MAX_NUMERIC_DATE: Final = 2**41  # about the year 71 700: later is nonsense, and fits a double
NUMERIC_DATES: Final = ("exp", "iat", "nbf", "auth_time")


def is_numeric_date(value: Any) -> bool:
    """A finite number of seconds since 1970 (RFC 7519 §2), not a boolean, in a sane range.
    ``NaN`` fails every comparison, so it is refused too."""
    return (not isinstance(value, bool) and isinstance(value, int | float)
            and 0 <= value < MAX_NUMERIC_DATE)


def _string(value: Any) -> bool:
    return isinstance(value, str)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _string_or_strings(value: Any) -> bool:
    return _string(value) or _strings(value)


def _objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _object(value: Any) -> bool:
    return isinstance(value, dict)


def _confirmation(value: Any) -> bool:
    """RFC 7800 §3.1 ``cnf``: an object; ``jkt`` and ``x5t#S256`` in it are strings."""
    return _object(value) and all(_string(value[m]) for m in ("jkt", "x5t#S256") if m in value)


def _actor(value: Any) -> bool:
    """RFC 8693 §4.1 ``act``: an object whose ``sub`` is a string and whose ``act`` (an earlier
    actor) is an actor again. Depth is bounded by the JSON reader."""
    while True:
        if not _object(value) or ("sub" in value and not _string(value["sub"])):
            return False
        if "act" not in value:
            return True
        value = value["act"]


Check = Callable[[Any], bool] | type  # a plain type: ``isinstance`` (no call on the hot path)

HEADER: Final[Mapping[str, Check]] = {
    **dict.fromkeys(("alg", "kid", "typ", "cty", "jku", "x5u", "x5t", "x5t#S256"), str),
    "crit": _strings, "x5c": _strings, "jwk": dict, "b64": bool,
}
CLAIMS: Final[Mapping[str, Check]] = {
    **dict.fromkeys(NUMERIC_DATES, is_numeric_date),
    **dict.fromkeys(("iss", "sub", "jti", "client_id", "scope", "azp", "nonce", "sid", "acr",
                     "at_hash", "c_hash"), str),
    "aud": _string_or_strings, "amr": _strings, "cnf": _confirmation, "act": _actor,
    "may_act": dict, "sub_id": dict, "authorization_details": _objects,
}


def check(members: Mapping[str, Any], types: Mapping[str, Check], what: str) -> None:
    """``ValueError`` naming the first registered member whose value has the wrong type."""
    for name, value in members.items():
        expected = types.get(name)
        if expected is None:
            continue
        if not (isinstance(value, expected) if isinstance(expected, type) else expected(value)):
            raise ValueError(f"{what} {name} has the wrong type")

"""Strict form parsing (broker/forms.py): the plain fast path and the unescaping path agree."""

from __future__ import annotations

import pytest

from adapters.errors import InvalidRequest
from broker.forms import Form, parse_form


@pytest.mark.parametrize(("body", "pairs"), [
    (b"", []),
    (b"grant_type=client_credentials&scope=read", [("grant_type", "client_credentials"),
                                                   ("scope", "read")]),
    (b"scope=read+write", [("scope", "read write")]),
    (b"resource=https%3A%2F%2Fapi.example%2Fv1", [("resource", "https://api.example/v1")]),
    (b"a%2Bb=c%2bd", [("a+b", "c+d")]),
    (b"empty=", [("empty", "")]),
    (b"n=%C3%A9", [("n", "\u00e9")]),
])
def test_parses(body: bytes, pairs: list[tuple[str, str]]) -> None:
    assert parse_form(body) == pairs


@pytest.mark.parametrize(("body", "needle"), [
    (b"a=\x00", "NUL"),            # plain value with a raw NUL
    (b"a\x00=b", "NUL"),           # plain name with a raw NUL
    (b"a=%00", "NUL"),             # escaped NUL
    (b"a=x+%00", "NUL"),
    (b"a=%zz", "percent-encoding"),
    (b"a=%4", "percent-encoding"),
    (b"a=%FF", "not UTF-8"),
    (b"a=\xc3\xa9", "percent-encoded ASCII"),
    (b"novalue", "malformed"),
    (b"=x", "malformed"),
    (b"a=1&&b=2", "malformed"),
])
def test_refuses(body: bytes, needle: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_form(body)
    assert needle in info.value.description


def test_repeated_single_valued_parameter_refused() -> None:
    with pytest.raises(InvalidRequest, match="more than once"):
        Form(parse_form(b"scope=a&scope=b"))
    assert Form(parse_form(b"resource=a&resource=b")).all("resource") == ["a", "b"]

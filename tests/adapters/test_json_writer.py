"""The JSON writer (orjson, with the standard library for what orjson refuses) and the
broker's ``JSONResponse`` built on it."""

from __future__ import annotations

import json
import math

import pytest

from adapters.json_writer import dumps
from broker.json_response import JSONResponse


def _stdlib(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("value", [
    {"active": True, "scope": "a b", "exp": 1796562941, "cnf": {"jkt": "x-_"}, "n": None},
    {"name": "Zoë 東京 \u2028 \"quoted\" back\\slash \x01", "list": [1, 2.5, -0.0, "é"]},
    [], {}, "plain", 0,
])
def test_the_same_json_as_the_standard_library_compact_utf8(value: object) -> None:
    assert json.loads(dumps(value)) == value
    assert dumps(value) == _stdlib(value)


def test_member_order_is_kept() -> None:
    assert dumps({"z": 1, "a": 2, "m": 3}) == b'{"z":1,"a":2,"m":3}'


@pytest.mark.parametrize("value", [
    {"authorization_details": [{"type": "t", "amount": 2**70}]},  # beyond 64 bits
    {1: "a", "b": 2},                                               # a member name not a string
    {"big": -(2**65)},
])
def test_what_orjson_refuses_is_written_by_the_standard_library(value: object) -> None:
    assert dumps(value) == _stdlib(value)


@pytest.mark.parametrize("value", [{"x": object()}, {"x": {1, 2}}, {"x": b"bytes"}])
def test_what_is_not_json_is_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        dumps(value)


def test_a_float_that_is_not_finite_is_never_written_as_a_bare_literal() -> None:
    # JSON has no NaN or Infinity (RFC 8259 §6): never emit one a strict reader would refuse
    for value in (math.nan, math.inf):
        try:
            out = dumps({"x": value})
        except ValueError:
            continue
        assert json.loads(out, parse_constant=lambda c: pytest.fail(c)) == {"x": None}


def test_the_response_body_and_headers() -> None:
    response = JSONResponse({"error": "invalid_request", "n": 2**70, "é": "ü"}, status_code=400,
                            headers={"Cache-Control": "no-store"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert int(response.headers["content-length"]) == len(response.body)
    assert json.loads(response.body) == {"error": "invalid_request", "n": 2**70, "é": "ü"}

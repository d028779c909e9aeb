"""adapters.json_reader and adapters.jwt_types: the bounded reader's limits, and the registered
types of JOSE header parameters and JWT claims."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import pytest

from adapters import jose, jwt_types
from adapters.json_reader import MAX_DEPTH, JSONInputError, load_object, loads

SECRET = "s3cr3t-value-never-quoted"


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


# --- what is accepted ----------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [1.5, -2, "x", null, true, false], "c": {"d": {}}}',
    "  \t\n[1, 2]\r\n ", '"plain"', "0", "-0.5e-3", "[]", "{}",
    '{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
    '{"q": "a \\" [ { \\\\"}', '{"e": "\\u00e9\\ud83d\\ude00"}', str(2**64),
])
def test_ordinary_json_reads_like_json_loads(text: str) -> None:
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


def test_depth_limit_is_exact() -> None:
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(JSONInputError, match=f"nested deeper than {MAX_DEPTH}"):
        loads(nested(MAX_DEPTH + 1))
    assert loads(nested(5), max_depth=5)
    with pytest.raises(JSONInputError, match="nested deeper"):
        loads('{"a":' * 6 + "1" + "}" * 6, max_depth=5)


def test_many_shallow_brackets_are_not_depth() -> None:
    wide = "[" + ",".join(["[]"] * 5_000) + "]"
    assert len(loads(wide)) == 5_000


@pytest.mark.parametrize("levels", [1_000, 100_000, 1_000_000])
@pytest.mark.parametrize("closed", [True, False])
def test_deep_nesting_is_refused_quickly_without_recursion(levels: int, closed: bool) -> None:
    text = nested(levels) if closed else "[" * levels
    started = time.perf_counter()
    with pytest.raises(JSONInputError, match="nested deeper"):
        loads(text, max_bytes=None)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("text", [
    "[" * 33 + '"\\' * 30_000,  # an unterminated string of escaped quotes (no backtracking)
    "[" * 33 + '"",' * 20_000,  # many strings
    '{"a":"' + "[" * 60_000 + '"}',  # brackets in one long string
    '{"a":[' * 10_000,  # keys between the brackets
    "[" + ",".join(["[" * 31 + "]" * 31] * 900) + "]",  # exactly at the limit, all over
])
def test_depth_scan_stays_linear_on_adversarial_64KiB(text: str) -> None:
    started = time.perf_counter()
    try:
        loads(text)
    except JSONInputError:
        pass
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("text", "depth"), [
    (r'["\\", [[]]]', 3), (r'["\\\"[[[[", [1]]', 2), (r'{"a\"[[": {"b": [[{}]]}}', 5),
    (r'["x\\\\", [[[]]]]', 4), (r'[{"k": "\u005b\u005b"}, [[]]]', 3),
])
def test_escapes_are_paired_like_the_decoder_pairs_them(text: str, depth: int) -> None:
    assert loads(text + " ", max_depth=depth) == json.loads(text)
    wrapped = "[" * 40 + text + "]" * 40  # over the fast path's count
    assert loads(wrapped, max_depth=depth + 40) == json.loads(wrapped)
    with pytest.raises(JSONInputError, match="nested deeper"):
        loads(wrapped, max_depth=depth + 39)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 100, "b": ["{" * 100, '\\"[[[['], "c": [[["]]]"]]]})
    assert loads(text)["a"] == "[" * 100


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", '{"exp": NaN}',
                                  '[1, Infinity]', '{"a": {"b": -Infinity}}'])
def test_non_finite_constants_are_refused(text: str) -> None:
    with pytest.raises(JSONInputError, match="not a JSON number"):
        loads(text)


@pytest.mark.parametrize("text", ["1e400", "-1e400", '{"a": [1.5e999]}'])
def test_numbers_only_a_float_infinity_could_hold_are_refused(text: str) -> None:
    with pytest.raises(JSONInputError, match="out of range"):
        loads(text)


def test_every_number_that_comes_out_is_finite() -> None:
    value = loads("[1e308, -1e-400, 0.1, 12345678901234567890]")
    assert all(math.isfinite(v) for v in value)


def test_overlong_integer_is_refused() -> None:
    with pytest.raises(JSONInputError, match="number too long"):
        loads("9" * 5_000)


@pytest.mark.parametrize("text", ['{"a": 1, "a": 1}', '{"a": 1, "b": {"c": 1, "c": 2}}',
                                  '[{"x": 1}, {"y": 2, "y": 3}]'])
def test_duplicate_member_names_are_refused(text: str) -> None:
    with pytest.raises(JSONInputError, match="duplicate member"):
        loads(text)


@pytest.mark.parametrize("data", [b'"\\ud800"', b'{"a": "x\\udc00y"}', b'["\\udc00\\ud800"]'])
def test_lone_surrogate_escapes_are_refused(data: bytes) -> None:
    with pytest.raises(JSONInputError, match="surrogate"):
        loads(data)


def test_a_surrogate_pair_is_fine() -> None:
    assert loads(b'"\\ud83d\\ude00"') == "\U0001f600"


@pytest.mark.parametrize("data", [b'"caf\xe9"', b'"\xed\xa0\x80"', b"\xff\xfe[]",
                                  b'\xef\xbb\xbf{"a": 1}'])
def test_bytes_must_be_strict_utf8_without_bom(data: bytes) -> None:
    with pytest.raises(JSONInputError):
        loads(data)


def test_a_str_with_a_lone_surrogate_character_is_refused() -> None:
    with pytest.raises(JSONInputError, match="surrogate"):
        loads('"\ud800"')


def test_size_limit_counts_utf8_bytes_and_is_inclusive() -> None:
    text = json.dumps("€" * 10, ensure_ascii=False)
    size = len(text.encode())
    assert loads(text, max_bytes=size) == "€" * 10
    assert loads(text.encode(), max_bytes=size) == "€" * 10
    for data in (text, text.encode()):
        with pytest.raises(JSONInputError, match=f"larger than {size - 1} bytes"):
            loads(data, max_bytes=size - 1)


@pytest.mark.parametrize("text", ['{"a": 1} x', "[1][2]", '{"a": 1}}', "1 2", "", "   ",
                                  '{"a": tru}', "[1,]", "{'a': 1}", "01"])
def test_malformed_json_is_refused(text: str) -> None:
    with pytest.raises(JSONInputError):
        loads(text)


@pytest.mark.parametrize("text", ['{"x": "' + SECRET + '"', SECRET, '["' + SECRET + '" 1]',
                                  '{"' + SECRET + '": NaN}', '{"a": "' + SECRET + '\\ud800"}'])
def test_errors_never_quote_the_input(text: str) -> None:
    with pytest.raises(JSONInputError) as caught:
        loads(text)
    assert SECRET not in str(caught.value)
    assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


@pytest.mark.parametrize("text", ["[1]", '"s"', "3", "null"])
def test_load_object_wants_an_object(text: str) -> None:
    with pytest.raises(JSONInputError, match="not a JSON object"):
        load_object(text)


# --- jwt_types ------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [0, 1, 1_700_000_000, 1_700_000_000.25, 2**41 - 1])
def test_numeric_dates_accepted(value: Any) -> None:
    assert jwt_types.is_numeric_date(value)
    assert jose.numeric_date({"exp": value}, "exp") == value


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, 2**41, 10**30, True,
                                   False, "1700000000", None, [1], {"t": 1}])
def test_numeric_dates_refused(value: Any) -> None:
    assert not jwt_types.is_numeric_date(value)
    with pytest.raises(jose.JWTError, match="NumericDate"):
        jose.numeric_date({"iat": value}, "iat")


@pytest.mark.parametrize(("name", "value"), [
    ("exp", True), ("iat", "now"), ("nbf", None), ("auth_time", [1]), ("iss", 1),
    ("sub", None), ("jti", {"a": 1}), ("client_id", ["c"]), ("scope", ["read"]), ("aud", 5),
    ("aud", ["a", 1]), ("aud", {"a": 1}), ("amr", "pwd"), ("amr", [1]), ("cnf", 5),
    ("cnf", []), ("cnf", {"jkt": 5}), ("cnf", {"x5t#S256": None}), ("act", "agent"),
    ("act", {"sub": 1}), ("act", {"sub": "a", "act": {"sub": "b", "act": 7}}), ("may_act", []),
    ("sub_id", "x"), ("authorization_details", {"type": "t"}),
    ("authorization_details", ["t"]), ("acr", 1), ("azp", []), ("nonce", 1), ("sid", False),
])
def test_registered_claims_of_the_wrong_type_make_the_token_malformed(name: str,
                                                                       value: Any) -> None:
    with pytest.raises(ValueError, match=f"claim {name} has the wrong type"):
        jwt_types.check({"iss": "i", name: value}, jwt_types.CLAIMS, "claim")


def test_registered_claims_of_the_right_type_and_unregistered_claims_pass() -> None:
    jwt_types.check({
        "iss": "i", "sub": "s", "aud": ["a", "b"], "exp": 2, "iat": 1.5, "nbf": 1,
        "auth_time": 1, "jti": "j", "client_id": "c", "scope": "a b", "amr": ["pwd"],
        "cnf": {"jkt": "k", "other": 1}, "act": {"sub": "a", "act": {"sub": "b"}},
        "may_act": {"sub": "m"}, "sub_id": {"format": "iss_sub"},
        "authorization_details": [{"type": "t"}], "custom": float("inf"), "email": 5,
    }, jwt_types.CLAIMS, "claim")


@pytest.mark.parametrize(("name", "value"), [
    ("alg", None), ("kid", 1), ("kid", ["a"]), ("typ", {"t": 1}), ("crit", "exp"),
    ("crit", [1]), ("jwk", "key"), ("b64", "false"), ("x5c", "MII"), ("jku", 1),
])
def test_registered_header_parameters_of_the_wrong_type(name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"header parameter {name} has the wrong type"):
        jwt_types.check({"alg": "ES256", name: value}, jwt_types.HEADER, "header parameter")


@pytest.mark.parametrize("claims", [{"exp": math.nan}, {"exp": math.inf},
                                    {"exp": 1e12, "iat": math.nan}, {"exp": 1e12, "nbf": True},
                                    {"exp": 1e12, "auth_time": "x"}, {"exp": "1e12"}])
def test_check_times_refuses_what_is_not_a_numeric_date(claims: dict[str, Any]) -> None:
    """Also for claims that did not come through the reader (built in code, from storage)."""
    with pytest.raises(jose.JWTError):
        jose.check_times(claims, time.time())

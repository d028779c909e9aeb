"""adapters.rar against RFC 9396 and the RAR part of shared/specs/par-rar-ciba.md."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.errors import InvalidAuthorizationDetails, OAuthError
from adapters.rar import (
    COMMON_FIELDS,
    DetailType,
    _compiled,
    check_schema,
    covered,
    describe,
    parse,
    registered_schema,
    to_json,
    validate,
)

# RFC 9396 §2, Figure 1
PAYMENT: dict[str, Any] = {
    "type": "payment_initiation",
    "actions": ["initiate", "status", "cancel"],
    "locations": ["https://example.com/payments"],
    "instructedAmount": {"currency": "EUR", "amount": "123.50"},
    "creditorName": "Merchant A",
    "creditorAccount": {"iban": "DE02100100109307118603"},
    "remittanceInformationUnstructured": "Ref Number Merchant",
}
# RFC 9396 §2, Figure 3 (first object)
ACCOUNTS: dict[str, Any] = {
    "type": "account_information",
    "actions": ["list_accounts", "read_balances", "read_transactions"],
    "locations": ["https://example.com/accounts"],
}

# Written out by hand, closed as the module docstring asks.
PAYMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "type": {"const": "payment_initiation"},
        "actions": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"enum": ["initiate", "status", "cancel"]}},
        "locations": {"type": "array", "items": {"type": "string"}},
        "instructedAmount": {
            "type": "object",
            "properties": {"currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                           "amount": {"type": "string", "pattern": r"^\d+(\.\d{1,2})?$"}},
            "required": ["currency", "amount"],
            "additionalProperties": False,
        },
        "creditorName": {"type": "string", "maxLength": 70},
        "creditorAccount": {"$ref": "#/$defs/account"},
        "remittanceInformationUnstructured": {"type": "string", "maxLength": 140},
    },
    "required": ["type", "actions", "instructedAmount", "creditorName", "creditorAccount"],
    "additionalProperties": False,
    "$defs": {"account": {"type": "object", "properties": {"iban": {"type": "string"}},
                          "required": ["iban"], "additionalProperties": False}},
}
# Built with the helper, which closes it.
ACCOUNTS_SCHEMA = registered_schema("account_information", {
    "properties": {
        "actions": {"type": "array",
                    "items": {"enum": ["list_accounts", "read_balances", "read_transactions"]}},
        "locations": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["actions"],
})
TYPES = {
    "payment_initiation": DetailType("payment_initiation", PAYMENT_SCHEMA, "Payment initiation"),
    "account_information": DetailType("account_information", ACCOUNTS_SCHEMA),
}


def raw(*items: Any) -> str:
    return json.dumps(list(items))


def refused(details: list[dict[str, Any]], match: str, **kwargs: Any) -> None:
    with pytest.raises(InvalidAuthorizationDetails, match=match):
        validate(details, TYPES, **kwargs)


def changed(base: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**json.loads(json.dumps(base)), **fields}


# --- the error --------------------------------------------------------------------------------

def test_error_wire_code_and_status():
    exc = InvalidAuthorizationDetails("bad")
    assert isinstance(exc, OAuthError)
    assert (exc.error, exc.status) == ("invalid_authorization_details", 400)
    assert exc.body() == {"error": "invalid_authorization_details", "error_description": "bad"}


# --- positives --------------------------------------------------------------------------------

def test_parse_rfc_examples():
    assert parse(raw(ACCOUNTS, PAYMENT)) == (ACCOUNTS, PAYMENT)


@pytest.mark.parametrize("value", [None, ""])
def test_parse_absent_is_empty(value: str | None):
    assert parse(value) == ()


def test_validate_rfc_examples():
    validate(parse(raw(ACCOUNTS, PAYMENT)), TYPES)


def test_validate_with_allowed_types():
    validate([ACCOUNTS, PAYMENT], TYPES, allowed={"account_information", "payment_initiation"})


def test_common_fields_all_accepted():
    detail = {"type": "x", "locations": ["https://a.example"], "actions": ["read"],
              "datatypes": ["contacts"], "identifier": "acct-1", "privileges": ["admin"]}
    assert set(detail) == set(COMMON_FIELDS)
    assert parse(raw(detail)) == (detail,)


def test_to_json_is_compact_sorted_and_round_trips():
    text = to_json([{"type": "t", "b": 1, "a": "é"}])
    assert text == '[{"a":"é","b":1,"type":"t"}]'
    assert parse(to_json([PAYMENT])) == (PAYMENT,)


def test_validators_are_cached():
    _compiled.cache_clear()
    validate([PAYMENT], TYPES)
    validate([changed(PAYMENT)], {"payment_initiation": DetailType(
        "payment_initiation", json.loads(json.dumps(PAYMENT_SCHEMA)))})  # same content, new dict
    info = _compiled.cache_info()
    assert (info.misses, info.hits) == (1, 1)


# --- parse: negatives -------------------------------------------------------------------------

def test_not_json():
    with pytest.raises(InvalidAuthorizationDetails, match="not valid JSON"):
        parse("[{type: 'payment_initiation'}]")


def test_not_an_array():
    with pytest.raises(InvalidAuthorizationDetails, match="not a JSON array"):
        parse(json.dumps(PAYMENT))


def test_item_not_an_object():
    with pytest.raises(InvalidAuthorizationDetails, match=r"\[1\]: not a JSON object"):
        parse(raw(PAYMENT, "payment_initiation"))


def test_missing_type():
    with pytest.raises(InvalidAuthorizationDetails, match=r"\[0\]: missing type"):
        parse(raw({"actions": ["initiate"]}))


@pytest.mark.parametrize("kind", [1, ["payment_initiation"], None, ""])
def test_type_not_a_string(kind: Any):
    with pytest.raises(InvalidAuthorizationDetails, match=r"\[0\]\.type: not a non-empty string"):
        parse(raw(changed(PAYMENT, type=kind)))


@pytest.mark.parametrize("locations", ["https://example.com/payments", [1], [None], {"a": "b"}])
def test_locations_not_a_list_of_strings(locations: Any):
    with pytest.raises(InvalidAuthorizationDetails, match=r"\.locations: not an array of strings"):
        parse(raw(changed(PAYMENT, locations=locations)))


def test_identifier_not_a_string():
    with pytest.raises(InvalidAuthorizationDetails, match=r"\.identifier: not a string"):
        parse(raw(changed(ACCOUNTS, identifier=7)))


def test_too_big():
    big = raw(changed(PAYMENT, creditorName="x" * 400))
    parse(big, max_bytes=len(big))
    with pytest.raises(InvalidAuthorizationDetails, match="larger than"):
        parse(big, max_bytes=len(big) - 1)


def test_too_big_counts_bytes_not_characters():
    text = json.dumps([changed(PAYMENT, creditorName="€" * 10)], ensure_ascii=False)
    with pytest.raises(InvalidAuthorizationDetails, match="larger than"):
        parse(text, max_bytes=len(text))


def test_too_many_items():
    parse(raw(*[ACCOUNTS] * 3), max_items=3)
    with pytest.raises(InvalidAuthorizationDetails, match="more than 2 objects"):
        parse(raw(*[ACCOUNTS] * 3), max_items=2)


def test_duplicate_member_refused():
    with pytest.raises(InvalidAuthorizationDetails, match="duplicate member"):
        parse('[{"type": "account_information", "type": "payment_initiation"}]')


def test_nan_refused():
    with pytest.raises(InvalidAuthorizationDetails, match="not valid JSON"):
        parse('[{"type": "t", "amount": NaN}]')


def test_too_deep():
    with pytest.raises(InvalidAuthorizationDetails, match="nested deeper"):
        parse('[{"type": "t", "x": ' + "[" * 40 + "]" * 40 + "}]")
    parse('[{"type": "t", "x": ' + "[" * 30 + "]" * 30 + "}]")  # 32 levels with the outer two
    with pytest.raises(InvalidAuthorizationDetails, match="nested deeper"):
        parse('[{"type": "t", "x": ' + "[" * 31 + "]" * 31 + "}]")
    with pytest.raises(InvalidAuthorizationDetails):  # deep, yet within the JSON decoder's limit
        parse("[" * 900 + "]" * 900)
    with pytest.raises(InvalidAuthorizationDetails, match="not valid JSON"):
        parse("[" * 10_000 + "]" * 10_000, max_bytes=20_000)  # beyond the recursion limit


# --- validate: negatives ----------------------------------------------------------------------

def test_unknown_type():
    refused([ACCOUNTS, {"type": "wire_transfer"}], r"\[1\]: unknown type 'wire_transfer'")


def test_type_not_allowed_for_client():
    refused([ACCOUNTS, PAYMENT], r"\[1\]: type 'payment_initiation' is not allowed",
            allowed={"account_information"})


def test_wrong_field_type():
    refused([changed(PAYMENT, creditorName=42)],
            r"authorization_details\[0\]\.creditorName: 42 is not of type 'string'")


def test_invalid_enum_value():
    refused([changed(PAYMENT, actions=["initiate", "delete"])],
            r"authorization_details\[0\]\.actions\[1\]: 'delete' is not one of")


def test_invalid_nested_value():
    refused([changed(PAYMENT, instructedAmount={"currency": "euro", "amount": "1"})],
            r"\[0\]\.instructedAmount\.currency: 'euro' does not match")


def test_missing_required_field():
    detail = changed(PAYMENT)
    del detail["creditorName"]
    refused([detail], r"authorization_details\[0\]: 'creditorName' is a required property")


def test_unknown_field_refused_by_closed_schema():
    refused([changed(PAYMENT, debtorName="Alice")], r"'debtorName' was unexpected")


def test_unknown_field_refused_by_registered_schema():
    refused([changed(ACCOUNTS, balanceLimit=10)], r"'balanceLimit' was unexpected")


def test_error_description_is_safe_to_send():
    with pytest.raises(InvalidAuthorizationDetails) as info:
        validate([changed(PAYMENT, creditorName=['quote"back\\slash\u00e9'])], TYPES)
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in info.value.description)


# --- covered ----------------------------------------------------------------------------------

def test_covered_subset_of_actions():
    assert covered([changed(PAYMENT, actions=["status"])], [PAYMENT])


def test_covered_request_may_omit_fields():
    assert covered([{"type": "account_information", "actions": ["read_balances"]}],
                   [ACCOUNTS, PAYMENT])


def test_covered_extra_action_refused():
    assert not covered([changed(ACCOUNTS, actions=["read_balances", "close_account"])], [ACCOUNTS])


def test_covered_other_location_refused():
    assert not covered([changed(ACCOUNTS, locations=["https://other.example/accounts"])],
                       [ACCOUNTS])


def test_covered_other_type_refused():
    assert not covered([changed(ACCOUNTS, type="payment_initiation")], [ACCOUNTS])


def test_covered_identifier_mismatch_refused():
    granted = [changed(ACCOUNTS, identifier="acct-1")]
    assert covered([changed(ACCOUNTS, identifier="acct-1")], granted)
    assert not covered([changed(ACCOUNTS, identifier="acct-2")], granted)


def test_covered_field_not_granted_refused():
    assert not covered([changed(ACCOUNTS, identifier="acct-1")], [ACCOUNTS])


def test_covered_scalar_and_nested_fields_compare_as_json():
    assert not covered([changed(PAYMENT, instructedAmount={"currency": "EUR", "amount": "999"})],
                       [PAYMENT])
    assert not covered([{"type": "t", "flag": True}], [{"type": "t", "flag": 1}])


def test_covered_rights_are_not_pooled():
    granted = [changed(ACCOUNTS, actions=["read_balances"]),
               changed(ACCOUNTS, actions=["list_accounts"])]
    assert not covered([changed(ACCOUNTS, actions=["read_balances", "list_accounts"])], granted)


def test_covered_every_requested_object():
    assert not covered([ACCOUNTS, PAYMENT], [ACCOUNTS])


# --- check_schema and registered_schema -------------------------------------------------------

def test_check_schema_accepts_examples():
    check_schema(PAYMENT_SCHEMA)
    check_schema(ACCOUNTS_SCHEMA)


def test_check_schema_refuses_invalid_schema():
    with pytest.raises(ValueError, match="invalid schema at properties/amount/type"):
        check_schema({"type": "object", "properties": {"amount": {"type": "money"}}})


@pytest.mark.parametrize("ref", ["https://evil.example/schema.json", "other.json#/x"])
def test_check_schema_refuses_remote_ref(ref: str):
    with pytest.raises(ValueError, match="remote references"):
        check_schema({"type": "object", "properties": {"x": {"$ref": ref}}})


def test_check_schema_refuses_other_dialect_and_non_objects():
    with pytest.raises(ValueError, match="2020-12"):
        check_schema({"$schema": "http://json-schema.org/draft-07/schema#"})
    with pytest.raises(ValueError, match="JSON object"):
        check_schema([{"type": "object"}])


def test_registered_schema_closes_and_pins_type():
    assert ACCOUNTS_SCHEMA["additionalProperties"] is False
    assert ACCOUNTS_SCHEMA["required"] == ["type", "actions"]
    assert ACCOUNTS_SCHEMA["properties"]["type"] == {"const": "account_information"}
    wrong = {"account_information": DetailType("account_information", ACCOUNTS_SCHEMA),
             "payment_initiation": DetailType("payment_initiation", ACCOUNTS_SCHEMA)}
    with pytest.raises(InvalidAuthorizationDetails, match=r"\.type: 'account_information' was"):
        validate([changed(ACCOUNTS, type="payment_initiation")], wrong)


def test_registered_schema_refuses_remote_ref():
    with pytest.raises(ValueError, match="remote references"):
        registered_schema("t", {"properties": {"x": {"$ref": "https://evil.example/s"}}})


# --- describe ---------------------------------------------------------------------------------

def test_describe_mentions_actions_and_locations():
    text = describe(ACCOUNTS, TYPES)
    assert text == ("account_information: list_accounts, read_balances, read_transactions"
                    " at https://example.com/accounts")


def test_describe_uses_description_and_other_fields():
    text = describe(PAYMENT, TYPES)
    assert text.startswith("Payment initiation: initiate, status, cancel"
                           " at https://example.com/payments — ")
    assert "instructedAmount: 123.50 EUR" in text
    assert "creditorName: Merchant A" in text
    assert text.count(": ") == 4  # head + three other fields, no more
    assert describe(dict(reversed(PAYMENT.items())), TYPES) == text


def test_describe_identifier_and_hidden_characters():
    text = describe(changed(ACCOUNTS, identifier="acct\u202e-1\n"), TYPES)
    assert text.endswith(" — identifier: acct-1")

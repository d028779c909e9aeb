"""adapters.api_keys: the key format, parsing and redaction (pure)."""

from __future__ import annotations

import re

import pytest

from adapters import api_keys


def test_new_key_has_the_documented_shape():
    key_id, secret, key = api_keys.new_key("acme-eu")
    assert re.fullmatch(r"tsk_acme-eu_[a-z2-7]{16}_[A-Za-z0-9_-]{43}", key)
    assert key == f"tsk_acme-eu_{key_id}_{secret}"
    assert len(key) <= api_keys.MAX_LENGTH
    parsed = api_keys.parse(key)
    assert (parsed.tenant, parsed.key_id, parsed.secret) == ("acme-eu", key_id, secret)
    assert parsed.value == key


def test_keys_are_random():
    keys = {api_keys.new_key("t")[2] for _ in range(50)}
    assert len(keys) == 50
    assert len({k.split("_")[2] for k in keys}) == 50


def test_secret_with_underscores_parses():
    secret = "_" * 20 + "a-b_" * 5 + "xyz"
    assert len(secret) == api_keys.SECRET_CHARS
    parsed = api_keys.parse(f"tsk_t1_abcdefghijklmnop_{secret}")
    assert parsed.secret == secret and parsed.key_id == "abcdefghijklmnop"


def test_rotation_keeps_key_id():
    key_id, _, old = api_keys.new_key("acme")
    secret, new = api_keys.with_new_secret("acme", key_id)
    assert new != old and api_keys.parse(new).key_id == key_id
    assert api_keys.parse(new).secret == secret


def test_redaction_never_shows_the_secret():
    key_id, secret, key = api_keys.new_key("acme")
    assert api_keys.redact(key) == f"tsk_acme_{key_id}_…"
    assert secret not in api_keys.redact(key)
    parsed = api_keys.parse(key)
    assert secret not in repr(parsed) and secret not in str(parsed)
    assert api_keys.redact("tsk_broken") == "tsk_…"
    assert api_keys.redact("Bearer abc") == "(not an API key)"


GOOD_ID = "abcdefghijklmnop"
GOOD_SECRET = "A" * 43


@pytest.mark.parametrize("value", [
    "",
    "tsk",
    "tsk_acme",
    f"tsk_acme_{GOOD_ID}",
    f"tsk_acme_{GOOD_ID}_",
    f"tsk__{GOOD_ID}_{GOOD_SECRET}",  # no tenant
    f"tsK_acme_{GOOD_ID}_{GOOD_SECRET}",  # prefix is case-sensitive
    f"sk_acme_{GOOD_ID}_{GOOD_SECRET}",
    f"tsk_Acme_{GOOD_ID}_{GOOD_SECRET}",  # tenant names are lowercase
    f"tsk_-acme_{GOOD_ID}_{GOOD_SECRET}",
    f"tsk_{'a' * 65}_{GOOD_ID}_{GOOD_SECRET}",  # tenant too long
    f"tsk_acme_ABCDEFGHIJKLMNOP_{GOOD_SECRET}",  # key id: lowercase base32
    f"tsk_acme_abcdefghijklmno1_{GOOD_SECRET}",  # '1' is not base32
    f"tsk_acme_abcdefghijklmno_{GOOD_SECRET}",  # 15 characters
    f"tsk_acme_{GOOD_ID}_{'A' * 42}",  # secret too short
    f"tsk_acme_{GOOD_ID}_{'A' * 44}",  # secret too long
    f"tsk_acme_{GOOD_ID}_{'A' * 42}=",  # padding
    f"tsk_acme_{GOOD_ID}_{'A' * 42}+",  # not base64url
    f"tsk_acme_{GOOD_ID}_{'A' * 40} AA",
    f"tsk_acme_{GOOD_ID}_{'A' * 42}é",
    "tsk_" + "a" * 10_000,
])
def test_parse_refuses_malformed(value):
    with pytest.raises(api_keys.MalformedApiKey) as caught:
        api_keys.parse(value)
    assert isinstance(caught.value, ValueError)
    if len(value) > 20:
        assert value not in str(caught.value)


def test_parse_refuses_non_strings():
    with pytest.raises(api_keys.MalformedApiKey):
        api_keys.parse(None)  # type: ignore[arg-type]


def test_new_key_refuses_bad_tenant():
    with pytest.raises(api_keys.MalformedApiKey):
        api_keys.new_key("Not_A_Tenant")

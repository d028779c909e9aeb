"""adapters.jose: compact signing split from the key, verification with typ and alg rules."""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from adapters import jose

KEY = ECKey.generate_key("P-256", parameters={"kid": "k1"})
PUBLIC = jose.import_public_jwk(KEY.as_dict(private=False))


def _sign(header: dict, claims: dict) -> str:
    data = jose.signing_input(header, claims)
    private = KEY.get_op_key("sign")
    r, s = decode_dss_signature(private.sign(data, ec.ECDSA(hashes.SHA256())))
    return jose.compact(data, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def test_split_signing_round_trips_through_joserfc():
    token = _sign({"alg": "ES256", "typ": "at+jwt", "kid": "k1"}, {"sub": "x"})
    assert jwt.decode(token, KEY).claims == {"sub": "x"}
    verified = jose.verify_jws(token, lambda h: PUBLIC, typ="at+jwt")
    assert verified.claims == {"sub": "x"} and verified.header["kid"] == "k1"


def test_typ_compared_case_insensitively_with_media_type_prefix():
    token = _sign({"alg": "ES256", "typ": "application/AT+JWT"}, {"a": 1})
    assert jose.verify_jws(token, lambda h: PUBLIC, typ="at+jwt").claims == {"a": 1}


@pytest.mark.parametrize("defect", ["typ", "none", "hs256", "tampered", "no-key", "not-jws",
                                    "array-claims", "extra-header-bad-sig"])
def test_refusals(defect):
    good = _sign({"alg": "ES256", "typ": "at+jwt"}, {"a": 1})
    key_for = lambda h: PUBLIC  # noqa: E731
    if defect == "typ":
        token = _sign({"alg": "ES256", "typ": "JWT"}, {"a": 1})
    elif defect == "none":
        head = jose.b64url(json.dumps({"alg": "none", "typ": "at+jwt"}).encode())
        token = f"{head}.{good.split('.')[1]}."
    elif defect == "hs256":
        token = jwt.encode({"alg": "HS256", "typ": "at+jwt"}, {"a": 1}, OctKey.generate_key(256))
    elif defect == "tampered":
        head, _, sig = good.split(".")
        forged = jose.b64url(json.dumps({"a": 2}).encode())
        token = f"{head}.{forged}.{sig}"
    elif defect == "no-key":
        token, key_for = good, (lambda h: None)
    elif defect == "not-jws":
        token = "abc"
    elif defect == "array-claims":
        head = jose.signing_input({"alg": "ES256", "typ": "at+jwt"}, {}).split(b".")[0].decode()
        body = jose.b64url(b"[1,2]")
        private = KEY.get_op_key("sign")
        r, s = decode_dss_signature(private.sign(f"{head}.{body}".encode(),
                                                 ec.ECDSA(hashes.SHA256())))
        token = f"{head}.{body}.{jose.b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    else:  # a header that takes the joserfc path, with a broken signature
        token = _sign({"alg": "ES256", "typ": "at+jwt", "x5u": "https://x"}, {"a": 1})[:-4] + "AAAA"
    with pytest.raises(jose.JWTError):
        jose.verify_jws(token, key_for, typ="at+jwt")


def test_check_times():
    now = time.time()
    jose.check_times({"exp": now + 10, "iat": now}, now)
    with pytest.raises(jose.JWTError, match="expired"):
        jose.check_times({"exp": now - 100}, now, leeway=30)
    with pytest.raises(jose.JWTError, match="exp"):
        jose.check_times({}, now)
    with pytest.raises(jose.JWTError, match="future"):
        jose.check_times({"exp": now + 999, "nbf": now + 500}, now)
    with pytest.raises(jose.JWTError):
        jose.check_times({"exp": True}, now)


def test_audience_matches():
    assert jose.audience_matches({"aud": "a"}, "a")
    assert jose.audience_matches({"aud": ["b", "a"]}, "a")
    assert not jose.audience_matches({"aud": "b"}, "a")
    assert not jose.audience_matches({}, "a")

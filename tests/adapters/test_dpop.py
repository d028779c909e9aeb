"""adapters.dpop against the RFC 9449 checklist in shared/specs/dpop.md."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.jws import JWSRegistry
from starlette.datastructures import Headers

from adapters.clock import FrozenClock
from adapters.dpop import (
    MAX_JTI_LENGTH,
    SUPPORTED_ALGS,
    DPoPNonces,
    DPoPProof,
    access_token_hash,
    jwk_thumbprint,
    normalize_htu,
    replay_key,
    single_dpop_header,
    verify_proof,
)
from adapters.errors import InvalidDPoPProof, OAuthError, UseDPoPNonce
from tests.dpop_client import make_proof, new_key, public_jwk

RFC_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0Vj"
    "NoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5"
    "VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TV"
    "CIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8l"
    "P4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC_NOW = 1562262616
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"

NOW = 1_700_000_000
URL = "https://as.example.com/t1/token"
KEY = new_key("ES256")
OTHER_KEY = new_key("ES256")
SECRET = b"0123456789abcdef0123456789abcdef"


def proof(**kw: Any) -> str:
    kw.setdefault("htm", "POST")
    kw.setdefault("htu", URL)
    kw.setdefault("iat", NOW)
    return make_proof(kw.pop("key", KEY), **kw)


def verify(value: str, **kw: Any) -> DPoPProof:
    kw.setdefault("method", "POST")
    kw.setdefault("url", URL)
    kw.setdefault("now", NOW)
    return verify_proof(value, **kw)


def refused(value: str, needle: str, **kw: Any) -> InvalidDPoPProof:
    with pytest.raises(InvalidDPoPProof) as info:
        verify(value, **kw)
    assert needle in info.value.description, info.value.description
    return info.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: object) -> str:
    return b64(json.dumps(value).encode())


# --- RFC 9449 test vectors -------------------------------------------------------------------


def test_rfc_example_proof_verifies() -> None:
    result = verify_proof(
        RFC_PROOF, method="POST", url="https://server.example.com/token", now=RFC_NOW
    )
    assert result.jkt == RFC_JKT
    assert (result.jti, result.htm, result.iat) == ("-BwC3ESc6acc2lTc", "POST", RFC_NOW)
    assert result.htu == "https://server.example.com/token"
    assert result.nonce is None and result.ath is None
    assert result.public_jwk["crv"] == "P-256" and "d" not in result.public_jwk


def test_rfc_example_proof_expires() -> None:
    with pytest.raises(InvalidDPoPProof, match="too old"):
        verify_proof(
            RFC_PROOF, method="POST", url="https://server.example.com/token", now=RFC_NOW + 301
        )


def test_rfc_thumbprint() -> None:
    header = json.loads(base64.urlsafe_b64decode(RFC_PROOF.split(".")[0] + "=="))
    assert jwk_thumbprint(header["jwk"]) == RFC_JKT


def test_rfc_ath() -> None:
    assert access_token_hash(RFC_TOKEN) == RFC_ATH


# --- check 1: exactly one DPoP header ---------------------------------------------------------


def test_single_header_absent() -> None:
    assert single_dpop_header([]) is None


def test_single_header_one() -> None:
    assert single_dpop_header(["a.b.c"]) == "a.b.c"


@pytest.mark.parametrize("values", [["a.b.c", "d.e.f"], ["a.b.c, d.e.f"], ["x", "x", "x"]])
def test_two_dpop_headers_refused(values: list[str]) -> None:
    with pytest.raises(InvalidDPoPProof, match="more than one DPoP header"):
        single_dpop_header(values)


def test_all_caps_header_name_passes() -> None:
    value = proof()
    headers = Headers({"DPOP": value, "Content-Type": "x"})  # as the edge (Starlette) sees it
    found = single_dpop_header(headers.getlist("dpop"))
    assert found == value
    assert verify(found).jkt == KEY.thumbprint()


# --- check 2: well-formed compact JWS ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("", "compact JWS"),
        ("not-a-jwt", "compact JWS"),
        ("a.b", "compact JWS"),
        ("a.b.c.d", "compact JWS"),
        (".e30.c2ln", "compact JWS"),
        ("!!!.e30.c2ln", "header is not base64url JSON"),
        ("e30=.e30.c2ln", "header is not base64url JSON"),
        (f"{b64(b'{nope')}.e30.c2ln", "not base64url"),
        (f"{b64json(['typ', 'dpop+jwt'])}.e30.c2ln", "header is not a JSON object"),
        ("x" * 20_000, "too large"),
    ],
)
def test_malformed_jwt_refused(value: str, needle: str) -> None:
    refused(value, needle)


@pytest.mark.parametrize(
    ("payload", "needle"),
    [(b"[1,", "payload is not JSON"), (b"[1, 2]", "payload is not a JSON object")],
)
def test_payload_not_a_json_object_refused(payload: bytes, needle: str) -> None:
    head = proof().split(".")[0]
    signing_input = f"{head}.{b64(payload)}"
    signature = JWSRegistry.algorithms["ES256"].sign(signing_input.encode(), KEY)
    refused(f"{signing_input}.{b64(signature)}", needle)


# --- check 3: typ -----------------------------------------------------------------------------


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "dpop", "dpop+jwt "])
def test_wrong_typ_refused(typ: str) -> None:
    refused(proof(typ=typ), "typ must be dpop+jwt")


def test_missing_typ_refused() -> None:
    refused(proof(omit={"typ"}), "typ must be dpop+jwt")


def test_typ_as_full_media_type_passes() -> None:
    assert verify(proof(typ="application/DPoP+JWT")).jti


# --- check 4: alg -----------------------------------------------------------------------------


def test_missing_alg_refused() -> None:
    refused(proof(omit={"alg"}), "alg missing")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_refused(alg: str) -> None:
    value = make_proof(KEY, htm="POST", htu=URL, iat=NOW, alg="none", extra_header={"alg": alg})
    assert value.endswith(".")
    refused(value, f"alg {alg} is not allowed")


def test_alg_none_with_signature_refused() -> None:
    value = proof(extra_header={"alg": "none"})  # signed with ES256, header says none
    refused(value, "alg none is not allowed")


def test_hs256_with_jwk_as_secret_refused() -> None:
    pub = public_jwk(KEY)
    secret = OctKey.import_key(json.dumps(pub).encode())
    value = make_proof(secret, htm="POST", htu=URL, iat=NOW, alg="HS256", jwk=pub)
    refused(value, "alg HS256 is not allowed")


def test_hs256_with_oct_jwk_refused() -> None:
    secret = new_key("HS256")
    value = make_proof(secret, htm="POST", htu=URL, iat=NOW, alg="HS256", private_jwk=True)
    refused(value, "alg HS256 is not allowed")


@pytest.mark.parametrize("alg", ["RS384", "PS512", "ES256K", "Ed25519", "foo", ""])
def test_unsupported_alg_refused(alg: str) -> None:
    refused(proof(extra_header={"alg": alg}), f"alg {alg} is not supported")


def test_alg_not_in_allowed_algs_refused() -> None:
    es384 = new_key("ES384")
    value = make_proof(es384, htm="POST", htu=URL, iat=NOW, alg="ES384")
    assert verify(value).jti
    refused(value, "alg ES384 is not supported", allowed_algs=frozenset({"ES256"}))


def test_symmetric_alg_refused_even_if_allowed() -> None:
    secret = new_key("HS256")
    value = make_proof(secret, htm="POST", htu=URL, iat=NOW, alg="HS256", private_jwk=True)
    refused(value, "not allowed", allowed_algs=frozenset({"HS256", "ES256"}))


def test_supported_algs() -> None:
    assert frozenset({"ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"}) == SUPPORTED_ALGS


# --- check 5: jwk -----------------------------------------------------------------------------


def test_missing_jwk_refused() -> None:
    refused(proof(include_jwk=False), "jwk missing")


@pytest.mark.parametrize("jwk", ["a-string", ["EC"], 7, None])
def test_jwk_not_an_object_refused(jwk: object) -> None:
    refused(proof(extra_header={"jwk": jwk}), "jwk missing or not a JSON object")


def test_private_ec_jwk_refused() -> None:
    exc = refused(proof(private_jwk=True), "private key members")
    assert "'d'" in exc.description


def test_private_rsa_jwk_refused() -> None:
    rsa = new_key("RS256")
    value = make_proof(rsa, htm="POST", htu=URL, iat=NOW, alg="RS256", private_jwk=True)
    exc = refused(value, "private key members")
    assert all(f"'{m}'" in exc.description for m in ("d", "p", "q", "dp", "dq", "qi"))


@pytest.mark.parametrize("member", ["k", "oth"])
def test_other_private_members_refused(member: str) -> None:
    jwk = {**public_jwk(KEY), member: "AAAA"}
    refused(proof(jwk=jwk), f"'{member}'")


def test_oct_jwk_refused() -> None:
    refused(proof(jwk={"kty": "oct", "k": "c2VjcmV0"}), "symmetric (oct)")


@pytest.mark.parametrize(
    ("jwk", "needle"),
    [
        ({"kty": "RSA", "n": "AQAB", "e": "AQAB"}, "does not fit alg ES256"),
        ({"crv": "P-256", "x": "AAAA"}, "does not fit alg ES256"),
        ({"kty": "EC", "crv": "P-256", "x": 1, "y": 2}, "jwk unusable"),
        ({"kty": "EC", "crv": "P-384", "x": "A" * 64, "y": "A" * 64}, "curve or coordinates"),
        ({"kty": "EC", "crv": "P-256", "x": "A" * 42, "y": "A" * 43}, "curve or coordinates"),
        ({"kty": "EC", "crv": "P-256", "x": "=" * 43, "y": "A" * 43}, "curve or coordinates"),
    ],
)
def test_jwk_unfit_for_alg_refused(jwk: dict[str, Any], needle: str) -> None:
    refused(proof(jwk=jwk), needle)


def test_point_not_on_curve_refused() -> None:
    jwk = {**public_jwk(KEY), "y": public_jwk(OTHER_KEY)["y"]}
    refused(proof(jwk=jwk), "signature invalid")


@pytest.mark.filterwarnings("ignore::joserfc.errors.SecurityWarning")  # generating the key
def test_small_rsa_key_refused() -> None:
    small = RSAKey.generate_key(1024)
    value = make_proof(small, htm="POST", htu=URL, iat=NOW, alg="RS256")
    refused(value, "shorter than 2048 bits")


def test_extra_jwk_members_ignored_and_not_in_thumbprint() -> None:
    jwk = {**public_jwk(KEY), "kid": "k1", "use": "enc", "alg": "RS256", "key_ops": ["x"]}
    result = verify(proof(jwk=jwk))
    assert result.jkt == KEY.thumbprint()
    assert result.public_jwk["kid"] == "k1"


# --- check 6: signature -----------------------------------------------------------------------


def test_tampered_signature_refused() -> None:
    head, body, sig = proof().split(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    refused(f"{head}.{body}.{flipped}", "signature invalid")


def test_tampered_payload_refused() -> None:
    head, _, sig = proof().split(".")
    body = b64json({"jti": "x", "htm": "POST", "htu": URL, "iat": NOW})
    refused(f"{head}.{body}.{sig}", "signature invalid")


@pytest.mark.parametrize("signature", ["***", "", "AAAA"])
def test_signature_not_valid_base64url_refused(signature: str) -> None:
    head, body, _ = proof().split(".")
    refused(f"{head}.{body}.{signature}", "signature invalid")


def test_empty_payload_refused() -> None:
    head, _, sig = proof().split(".")
    refused(f"{head}..{sig}", "signature invalid")


def test_jwk_of_another_key_refused() -> None:
    refused(proof(jwk=public_jwk(OTHER_KEY)), "signature invalid")


def test_unencoded_payload_option_refused() -> None:
    refused(proof(extra_header={"b64": False, "crit": ["b64"]}), "b64 header must not be used")


@pytest.mark.parametrize(
    "extra",
    [{"crit": ["exp"]}, {"crit": "x"}, {"kid": 5}, {"x5u": "ftp://x"}, {"b64": False}],
)
def test_library_rejections_become_invalid_dpop_proof(extra: dict[str, Any]) -> None:
    with pytest.raises(InvalidDPoPProof) as info:
        verify(proof(extra_header=extra))
    assert "DPoP proof" in info.value.description


# --- check 7: required claims -----------------------------------------------------------------


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_missing_claim_refused(claim: str) -> None:
    refused(proof(omit={claim}), f"{claim} claim missing")


@pytest.mark.parametrize("jti", ["", 12, None, ["a"]])
def test_bad_jti_refused(jti: object) -> None:
    refused(proof(extra_claims={"jti": jti}), "jti must be a string")


def test_oversized_jti_refused() -> None:
    refused(proof(jti="j" * (MAX_JTI_LENGTH + 1)), "jti must be a string of 1-256")


def test_jti_of_max_length_passes() -> None:
    assert verify(proof(jti="j" * MAX_JTI_LENGTH)).jti == "j" * MAX_JTI_LENGTH


@pytest.mark.parametrize("iat", [str(NOW), float(NOW) + 0.5, True, None])
def test_iat_not_an_int_refused(iat: object) -> None:
    refused(proof(extra_claims={"iat": iat}), "iat must be an integer")


# --- check 8: htm -----------------------------------------------------------------------------


def test_htm_put_on_post_refused() -> None:
    refused(proof(htm="PUT"), "htm does not match the request method POST")


def test_htm_case_matters() -> None:
    refused(proof(htm="post"), "htm does not match")


def test_htm_not_a_string_refused() -> None:
    refused(proof(extra_claims={"htm": ["POST"]}), "htm does not match")


def test_htm_get_on_get_passes() -> None:
    assert verify(proof(htm="GET"), method="GET").htm == "GET"


# --- check 9: htu -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "htu",
    [
        "https://as.example.com/t1/other",
        "https://as.example.com/t2/token",
        "https://evil.example.com/t1/token",
        "http://as.example.com/t1/token",
        "https://as.example.com:8443/t1/token",
        "https://as.example.com/t1/token/",
        "/t1/token",
        "not a url",
        "https://as.example.com:99999/t1/token",
    ],
)
def test_htu_of_another_url_refused(htu: str) -> None:
    refused(proof(htu=htu), "htu does not match the request URL")


def test_htu_not_a_string_refused() -> None:
    refused(proof(extra_claims={"htu": 42}), "htu must be a string")


@pytest.mark.parametrize(
    "htu",
    [
        URL + "?x=1",
        URL + "#frag",
        URL + "?a=b#c",
        "HTTPS://AS.Example.COM/t1/token",
        "https://as.example.com:443/t1/token",
        "https://as.example.com/t1/./token",
        "https://as.example.com/t1/%74oken",
    ],
)
def test_htu_variants_pass(htu: str) -> None:
    assert verify(proof(htu=htu)).htu == htu


def test_request_url_with_query_passes() -> None:
    assert verify(proof(), url=URL + "?grant_type=x").jti


def test_unusable_request_url_refused() -> None:
    refused(proof(), "request URL cannot be normalised", url="https://as.example.com:x/")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Server.Example.COM/Token", "https://server.example.com/Token"),
        ("https://server.example.com:443/token", "https://server.example.com/token"),
        ("http://server.example.com:80/token", "http://server.example.com/token"),
        ("http://server.example.com:443/token", "http://server.example.com:443/token"),
        ("https://server.example.com:80/token", "https://server.example.com:80/token"),
        ("https://server.example.com:8443/token", "https://server.example.com:8443/token"),
        ("https://server.example.com:/token", "https://server.example.com/token"),
        ("https://server.example.com/token?a=1&b=2", "https://server.example.com/token"),
        ("https://server.example.com/token#frag", "https://server.example.com/token"),
        ("https://server.example.com/token?#", "https://server.example.com/token"),
        ("https://server.example.com", "https://server.example.com/"),
        ("https://server.example.com?q", "https://server.example.com/"),
        ("https://server.example.com/a%2fb%7e%41", "https://server.example.com/a%2Fb~A"),
        ("https://server.example.com/a/./b/../c", "https://server.example.com/a/c"),
        ("https://server.example.com/a/b/..", "https://server.example.com/a/"),
        ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
        ("https://User@Server.example.com/x", "https://User@server.example.com/x"),
    ],
)
def test_normalize_htu(url: str, expected: str) -> None:
    assert normalize_htu(url) == expected


@pytest.mark.parametrize("url", ["", "/token", "server.example.com/token", "https:///x",
                                 "https://h:65536/", "https://h:port/", "https://[::1/"])
def test_normalize_htu_rejects_non_urls(url: str) -> None:
    with pytest.raises(ValueError):
        normalize_htu(url)


# --- check 11: iat window ---------------------------------------------------------------------


@pytest.mark.parametrize(("delta", "needle"), [(-3600, "too old"), (3600, "in the future")])
def test_iat_an_hour_off_refused(delta: int, needle: str) -> None:
    refused(proof(iat=NOW + delta), f"iat is {needle}")


def test_iat_window_edges() -> None:
    assert verify(proof(iat=NOW - 300)).iat == NOW - 300
    assert verify(proof(iat=NOW + 60)).iat == NOW + 60
    refused(proof(iat=NOW - 301), "too old")
    refused(proof(iat=NOW + 61), "in the future")
    assert verify(proof(iat=NOW - 30), max_age=30).iat == NOW - 30
    refused(proof(iat=NOW - 31), "too old", max_age=30)
    refused(proof(iat=NOW + 1), "in the future", max_skew=0)


# --- check 12: replay -------------------------------------------------------------------------


class MemoryReplayCache:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    async def first_use(self, key: str, expires_at: float) -> bool:
        if key in self.seen:
            return False
        self.seen[key] = expires_at
        return True


async def test_reused_jti_detected() -> None:
    cache = MemoryReplayCache()
    value = proof(jti="once")
    first = verify(value)
    again = verify(proof(jti="once", htu=URL + "?x=1"))
    assert await cache.first_use(replay_key("t1", first.htu, first.jti), first.iat + 300)
    assert not await cache.first_use(replay_key("t1", again.htu, again.jti), again.iat + 300)
    fresh = verify(proof(jti="twice"))
    assert await cache.first_use(replay_key("t1", fresh.htu, fresh.jti), fresh.iat + 300)


def test_replay_key() -> None:
    key = replay_key("t1", URL, "j1")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key == replay_key("t1", "HTTPS://as.example.com:443/t1/token?x#y", "j1")
    others = {
        replay_key("t2", URL, "j1"),
        replay_key("t1", URL + "x", "j1"),
        replay_key("t1", URL, "j2"),
        replay_key("t1|" + URL, "https://h/", "j1"),
        key,
    }
    assert len(others) == 5
    assert "j1" not in key


# --- check 13: ath and bound key --------------------------------------------------------------


def test_ath_matches_access_token() -> None:
    result = verify(proof(access_token="tok-1"), access_token="tok-1")
    assert result.ath == access_token_hash("tok-1")


def test_missing_ath_refused() -> None:
    refused(proof(), "ath claim missing", access_token="tok-1")


def test_wrong_ath_refused() -> None:
    refused(proof(access_token="tok-2"), "ath does not match", access_token="tok-1")


def test_ath_not_a_string_refused() -> None:
    refused(proof(extra_claims={"ath": 5}), "ath must be a string", access_token="tok-1")


def test_non_ascii_access_token_refused() -> None:
    refused(proof(access_token="tok"), "ath does not match", access_token="tok\u00e9")


def test_ath_ignored_without_access_token() -> None:
    assert verify(proof(access_token="whatever")).ath == access_token_hash("whatever")


def test_bound_key_matches() -> None:
    assert verify(proof(), expected_jkt=KEY.thumbprint()).jkt == KEY.thumbprint()


def test_other_key_than_bound_refused() -> None:
    value = make_proof(OTHER_KEY, htm="POST", htu=URL, iat=NOW)
    refused(value, "does not match the bound key (jkt)", expected_jkt=KEY.thumbprint())


# --- must pass --------------------------------------------------------------------------------


def test_extra_claims_and_header_parameters_ignored() -> None:
    value = proof(
        extra_claims={"exp": "soon", "foo": {"bar": [1]}, "aud": 3},
        extra_header={"kid": "k1", "x-custom": True, "cty": "text"},
    )
    assert verify(value).jkt == KEY.thumbprint()


@pytest.mark.parametrize("alg", ["EdDSA", "RS256", "PS256", "ES384", "ES512"])
def test_other_algorithms_verify(alg: str) -> None:
    key = new_key(alg)
    result = verify(make_proof(key, htm="POST", htu=URL, iat=NOW, alg=alg))
    assert result.jkt == key.thumbprint() == jwk_thumbprint(public_jwk(key))
    assert "d" not in result.public_jwk


def test_rsa_4096_key_fits() -> None:
    key = RSAKey.generate_key(4096)
    assert verify(make_proof(key, htm="POST", htu=URL, iat=NOW, alg="RS256")).jti


def test_repeated_verification_uses_same_result() -> None:
    value = proof()
    assert verify(value) == verify(value)


# --- check 10: nonces -------------------------------------------------------------------------


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def nonces(clock: FrozenClock) -> DPoPNonces:
    return DPoPNonces(SECRET, clock)


def with_nonce(nonces: DPoPNonces, value: str, **kw: Any) -> DPoPProof:
    return verify(value, nonce_valid=lambda n: nonces.is_valid("t1", n), **kw)


def test_nonce_shape(nonces: DPoPNonces) -> None:
    nonce = nonces.issue("t1")
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", nonce)
    assert nonce != nonces.issue("t2")
    assert nonce != DPoPNonces(SECRET[::-1], FrozenClock(NOW)).issue("t1")


def test_nonce_required_but_missing(nonces: DPoPNonces) -> None:
    with pytest.raises(UseDPoPNonce, match="nonce required"):
        with_nonce(nonces, proof(), nonce_required=True)


def test_nonce_current_window_passes(nonces: DPoPNonces) -> None:
    nonce = nonces.issue("t1")
    assert with_nonce(nonces, proof(nonce=nonce), nonce_required=True).nonce == nonce


def test_nonce_previous_window_passes(nonces: DPoPNonces, clock: FrozenClock) -> None:
    nonce = nonces.issue("t1")
    clock.advance(300)
    assert nonces.is_valid("t1", nonce)
    value = proof(nonce=nonce, iat=int(clock.now()))
    assert with_nonce(nonces, value, now=clock.now(), nonce_required=True).nonce == nonce


def test_nonce_stale_window_refused(nonces: DPoPNonces, clock: FrozenClock) -> None:
    nonce = nonces.issue("t1")
    clock.advance(600)
    assert not nonces.is_valid("t1", nonce)
    value = proof(nonce=nonce, iat=int(clock.now()))
    with pytest.raises(UseDPoPNonce, match="invalid or stale"):
        with_nonce(nonces, value, now=clock.now(), nonce_required=True)


def test_nonce_next_window_only_within_skew(nonces: DPoPNonces, clock: FrozenClock) -> None:
    start = (NOW // 300 + 1) * 300
    clock.set(start)
    ahead = nonces.issue("t1")  # issued by a replica whose clock is already in the next window
    clock.set(start - 3)
    assert nonces.is_valid("t1", ahead)
    clock.set(start - 30)
    assert not nonces.is_valid("t1", ahead)


def test_nonce_forged_refused(nonces: DPoPNonces) -> None:
    genuine = nonces.issue("t1")
    forged = [
        DPoPNonces(b"another secret of 32 bytes......", FrozenClock(NOW)).issue("t1"),
        nonces.issue("t2"),
        genuine[:-2] + ("AA" if genuine[-2:] != "AA" else "BA"),
        base64.urlsafe_b64encode(bytes(24)).decode(),
    ]
    for nonce in forged:
        assert not nonces.is_valid("t1", nonce)
        with pytest.raises(UseDPoPNonce):
            with_nonce(nonces, proof(nonce=nonce), nonce_required=True)


@pytest.mark.parametrize(
    "garbage",
    ["", "x", "!" * 32, "A" * 31, "A" * 33, "A" * 31 + "=", "é" * 32, None, 5, b"A" * 32],
)
def test_nonce_garbage_is_invalid_not_an_error(nonces: DPoPNonces, garbage: Any) -> None:
    assert nonces.is_valid("t1", garbage) is False


def test_nonce_scope_garbage_is_invalid(nonces: DPoPNonces) -> None:
    assert nonces.is_valid(None, nonces.issue("t1")) is False  # type: ignore[arg-type]


def test_nonce_not_required_but_present_and_invalid(nonces: DPoPNonces) -> None:
    with pytest.raises(UseDPoPNonce):
        with_nonce(nonces, proof(nonce="stale-or-forged"))


def test_nonce_not_required_and_valid(nonces: DPoPNonces) -> None:
    nonce = nonces.issue("t1")
    assert with_nonce(nonces, proof(nonce=nonce)).nonce == nonce


def test_nonce_present_without_validator_passes() -> None:
    assert verify(proof(nonce="anything")).nonce == "anything"


def test_nonce_not_a_string_refused(nonces: DPoPNonces) -> None:
    with pytest.raises(InvalidDPoPProof, match="nonce must be a string"):
        with_nonce(nonces, proof(extra_claims={"nonce": 7}), nonce_required=True)


def test_nonce_required_without_validator_is_a_bug() -> None:
    with pytest.raises(ValueError, match="nonce_valid"):
        verify(proof(), nonce_required=True)


def test_nonce_checked_after_the_proof_itself(nonces: DPoPNonces) -> None:
    with pytest.raises(InvalidDPoPProof):
        with_nonce(nonces, proof(htm="GET"), nonce_required=True)


def test_nonce_secret_and_lifetime_validated(clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        DPoPNonces(b"short", clock)
    with pytest.raises(ValueError, match="positive"):
        DPoPNonces(SECRET, clock, lifetime=0)


def test_errors_are_oauth_errors() -> None:
    with pytest.raises(OAuthError) as info:
        verify("garbage")
    assert info.value.error == "invalid_dpop_proof"
    assert UseDPoPNonce("x").error == "use_dpop_nonce"


# --- thumbprints ------------------------------------------------------------------------------


def test_thumbprint_ignores_member_order_and_extras() -> None:
    jwk = public_jwk(KEY)
    shuffled = {"kid": "z", **dict(reversed(list(jwk.items())))}
    assert jwk_thumbprint(shuffled) == jwk_thumbprint(jwk) == KEY.thumbprint()


def test_thumbprint_of_oct_key() -> None:
    key = OctKey.import_key(SECRET)
    assert jwk_thumbprint(dict(key.as_dict(private=True))) == key.thumbprint()


@pytest.mark.parametrize(
    "jwk", [{}, {"kty": "XYZ"}, {"kty": ["EC"]}, {"kty": "EC", "crv": "P-256", "x": "a"}]
)
def test_thumbprint_rejects_unusable_jwk(jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        jwk_thumbprint(jwk)


def test_ec_key_from_header_is_usable_by_joserfc() -> None:
    assert ECKey.import_key(verify(proof()).public_jwk).thumbprint() == KEY.thumbprint()


# --- the vetted-header cache: a repeated header segment skips only its decoding ---------------

def _resign(value: str, key: Any) -> str:
    """``value``'s header and claims with a signature by ``key`` (not the header's jwk)."""
    head, body, _ = value.split(".")
    other = make_proof(key, htm="POST", htu=URL, iat=NOW)
    return f"{head}.{body}.{other.split('.')[2]}"


def test_repeated_header_still_needs_its_own_signature() -> None:
    good = proof()
    assert verify(good).jkt == jwk_thumbprint(public_jwk(KEY))
    # the same header segment (now cached) over claims signed by another key: refused
    refused(_resign(proof(), OTHER_KEY), "signature invalid")
    # and over claims whose signature was cut from another proof of the same key
    head, _, sig = proof(jti="a").split(".")
    refused(f"{head}.{proof(jti='b').split('.')[1]}.{sig}", "signature invalid")


def test_refused_header_is_refused_every_time() -> None:
    bad = proof(extra_header={"typ": "jwt"})
    for _ in range(3):
        refused(bad, "typ must be dpop+jwt")


def test_changing_a_result_does_not_change_the_next_check() -> None:
    first = verify(proof())
    first.public_jwk["x"] = "tampered"
    second = verify(proof())
    assert second.public_jwk == public_jwk(KEY)
    assert second.jkt == first.jkt == jwk_thumbprint(public_jwk(KEY))


def test_long_header_checked_without_the_cache() -> None:
    padding = {"pad": "p" * 1200}  # unknown header parameters are ignored (joserfc path)
    value = proof(extra_header=padding)
    assert len(value.split(".")[0]) > 1024
    assert verify(value).jkt == jwk_thumbprint(public_jwk(KEY))
    refused(proof(extra_header={**padding, "typ": "jwt"}), "typ must be dpop+jwt")
    refused(_resign(value, OTHER_KEY), "signature invalid")

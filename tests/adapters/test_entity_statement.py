"""adapters.entity_statement: OpenID Federation Entity Configurations and signed requests,
verified as an attacker would try them (each rule refused on its own)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jws
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from adapters import jose
from adapters.entity_statement import (
    REQUEST_TYP,
    STATEMENT_TYP,
    EntityStatementError,
    check_jwks,
    verify_entity_configuration,
    verify_signed_request,
)

ENTITY = "https://partner.example"
REGISTRY = "https://tessera.example/registry"
NOW = 1_800_000_000.0
FED = ECKey.generate_key("P-256", parameters={"kid": "fed-1"})
FED_2 = ECKey.generate_key("P-256", parameters={"kid": "fed-2"})
OTHER = ECKey.generate_key("P-256", parameters={"kid": "fed-1"})  # same kid, other key


def public(key: Key) -> dict[str, Any]:
    return key.as_dict(private=False)


def sign(claims: dict[str, Any], key: Key = FED, **header: Any) -> str:
    head = {"alg": "ES256", "typ": STATEMENT_TYP, "kid": key.kid, **header}
    head = {k: v for k, v in head.items() if v is not None}
    return jws.serialize_compact(head, json.dumps(claims).encode(), key,
                                 algorithms=[head["alg"]])


def raw_sign(claims: dict[str, Any], key: ECKey, **header: Any) -> str:
    """ECDSA over whatever header we like (joserfc would refuse to make these)."""
    head = {"alg": "ES256", "typ": STATEMENT_TYP, "kid": key.kid, **header}
    data = jose.signing_input(head, claims)
    der = key.get_op_key("sign").sign(data, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    size = (key.get_op_key("sign").curve.key_size + 7) // 8
    return jose.compact(data, r.to_bytes(size, "big") + s.to_bytes(size, "big"))


def configuration(**changes: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ENTITY, "sub": ENTITY, "iat": int(NOW) - 10, "exp": int(NOW) + 3600,
        "jwks": {"keys": [public(FED)]},
        "metadata": {"oauth_authorization_server": {"issuer": ENTITY,
                                                    "jwks_uri": f"{ENTITY}/jwks"}},
        "authority_hints": [REGISTRY],
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def verify(token: str, **kw: Any) -> Any:
    return verify_entity_configuration(token, entity_id=kw.pop("entity_id", ENTITY), now=NOW,
                                       **kw)


def test_a_good_configuration_verifies():
    statement = verify(sign(configuration()))
    assert statement.sub == statement.iss == ENTITY and statement.kid == "fed-1"
    assert statement.jwks == {"keys": [public(FED)]}
    assert statement.metadata["oauth_authorization_server"]["jwks_uri"] == f"{ENTITY}/jwks"
    assert statement.authority_hints == (REGISTRY,)


@pytest.mark.parametrize("token, why", [
    (lambda: sign(configuration(), key=OTHER), "signature does not verify"),
    (lambda: sign(configuration(iss="https://evil.example")), "iss == sub"),
    (lambda: sign(configuration(iss="https://evil.example", sub="https://evil.example")),
     "not the entity id"),
    (lambda: sign(configuration(iat=int(NOW) - 7200, exp=int(NOW) - 3600)), "expired"),
    (lambda: sign(configuration(iat=int(NOW) + 3600)), "in the future"),
    (lambda: sign(configuration(exp=None)), "iat and exp are required"),
    (lambda: sign(configuration(iat="yesterday")), "iat"),
    (lambda: sign(configuration(), typ="JWT"), "typ"),
    (lambda: sign(configuration(), typ=None), "typ"),
    (lambda: sign(configuration(), key=FED_2), "not one of the entity's keys"),
    (lambda: sign(configuration(), kid=None), "not one of the entity's keys"),
    (lambda: sign(configuration(jwks={"keys": [public(FED), public(FED)]})), "twice"),
    (lambda: sign(configuration(jwks={"keys": [FED.as_dict(private=True)]})), "public"),
    (lambda: sign(configuration(jwks={"keys": [{"kty": "oct", "k": "AAAA", "kid": "fed-1"}]})),
     "public"),
    (lambda: sign(configuration(jwks={"keys": []})), "1 to"),
    (lambda: sign(configuration(jwks=None)), "keys list"),
    (lambda: sign(configuration(metadata={"openid_provider": "x"})), "metadata"),
    (lambda: sign(configuration(authority_hints="https://x")), "authority_hints"),
    (lambda: sign(configuration(crit=["trust_chain_magic"])), "crit"),
    (lambda: raw_sign(configuration(), FED, crit=["exp"], exp=1), "crit"),
    (lambda: sign(configuration(), alg="HS256", key=jose_oct()), "alg"),
    (lambda: "not.a.jws", "malformed"),
    (lambda: "", "malformed|compact"),
])
def test_refused(token, why):
    with pytest.raises(EntityStatementError, match=why):
        verify(token())


def jose_oct() -> Key:
    from joserfc.jwk import OctKey
    return OctKey.generate_key(256, parameters={"kid": "fed-1"})


def test_alg_none_is_refused():
    head = jose.b64url(json.dumps({"alg": "none", "typ": STATEMENT_TYP, "kid": "fed-1"}).encode())
    body = jose.b64url(json.dumps(configuration()).encode())
    with pytest.raises(EntityStatementError, match="alg"):
        verify(f"{head}.{body}.")


def test_signature_over_other_claims_is_refused():
    """A valid signature moved onto other claims (the attacker's own jwks) fails."""
    good = sign(configuration())
    evil = sign(configuration(jwks={"keys": [public(FED), public(FED_2)]}), key=FED_2)
    head, _, sig = good.split(".")
    _, body, _ = evil.split(".")
    with pytest.raises(EntityStatementError, match="signature does not verify"):
        verify(f"{head}.{body}.{sig}")


def test_key_continuity():
    """A refreshed configuration must be signed by a key the registry holds: the new key
    published beside the old one is taken only once the old one signed for it."""
    on_record = {"keys": [public(FED)]}
    both = configuration(jwks={"keys": [public(FED), public(FED_2)]})
    assert verify(sign(both), trusted_jwks=on_record).jwks["keys"][1]["kid"] == "fed-2"
    with pytest.raises(EntityStatementError, match="does not hold"):
        verify(sign(both, key=FED_2), trusted_jwks=on_record)
    # same kid, another key (a host takeover publishing its own "fed-1")
    takeover = configuration(jwks={"keys": [public(OTHER)]})
    with pytest.raises(EntityStatementError, match="does not hold"):
        verify(sign(takeover, key=OTHER), trusted_jwks=on_record)


def test_weak_or_mismatched_keys_are_refused():
    rsa = RSAKey.generate_key(2048, parameters={"kid": "rsa"})
    ed = OKPKey.generate_key("Ed25519", parameters={"kid": "ed"})
    claims = configuration(jwks={"keys": [public(rsa), public(ed)]})
    assert verify(sign(claims, key=rsa, alg="RS256")).kid == "rsa"
    assert verify(sign(claims, key=ed, alg="EdDSA")).kid == "ed"
    p384 = ECKey.generate_key("P-384", parameters={"kid": "p384"})
    with pytest.raises(EntityStatementError, match="does not fit"):
        verify(raw_sign(configuration(jwks={"keys": [public(p384)]}), p384))
    enc = dict(public(FED), use="enc")
    with pytest.raises(EntityStatementError, match="does not fit"):
        verify(sign(configuration(jwks={"keys": [enc]})))


def test_check_jwks_refuses_unusable_keys():
    with pytest.raises(EntityStatementError):
        check_jwks({"keys": [{"kty": "EC", "kid": "x", "crv": "P-256", "x": "AA", "y": "AA"}]})
    with pytest.raises(EntityStatementError, match="no kid"):
        check_jwks({"keys": [{k: v for k, v in public(FED).items() if k != "kid"}]})
    with pytest.raises(EntityStatementError, match="1 to"):
        check_jwks({"keys": [dict(public(FED), kid=f"k{i}") for i in range(21)]})


def request(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ENTITY, "sub": ENTITY, "aud": REGISTRY, "iat": int(NOW),
              "exp": int(NOW) + 60, "jti": "r1"}
    claims.update(changes)
    return claims


def verify_request(token: str) -> dict[str, Any]:
    return verify_signed_request(token, jwks={"keys": [public(FED)]}, entity_id=ENTITY,
                                 audience=REGISTRY, now=NOW)


def test_signed_request():
    assert verify_request(sign(request(), typ=REQUEST_TYP))["jti"] == "r1"


@pytest.mark.parametrize("token, why", [
    # its public Entity Configuration is not a request: anyone could replay it
    (lambda: sign(configuration()), "typ"),
    (lambda: sign(request(), typ=REQUEST_TYP, key=OTHER), "signature"),
    (lambda: sign(request(), typ=REQUEST_TYP, key=FED_2), "not one of"),
    (lambda: sign(request(aud="https://other.example"), typ=REQUEST_TYP), "aud"),
    (lambda: sign(request(iss="https://evil.example"), typ=REQUEST_TYP), "entity id"),
    (lambda: sign(request(exp=int(NOW) + 3600), typ=REQUEST_TYP), "at most"),
    (lambda: sign(request(iat=int(NOW) - 600, exp=int(NOW) - 300), typ=REQUEST_TYP),
     "expired"),
])
def test_signed_request_refused(token, why):
    with pytest.raises(EntityStatementError, match=why):
        verify_request(token())

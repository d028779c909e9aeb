"""What the bounded JSON reader costs on the hot path: a typical DPoP proof (ES256, jwk in the
header) and a DPoP-bound RFC 9068 access token, as every protected request parses them.

Prints microseconds per request (the best of many short batches: a busy machine only adds)
for

* ``parse``: decoding the four JSON segments (proof header and claims, token header and
  claims) with plain ``json.loads`` and with ``adapters.json_reader.loads``;
* ``verify``: the whole pure check, ``adapters.dpop.verify_proof`` + ``adapters.jose.verify_jws``
  + ``check_times`` (signatures included), as the code stands.

    PYTHONPATH=. python scripts/bench_json_reader.py
"""

from __future__ import annotations

import json
import secrets
import time
import timeit
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey

from adapters import dpop, jose, json_reader
from tests.dpop_client import make_proof

URL = "https://tessera.example/t/acme/demo/whoami"


def _token(key: ECKey, jkt: str) -> str:
    now = int(time.time())
    claims = {"iss": "https://tessera.example/t/acme", "sub": "agent-7f3a",
              "aud": "https://tessera.example/t/acme/demo", "client_id": "agent-7f3a",
              "iat": now, "exp": now + 300, "jti": secrets.token_urlsafe(16),
              "scope": "read write", "cnf": {"jkt": jkt}}
    data = jose.signing_input({"typ": "at+jwt", "alg": "ES256", "kid": "k1"}, claims)
    r, s = decode_dss_signature(key.get_op_key("sign").sign(data, ec.ECDSA(hashes.SHA256())))
    return jose.compact(data, r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def _per_call(fn: Callable[[], object], number: int, repeat: int = 300) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    signer, holder = ECKey.generate_key("P-256"), ECKey.generate_key("P-256")
    public = jose.import_public_jwk(signer.as_dict(private=False))
    jkt = dpop.jwk_thumbprint(dict(holder.as_dict(private=False)))
    token = _token(signer, jkt)
    proof = make_proof(holder, htm="GET", htu=URL, access_token=token)
    segments = [jose.b64url_decode(part) for t in (proof, token) for part in t.split(".")[:2]]

    def plain() -> None:
        for segment in segments:
            json.loads(segment)

    def bounded() -> None:
        for segment in segments:
            json_reader.loads(segment)

    def verify() -> None:
        now = time.time()
        dpop.verify_proof(proof, method="GET", url=URL, now=now, access_token=token,
                          expected_jkt=jkt)
        claims = jose.verify_jws(token, lambda _h: public, typ="at+jwt").claims
        jose.check_times(claims, now, leeway=0)

    print(f"proof {len(proof)} chars, token {len(token)} chars")
    print(f"parse, json.loads:          {_per_call(plain, 200):6.2f} µs per request")
    print(f"parse, json_reader.loads:   {_per_call(bounded, 200):6.2f} µs per request")
    print(f"verify proof + token:       {_per_call(verify, 10):6.2f} µs per request")


if __name__ == "__main__":
    main()

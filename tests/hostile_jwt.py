"""Hostile JWTs for tests: built byte by byte, so their JSON can be what no encoder writes
(deep nesting, ``NaN``, duplicate members, lone surrogates), and signed for real."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import ECKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def deep(levels: int, *, closed: bool = True) -> bytes:
    return b"[" * levels + (b"]" * levels if closed else b"")


def obj(members: dict[str, Any]) -> bytes:
    """A JSON object whose values may be raw JSON (bytes) spliced in as they are."""
    parts = [json.dumps(k).encode() + b":" + (v if isinstance(v, bytes) else json.dumps(v).encode())
             for k, v in members.items()]
    return b"{" + b",".join(parts) + b"}"


Signer = Callable[[bytes], bytes]


def jwt(header: bytes, payload: bytes, sign: Signer | None = None) -> str:
    data = f"{b64(header)}.{b64(payload)}".encode("ascii")
    signature = sign(data) if sign else b"\x00" * 64
    return f"{data.decode()}.{b64(signature)}"


def ec_signer(key: ECKey) -> Signer:
    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.get_op_key("sign").sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return sign

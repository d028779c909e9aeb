"""DPoP proofs (RFC 9449): verification, JWK thumbprints (RFC 7638), replay keys, server nonces.

Pure: no I/O. The replay cache is a protocol the caller provides; time comes in as ``now``
or through a ``Clock``. Every defect of a proof raises ``InvalidDPoPProof`` (or
``UseDPoPNonce`` for a missing or stale nonce) with a description naming the defect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import UnsupportedAlgorithmError
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey

from adapters.clock import Clock
from adapters.errors import InvalidDPoPProof, UseDPoPNonce
from adapters.jose import verify_es256
from adapters.json_reader import JSONInputError, loads

_WANTED_ALGS = ("ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256")
SUPPORTED_ALGS: frozenset[str] = frozenset(_WANTED_ALGS).intersection(jws.JWSRegistry.algorithms)
MAX_JTI_LENGTH = 256
_PLAIN_HEADER = frozenset({"typ", "alg", "jwk"})  # anything else: joserfc checks it
MAX_PROOF_LENGTH = 16_384

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k", "oth"})
_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"),
                     "RSA": ("e", "kty", "n"), "oct": ("k", "kty")}
# alg -> (kty, {crv: length of each base64url coordinate}); None: no curve (RSA)
_ALG_KEYS: dict[str, tuple[str, dict[str, int] | None]] = {
    "ES256": ("EC", {"P-256": 43}), "ES384": ("EC", {"P-384": 64}),
    "ES512": ("EC", {"P-521": 88}), "EdDSA": ("OKP", {"Ed25519": 43, "Ed448": 76}),
    "RS256": ("RSA", None), "PS256": ("RSA", None),
}
_KEY_CLASSES: dict[str, type[ECKey] | type[OKPKey] | type[RSAKey]] = {
    "EC": ECKey, "OKP": OKPKey, "RSA": RSAKey}
_MIN_RSA_BITS = 2048
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_PCT = re.compile(r"%([0-9A-Fa-f]{2})")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _ProofRegistry(jws.JWSRegistry):
    """One alg only; unknown header parameters ignored; room for RSA-4096 keys in the header.
    The alg was vetted before, so no per-call deprecation warning (joserfc warns on EdDSA)."""

    max_header_length = 4096
    max_payload_length = 8192

    def get_alg(self, name: str) -> jws.JWSAlgModel:
        if not self.allowed or name not in self.allowed:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        return self.algorithms[name]


_REGISTRIES = {a: _ProofRegistry(algorithms=[a], strict_check_header=False) for a in SUPPORTED_ALGS}


@dataclass(frozen=True)
class DPoPProof:
    jkt: str
    jti: str
    htm: str
    htu: str
    iat: int
    nonce: str | None
    ath: str | None
    public_jwk: dict[str, object]


class ReplayCache(Protocol):
    async def first_use(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at``; True if it had not been seen before."""
        ...


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Strict: base64url alphabet only, no padding, canonical trailing bits."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url(data) != text:
        raise ValueError("not canonical base64url")
    return data


def single_dpop_header(values: list[str]) -> str | None:
    """None if no DPoP header, its value if exactly one; two headers (or two values folded
    into one with a comma, which a compact JWS never contains) raise ``InvalidDPoPProof``."""
    if not values:
        return None
    if len(values) > 1 or "," in values[0]:
        raise InvalidDPoPProof("more than one DPoP header")
    return values[0].strip()


def _normalize_pct(match: re.Match[str]) -> str:
    char = chr(int(match[1], 16))
    return char if char in _UNRESERVED else "%" + match[1].upper()


def _normalize_path(path: str) -> str:
    if "%" in path:
        path = _PCT.sub(_normalize_pct, path)
    if "." not in path:
        return path or "/"
    out: list[str] = []
    for segment in path.split("/")[1:]:  # RFC 3986 §5.2.4 on an absolute path
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    trailing = path.endswith(("/.", "/.."))
    return "/" + "/".join(out) + ("/" if trailing and out else "")


@lru_cache(maxsize=512)  # the same few endpoint URLs on every request
def normalize_htu(url: str) -> str:
    """RFC 3986 §6.2.2/§6.2.3 normalisation for comparing ``htu``: scheme and host lowercased,
    default port removed, percent-encodings normalised, dot segments removed, empty path ->
    '/', query and fragment dropped. Raises ``ValueError`` for a URL without scheme or host."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname
    if not scheme or not host:
        raise ValueError("not an absolute URL")
    port = parts.port  # ValueError when not a valid port
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc = f"{netloc}:{port}"
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return f"{scheme}://{netloc}{_normalize_path(parts.path)}"


def _thumbprint_input(jwk: dict[str, Any]) -> str:
    """The RFC 7638 JSON of the required members (also the key-cache key); ValueError if bad."""
    kty = jwk.get("kty")
    members = _REQUIRED_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"unsupported key type {jwk.get('kty')!r}")
    if not all(isinstance(jwk.get(m), str) for m in members):
        raise ValueError(f"{kty} key needs string members {', '.join(members)}")
    return json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), ensure_ascii=False)


def jwk_thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint, base64url without padding. ``ValueError`` if unusable."""
    return _b64url(hashlib.sha256(_thumbprint_input(jwk).encode()).digest())


def access_token_hash(token: str) -> str:
    """The ``ath`` claim: base64url(SHA-256(ASCII token)) without padding."""
    return _b64url(hashlib.sha256(token.encode("ascii")).digest())


def replay_key(namespace: str, htu: str, jti: str) -> str:
    """SHA-256 hex of namespace, normalised htu and jti (JSON-encoded: no ambiguous joins)."""
    data = json.dumps([namespace, normalize_htu(htu), jti], separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


@lru_cache(maxsize=1024)
def _es256_public_key(canonical: str) -> ec.EllipticCurvePublicKey:
    public = _import_key(canonical).get_op_key("verify")
    if not isinstance(public, ec.EllipticCurvePublicKey):
        raise InvalidDPoPProof("DPoP proof jwk is not a P-256 public key")
    return public


@lru_cache(maxsize=1024)
def _import_key(canonical: str) -> Key:
    data = json.loads(canonical)
    if data["kty"] == "RSA" and (
        int.from_bytes(_b64url_decode(data["n"]), "big").bit_length() < _MIN_RSA_BITS
    ):
        raise InvalidDPoPProof(f"DPoP proof RSA key shorter than {_MIN_RSA_BITS} bits")
    return _KEY_CLASSES[data["kty"]].import_key(data)


def _check_header(header: dict[str, Any], allowed_algs: frozenset[str]) -> tuple[str, str]:
    """typ, alg and jwk checks; returns (alg, canonical jwk JSON)."""
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower().removeprefix("application/") != "dpop+jwt":
        raise InvalidDPoPProof(f"DPoP proof typ must be dpop+jwt, got {typ!r}")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise InvalidDPoPProof("DPoP proof alg missing")
    if alg.lower() == "none" or alg.startswith("HS"):
        raise InvalidDPoPProof(f"DPoP proof alg {alg} is not allowed (asymmetric algs only)")
    if alg not in allowed_algs or alg not in SUPPORTED_ALGS:
        raise InvalidDPoPProof(f"DPoP proof alg {alg} is not supported")
    if header.get("b64", True) is not True:
        raise InvalidDPoPProof("DPoP proof b64 header must not be used")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise InvalidDPoPProof("DPoP proof jwk missing or not a JSON object")
    if jwk.get("kty") == "oct":
        raise InvalidDPoPProof("DPoP proof jwk must not be a symmetric (oct) key")
    private = _PRIVATE_MEMBERS.intersection(jwk)
    if private:
        raise InvalidDPoPProof(f"DPoP proof jwk contains private key members {sorted(private)}")
    kty, curves = _ALG_KEYS[alg]
    if jwk.get("kty") != kty:
        raise InvalidDPoPProof(f"DPoP proof jwk kty {jwk.get('kty')!r} does not fit alg {alg}")
    try:
        canonical = _thumbprint_input(jwk)
    except ValueError as exc:
        raise InvalidDPoPProof(f"DPoP proof jwk unusable: {exc}") from None
    if curves is not None:
        size = curves.get(jwk["crv"])
        coords = (jwk["x"], jwk["y"]) if kty == "EC" else (jwk["x"],)
        if size is None or any(len(c) != size or not _B64URL.fullmatch(c) for c in coords):
            raise InvalidDPoPProof(f"DPoP proof jwk curve or coordinates do not fit alg {alg}")
    return alg, canonical


def _vet_header(
    segment: str, allowed_algs: frozenset[str]
) -> tuple[dict[str, Any], str, str, str]:
    """The proof's JOSE header decoded and checked: (header, alg, canonical jwk JSON, jkt)."""
    try:
        header = loads(_b64url_decode(segment), max_bytes=MAX_PROOF_LENGTH)
    except JSONInputError as exc:
        raise InvalidDPoPProof(f"DPoP proof header is not base64url JSON: {exc}") from None
    except ValueError:
        raise InvalidDPoPProof("DPoP proof header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise InvalidDPoPProof("DPoP proof header is not a JSON object")
    alg, canonical = _check_header(header, allowed_algs)
    return header, alg, canonical, _b64url(hashlib.sha256(canonical.encode()).digest())


# A client signs every proof with the same key, so its header segment repeats: the decoded,
# checked header is kept per exact segment (a refused header raises and is not kept). Only
# short segments (an ES256/EdDSA or RSA-2048 header is 150-600 characters), so the cache holds
# at most ~1 MB whatever is sent. Callers must not change the returned header.
_CACHED_HEADER_LENGTH = 1024
_vetted_header = lru_cache(maxsize=1024)(_vet_header)


def verify_proof(
    proof: str,
    *,
    method: str,
    url: str,
    now: float,
    allowed_algs: frozenset[str] = SUPPORTED_ALGS,
    max_age: int = 300,
    max_skew: int = 60,
    nonce_required: bool = False,
    nonce_valid: Callable[[str], bool] | None = None,
    access_token: str | None = None,
    expected_jkt: str | None = None,
) -> DPoPProof:
    """Check a DPoP proof against RFC 9449 §4.3 (all but replay: see ``replay_key``).

    A replay cache entry for the returned proof must live until ``iat + max_age``.
    ``nonce_required`` without ``nonce_valid`` is a programming error (``ValueError``).
    """
    if nonce_required and nonce_valid is None:
        raise ValueError("nonce_required needs nonce_valid")
    if not isinstance(proof, str) or len(proof) > MAX_PROOF_LENGTH:
        raise InvalidDPoPProof("DPoP proof missing or too large")
    segments = proof.split(".")
    if len(segments) != 3 or not segments[0]:
        raise InvalidDPoPProof("DPoP proof is not a compact JWS")
    if len(segments[0]) <= _CACHED_HEADER_LENGTH:
        header, alg, canonical, jkt = _vetted_header(segments[0], allowed_algs)
    else:
        header, alg, canonical, jkt = _vet_header(segments[0], allowed_algs)

    try:
        if alg == "ES256" and header.keys() <= _PLAIN_HEADER:
            payload = verify_es256(_es256_public_key(canonical), proof)
        else:
            key = _import_key(canonical)
            payload = jws.deserialize_compact(
                proof, key, algorithms=[alg], registry=_REGISTRIES[alg]
            ).payload
    except InvalidDPoPProof:
        raise
    except Exception as exc:  # whatever joserfc or cryptography raise: a bad proof
        raise InvalidDPoPProof(f"DPoP proof signature invalid ({type(exc).__name__})") from exc
    try:
        claims = loads(payload, max_bytes=MAX_PROOF_LENGTH)
    except JSONInputError as exc:
        raise InvalidDPoPProof(f"DPoP proof payload is not JSON: {exc}") from None
    if not isinstance(claims, dict):
        raise InvalidDPoPProof("DPoP proof payload is not a JSON object")

    for name in ("jti", "htm", "htu", "iat"):
        if name not in claims:
            raise InvalidDPoPProof(f"DPoP proof {name} claim missing")
    jti, htm, htu, iat = claims["jti"], claims["htm"], claims["htu"], claims["iat"]
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise InvalidDPoPProof(f"DPoP proof jti must be a string of 1-{MAX_JTI_LENGTH} chars")
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise InvalidDPoPProof("DPoP proof iat must be an integer")
    if htm != method:
        raise InvalidDPoPProof(f"DPoP proof htm does not match the request method {method}")
    if not isinstance(htu, str):
        raise InvalidDPoPProof("DPoP proof htu must be a string")
    try:
        target = normalize_htu(url)
    except ValueError:
        raise InvalidDPoPProof("request URL cannot be normalised for htu comparison") from None
    try:
        htu_ok = normalize_htu(htu) == target
    except ValueError:
        htu_ok = False
    if not htu_ok:
        raise InvalidDPoPProof("DPoP proof htu does not match the request URL")
    if iat < now - max_age:
        raise InvalidDPoPProof("DPoP proof iat is too old")
    if iat > now + max_skew:
        raise InvalidDPoPProof("DPoP proof iat is in the future")
    nonce, ath = claims.get("nonce"), claims.get("ath")
    if nonce is not None and not isinstance(nonce, str):
        raise InvalidDPoPProof("DPoP proof nonce must be a string")
    if ath is not None and not isinstance(ath, str):
        raise InvalidDPoPProof("DPoP proof ath must be a string")

    if access_token is not None:
        if ath is None:
            raise InvalidDPoPProof("DPoP proof ath claim missing")
        try:
            expected_ath = access_token_hash(access_token)
        except UnicodeEncodeError:
            expected_ath = ""
        if not hmac.compare_digest(ath.encode(), expected_ath.encode()):
            raise InvalidDPoPProof("DPoP proof ath does not match the access token")
    if expected_jkt is not None and jkt != expected_jkt:
        raise InvalidDPoPProof("DPoP proof key does not match the bound key (jkt)")
    if nonce is None:
        if nonce_required:
            raise UseDPoPNonce("DPoP proof nonce required")
    elif nonce_valid is not None and not nonce_valid(nonce):
        raise UseDPoPNonce("DPoP proof nonce is invalid or stale")
    return DPoPProof(jkt, jti, htm, htu, iat, nonce, ath, dict(header["jwk"]))


class DPoPNonces:
    """Stateless server nonces shared by all replicas:
    ``nonce = base64url(window (8 bytes) || HMAC-SHA256(secret, scope, window)[:16])``, 32
    base64url characters (1*NQCHAR). Valid in the current and the previous window of
    ``lifetime`` seconds, and in the next one within ``_SKEW`` seconds of its start (replica
    clocks differ a little)."""

    _SKEW = 5
    _MAC_LEN = 16
    _LEN = 32  # base64url of 8 + 16 bytes, no padding

    def __init__(self, secret: bytes, clock: Clock, lifetime: int = 300) -> None:
        if len(secret) < 16:
            raise ValueError("nonce secret must have at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("nonce lifetime must be positive")
        self._secret, self._clock, self._lifetime = bytes(secret), clock, lifetime

    def _mac(self, scope: str, window: bytes) -> bytes:
        msg = b"dpop-nonce\x00" + window + scope.encode()
        return hmac.new(self._secret, msg, hashlib.sha256).digest()[: self._MAC_LEN]

    def issue(self, scope: str) -> str:
        window = int(self._clock.now() // self._lifetime).to_bytes(8, "big")
        return _b64url(window + self._mac(scope, window))

    def is_valid(self, scope: str, nonce: str) -> bool:
        try:
            if not isinstance(nonce, str) or len(nonce) != self._LEN:
                return False
            raw = _b64url_decode(nonce)
            now = self._clock.now()
            current = int(now // self._lifetime)
            window = int.from_bytes(raw[:8], "big")
            fresh = current - 1 <= window <= current or (
                window == current + 1 and window * self._lifetime - now <= self._SKEW)
            return fresh and hmac.compare_digest(raw[8:], self._mac(scope, raw[:8]))
        except (ValueError, TypeError, AttributeError):
            return False

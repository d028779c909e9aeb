"""DPoP (RFC 9449) at tessera's edges: read the proof of a request and check it for a tenant."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from adapters import dpop
from adapters.errors import InvalidDPoPProof, OAuthError, UseDPoPNonce
from broker.runtime import Broker, TenantView
from tenants.journal import Claim

MAX_AGE = 300
MAX_SKEW = 60
MAX_PROOF_BYTES = 8_192


@dataclass(frozen=True)
class CheckedProof:
    proof: dpop.DPoPProof
    claim: Claim


def public_url(broker: Broker, request: Request) -> str:
    """The URL the client addressed, as the public base URL names it (the proof's htu): the
    path as sent (percent-encoded, e.g. an admin path holding an audience), not decoded."""
    raw = request.scope.get("raw_path")
    path = (raw.split(b"?")[0].decode("latin-1") if isinstance(raw, bytes) and raw
            else request.url.path)
    return broker.settings.base_url.rstrip("/") + path


def check_proof(
    broker: Broker,
    tenant: TenantView,
    request: Request,
    *,
    access_token: str | None = None,
    expected_jkt: str | None = None,
) -> CheckedProof | None:
    """Verify the request's DPoP proof, if any. Replay is checked later, when the request's
    one-time values are recorded together (``Journal.record``)."""
    value = dpop.single_dpop_header(request.headers.getlist("dpop"))
    if value is None:
        return None
    if len(value) > MAX_PROOF_BYTES:
        raise InvalidDPoPProof("DPoP proof too large")
    proof = dpop.verify_proof(
        value,
        method=request.method,
        url=public_url(broker, request),
        now=broker.clock.now(),
        max_age=MAX_AGE,
        max_skew=MAX_SKEW,
        nonce_required=tenant.settings.dpop_nonce_required,
        nonce_valid=lambda nonce: broker.nonces.is_valid(tenant.id, nonce),
        access_token=access_token,
        expected_jkt=expected_jkt,
    )
    key = dpop.replay_key(f"dpop|{tenant.id}", proof.htu, proof.jti)
    return CheckedProof(proof, Claim(key, proof.iat + MAX_AGE + MAX_SKEW, kind="dpop"))


def nonce_headers(
    broker: Broker, tenant: TenantView, exc: OAuthError | None = None
) -> dict[str, str]:
    """A fresh ``DPoP-Nonce`` when the tenant uses nonces (always with ``use_dpop_nonce``)."""
    if tenant.settings.dpop_nonce_required or isinstance(exc, UseDPoPNonce):
        return {"DPoP-Nonce": broker.nonces.issue(tenant.id)}
    return {}

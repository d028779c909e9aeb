"""Compromised signing keys: what every replica asks the database on every verification.

A compromised key keeps its row, in state ``compromised`` (``tenants.keys.lifecycle``), so the
fact is shared by every replica at once, with no cache in between:

* a JWT (access token, ID token, ID-JAG, logout hint, CIBA hint) that names the key by ``kid``
  is refused by ``KeyService.verification_key``, which reads the row's state each time;
* a SAML assertion is refused when the certificate it verifies with carries a compromised
  public key, wherever that certificate came from (another tenant's imported IdP metadata,
  a partner's): ``without_compromised`` drops such certificates from the trusted set, by the
  RFC 7638 thumbprint of their public key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tenants.hotpath import HotPath
from tenants.models import SigningKey

_K = SigningKey.__table__
COMPROMISED = "compromised"
_IS_COMPROMISED = select(
    select(_K.c.kid).where(_K.c.tenant_id == bindparam("tenant_id"),
                           _K.c.kid == bindparam("kid"), _K.c.state == COMPROMISED)
    .exists().label("compromised"))


async def is_compromised(hot: HotPath | None, sessions: async_sessionmaker[AsyncSession],
                         tenant_id: str, kid: str) -> bool:
    params = {"tenant_id": tenant_id, "kid": kid}
    if hot is not None:
        row = await hot.read_one(_IS_COMPROMISED, params)
        return bool(row is not None and row.compromised)
    async with sessions() as session:
        return bool((await session.execute(_IS_COMPROMISED, params)).scalar())


def thumbprint(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of a public JWK."""
    return JWKRegistry.import_key(dict(public_jwk)).thumbprint()


def certificate_thumbprint(cert: bytes) -> str | None:
    """The thumbprint of a certificate's public key (PEM or DER); None if unreadable."""
    try:
        loaded = (x509.load_pem_x509_certificate(cert) if cert.lstrip().startswith(b"-----")
                  else x509.load_der_x509_certificate(cert))
        public = loaded.public_key()
    except (ValueError, TypeError):
        return None
    if isinstance(public, ec.EllipticCurvePublicKey):
        return ECKey.import_key(public).thumbprint()
    if isinstance(public, rsa.RSAPublicKey):
        return RSAKey.import_key(public).thumbprint()
    if isinstance(public, ed25519.Ed25519PublicKey):
        return OKPKey.import_key(public).thumbprint()
    return None


async def thumbprints(sessions: async_sessionmaker[AsyncSession]) -> frozenset[str]:
    """The thumbprints of every compromised key of the deployment (any tenant)."""
    async with sessions() as session:
        rows = (await session.execute(
            select(_K.c.public_jwk).where(_K.c.state == COMPROMISED))).scalars().all()
    return frozenset(thumbprint(jwk) for jwk in rows)


async def without_compromised(sessions: async_sessionmaker[AsyncSession],
                              certs: Sequence[bytes]) -> tuple[bytes, ...]:
    """``certs`` less those whose public key is a compromised key of this deployment."""
    bad = await thumbprints(sessions)
    if not bad:
        return tuple(certs)
    return tuple(c for c in certs if certificate_thumbprint(bytes(c)) not in bad)


async def listed(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's compromised keys, for its revocation feed: kid, thumbprint and when."""
    rows = (await session.execute(
        select(_K.c.kid, _K.c.public_jwk, _K.c.retire_after)
        .where(_K.c.tenant_id == tenant_id, _K.c.state == COMPROMISED)
        .order_by(_K.c.kid))).all()
    return [{"kid": kid, "jkt": thumbprint(jwk), "at": at} for kid, jwk, at in rows]

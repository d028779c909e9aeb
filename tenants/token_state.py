"""The state of an access token as the database says it is now, read in ONE statement on
the hot path of introspection, the demo resource and every tessera-side check:

  * its ``jti`` or its grant's marker ``grant:{id}`` is in the revocation table;
  * its client's status and expiry (suspended, retired, disabled or expired: inactive);
  * a ``RevocationCutoff`` of its population at or after its ``iat``: its client, its user
    (``sub``), its partner (``sub_id.iss``), or the whole tenant;
  * for a partner's user (``sub_id.iss`` given): a live trust link that accepts that issuer,
    the partner (or peer tenant) active and unexpired, exactly as ``registry.trust.live_peer``;
  * (``kid`` given) the signing key is compromised (``tenants.keys.compromised``), so that
    an access token check reads the database once, not twice;
  * the tenant's directory epoch, so that a caller authenticated on a cached view of the
    tenant and its clients learns from this same read whether that view is still current.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, func, or_, select

from tenants import agents
from tenants.grants import grant_marker
from tenants.hotpath import HotPath
from tenants.keys.compromised import COMPROMISED
from tenants.models import (
    Client,
    DirectoryEpoch,
    Partner,
    RevocationCutoff,
    RevokedToken,
    SigningKey,
    Tenant,
    TrustLink,
)

_T, _C, _R = Tenant.__table__, Client.__table__, RevokedToken.__table__
_S, _E = SigningKey.__table__, DirectoryEpoch.__table__
_K, _L, _P = RevocationCutoff.__table__, TrustLink.__table__, Partner.__table__
_PEER_T = _T.alias("peer_tenant")
_TENANT, _NOW = bindparam("tenant_id"), bindparam("now")
# One read per check of a token: its jti or grant revoked, its client's state, a cutoff of
# its population (client, user, partner issuer, tenant) at or after its iat, and (for a
# partner's user) whether the trust link to that issuer is still live.
_TOKEN_STATE = select(
    select(_R.c.jti).where(_R.c.tenant_id == _TENANT,
                           _R.c.jti.in_([bindparam("jti"), bindparam("grant_jti")]))
    .exists().label("revoked"),
    select(_C.c.status).where(_C.c.tenant_id == _TENANT,
                              _C.c.client_id == bindparam("client_id"))
    .scalar_subquery().label("client_status"),
    select(_C.c.expires_at).where(_C.c.tenant_id == _TENANT,
                                  _C.c.client_id == bindparam("client_id"))
    .scalar_subquery().label("client_expires_at"),
    select(_K.c.kind).where(
        _K.c.tenant_id == _TENANT, _K.c.not_before >= bindparam("iat"),
        or_(and_(_K.c.kind == "client", _K.c.subject == bindparam("client_id")),
            and_(_K.c.kind == "user", _K.c.subject == bindparam("sub")),
            and_(_K.c.kind == "partner", _K.c.subject == bindparam("issuer")),
            and_(_K.c.kind == "tenant", _K.c.subject == _TENANT)))
    .exists().label("cut"),
    select(_L.c.id).select_from(
        _L.outerjoin(_P, _P.c.id == _L.c.partner_id)
        .outerjoin(_PEER_T, _PEER_T.c.id == _L.c.peer_tenant))
    .where(_L.c.tenant_id == _TENANT, _L.c.issuer == bindparam("issuer"),
           _L.c.status == "active", _L.c.accept.is_(True),
           or_(_L.c.expires_at.is_(None), _L.c.expires_at > _NOW),
           or_(_L.c.partner_id.is_(None),
               and_(_P.c.status == "active",
                    or_(_P.c.expires_at.is_(None), _P.c.expires_at > _NOW))),
           or_(_L.c.peer_tenant.is_(None), _PEER_T.c.status == "active"))
    .exists().label("peer_live"),
    select(_S.c.kid).where(_S.c.tenant_id == _TENANT, _S.c.kid == bindparam("kid"),
                           _S.c.state == COMPROMISED)
    .exists().label("key_compromised"),
    func.coalesce(select(_E.c.epoch).where(_E.c.tenant_id == _TENANT).scalar_subquery(), 0)
    .label("epoch"),
)


@dataclass(frozen=True)
class TokenState:
    """What the database says about a token now; ``problem`` is None for a live token."""

    revoked: bool
    client_active: bool
    cut: bool = False
    peer_live: bool = True
    key_compromised: bool = False
    epoch: int = 0  # the tenant's directory epoch now (a cached view of it is current if equal)

    @property
    def problem(self) -> str | None:
        if self.key_compromised:
            return "token was signed with a compromised key"
        if self.revoked:
            return "token was revoked"
        if self.cut:
            return "token was revoked (with every token of its agent, user, partner or tenant)"
        if not self.client_active:
            return "the token's client is suspended, retired, disabled or expired"
        if not self.peer_live:
            return "the trust in the token's issuer was suspended or revoked"
        return None


async def read(
    hot: HotPath, tenant_id: str, jti: str, client_id: str, *, iat: float, sub: str | None,
    issuer: str | None, now: float, kid: str | None = None,
) -> TokenState:
    row = await hot.read_one(_TOKEN_STATE, {
        "tenant_id": tenant_id, "jti": jti, "grant_jti": grant_marker(jti),
        "client_id": client_id, "iat": float(iat), "sub": sub, "issuer": issuer, "now": now,
        "kid": kid})
    assert row is not None
    return TokenState(
        bool(row.revoked), agents.is_live(row.client_status, row.client_expires_at, now),
        bool(row.cut), issuer is None or bool(row.peer_live),
        kid is not None and bool(row.key_compromised), int(row.epoch))

"""Revocation by population: one ``RevocationCutoff`` row revokes every token of an agent
(``client``), a user (``user``), a partner's users (``partner``: tokens carrying
``sub_id.iss`` = the partner's issuer) or the whole tenant (``tenant``) issued up to
``not_before``.

Every tessera-side check of an access token reads the cutoffs in the same statement as the
revoked ``jti`` (``broker.runtime.Broker.token_state``), so a cutoff counts at once on every
replica. Access tokens carry ``iat`` in whole seconds: a token counts as revoked when
``iat <= not_before``, so one minted in the same second just after the cutoff is revoked too
(safe side; its client asks again a second later).

Refresh tokens and browser sessions are stored state: revoking a user or the tenant also ends
their grants (refresh tokens stop working) and login sessions, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select, update

from tenants import audit, grants
from tenants.hotpath import HotPath
from tenants.models import Grant, LoginSession, RevocationCutoff, RevokedToken, User
from tenants.scope import TenantScope

KINDS = ("client", "user", "partner", "tenant")


async def cut(
    scope: TenantScope, kind: str, subject: str, *, now: float, reason: str,
    detail: dict[str, Any] | None = None,
) -> RevocationCutoff:
    """Revoke every token of (``kind``, ``subject``) issued up to ``now``; audited as
    ``tokens.revoked`` with ``by``/``value``/``reason``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if not subject or len(subject) > 512:
        raise ValueError("subject: 1-512 characters")
    row = await scope.get(RevocationCutoff, kind, subject)
    if row is None:
        row = scope.add(RevocationCutoff(kind=kind, subject=subject, not_before=now,
                                         reason=reason, created_at=now))
    else:
        row.not_before, row.reason = max(row.not_before, now), reason
    await scope.session.flush()
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "tokens.revoked", "revoked",
        client_id=subject if kind == "client" else None,
        subject=subject if kind == "user" else None,
        detail={"by": kind, "value": subject, "reason": reason, **(detail or {})})], now)
    return row


async def end_grants(
    scope: TenantScope, *, now: float, reason: str, user_id: str | None = None,
    client_id: str | None = None,
) -> int:
    """Revoke the active grants of a user or client (their refresh tokens stop working, their
    access tokens are revoked through the grant marker); every grant of the tenant when
    neither is named (one audit event then, not one per grant)."""
    where = [Grant.status == "active"]
    if user_id is not None:
        where.append(Grant.user_id == user_id)
    if client_id is not None:
        where.append(Grant.client_id == client_id)
    if user_id is None and client_id is None:
        result = await scope.session.execute(
            update(Grant).where(Grant.tenant_id == scope.tenant_id, *where)
            .values(status="revoked").execution_options(synchronize_session=False))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    rows = (await scope.session.execute(select(Grant).where(*where))).scalars().all()
    for grant in rows:
        await grants.revoke(scope, grant, now=now, reason=reason)
    return len(rows)


async def end_sessions(scope: TenantScope, *, now: float, user_id: str | None = None) -> int:
    """End the live login sessions of a user (of every user when None)."""
    S = LoginSession
    where = [S.tenant_id == scope.tenant_id, S.ended_at.is_(None)]
    if user_id is not None:
        where.append(S.user_id == user_id)
    result = await scope.session.execute(
        update(S).where(*where).values(ended_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_user(scope: TenantScope, user_id: str, *, now: float, reason: str) -> None:
    """Every token, grant and session of the user."""
    ended = await end_sessions(scope, now=now, user_id=user_id)
    revoked = await end_grants(scope, now=now, reason=reason, user_id=user_id)
    await cut(scope, "user", user_id, now=now, reason=reason,
              detail={"sessions_ended": ended, "grants_revoked": revoked})


async def revoke_client(scope: TenantScope, client_id: str, *, now: float, reason: str) -> None:
    """Every token the agent holds: access tokens by cutoff, refresh tokens with their grants.
    The agent itself stays as it is (suspending it is a separate decision)."""
    revoked = await end_grants(scope, now=now, reason=reason, client_id=client_id)
    await cut(scope, "client", client_id, now=now, reason=reason,
              detail={"grants_revoked": revoked})


async def revoke_tenant(scope: TenantScope, *, now: float, reason: str) -> None:
    """Universal logout: every token, grant and login session of the tenant."""
    ended = await end_sessions(scope, now=now)
    revoked = await end_grants(scope, now=now, reason=reason)
    await cut(scope, "tenant", scope.tenant_id, now=now, reason=reason,
              detail={"sessions_ended": ended, "grants_revoked": revoked})


async def listed(scope: TenantScope, now: float) -> tuple[Sequence[RevocationCutoff],
                                                          Sequence[RevokedToken]]:
    """What a revocation feed publishes: every cutoff, and the revoked ``jti``s and grant
    markers of tokens that have not expired yet."""
    cutoffs = (await scope.session.execute(
        select(RevocationCutoff).order_by(RevocationCutoff.kind, RevocationCutoff.subject)
    )).scalars().all()
    tokens = (await scope.session.execute(
        select(RevokedToken).where(RevokedToken.expires_at > now).order_by(RevokedToken.jti)
    )).scalars().all()
    return cutoffs, tokens


_U, _K = User.__table__, RevocationCutoff.__table__
# one Core statement on the hot path's connection (no ORM unit of work)
_SUBJECT_REFUSED = select(
    select(_U.c.id).where(_U.c.tenant_id == bindparam("tenant_id"),
                          _U.c.id == bindparam("user_id"), _U.c.status != "active")
    .exists().label("disabled"),
    select(_K.c.kind).where(
        _K.c.tenant_id == bindparam("tenant_id"), _K.c.not_before >= bindparam("iat"),
        ((_K.c.kind == "user") & (_K.c.subject == bindparam("user_id")))
        | ((_K.c.kind == "tenant") & (_K.c.subject == bindparam("tenant_id"))))
    .exists().label("cut"),
)


async def subject_refused(hot: HotPath, tenant_id: str, user_id: str, iat: float) -> bool:
    """Whether an identity assertion this tenant issued for ``user_id`` at ``iat`` must be
    refused: the user is disabled, or the user or the tenant was revoked since."""
    row = await hot.read_one(_SUBJECT_REFUSED, {"tenant_id": tenant_id, "user_id": user_id,
                                                "iat": float(iat)})
    return bool(row.disabled or row.cut)

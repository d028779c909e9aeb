"""Grants from the authorization code flow and their rotating refresh tokens.

A grant is what a user authorized a client to do. Its refresh tokens rotate on every use
(OAuth 2.1 §4.3.1, RFC 9700 §4.14.2): the used token is kept as ``rotated`` until the grant
ends, and presenting it again is taken as theft: the whole grant is revoked, with every
refresh and access token it brought. Access tokens of a grant carry ``jti`` = ``{grant}.{n}``,
and revoking the grant records ``grant:{grant}`` in the revocation table, which every check
of such a token reads (``grant_marker``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from tenants import audit, revocations
from tenants.models import Grant, RefreshToken
from tenants.pending import handle_of
from tenants.scope import TenantScope


def grant_marker(jti: str) -> str:
    """The revocation row that revokes every token of the grant ``jti`` belongs to."""
    grant_id, dot, _ = jti.partition(".")
    return f"grant:{grant_id}" if dot else jti


def access_jti(grant_id: str) -> str:
    return f"{grant_id}.{secrets.token_urlsafe(9)}"


async def create(
    scope: TenantScope, *, client_id: str, user_id: str, scope_: list[str],
    details: list[dict[str, Any]], audience: list[str], auth: dict[str, Any],
    session_id: str | None, now: float, lifetime: int,
) -> Grant:
    grant = scope.add(Grant(
        id=secrets.token_urlsafe(12).replace(".", "_"), client_id=client_id, user_id=user_id,
        scope=scope_, authorization_details=details, audience=audience, auth=auth,
        session_id=session_id, status="active", created_at=now, expires_at=now + lifetime))
    await scope.session.flush()
    return grant


async def add_refresh_token(
    scope: TenantScope, grant: Grant, *, jkt: str | None, now: float
) -> str:
    value = secrets.token_urlsafe(32)
    scope.add(RefreshToken(handle=handle_of(value), grant_id=grant.id,
                           client_id=grant.client_id, jkt=jkt, status="active",
                           created_at=now, expires_at=grant.expires_at))
    await scope.session.flush()
    return value


@dataclass(frozen=True)
class Presented:
    grant: Grant
    token: RefreshToken


class RefreshReused(Exception):
    """A rotated refresh token came back: its grant has been revoked."""


async def use_refresh_token(
    scope: TenantScope, value: str, *, client_id: str, jkt: str | None, now: float
) -> Presented | None:
    """Take an active refresh token of ``client_id`` (rotating it). None: unknown, expired,
    another client's, bound to another DPoP key than ``jkt``, or its grant is over.
    ``RefreshReused`` after revoking the grant when the token was rotated before."""
    if not value or len(value) > 200:
        return None
    R = RefreshToken
    token = await scope.get(R, handle_of(value))
    if token is None or token.client_id != client_id or token.expires_at <= now:
        return None
    if token.jkt is not None and token.jkt != jkt:
        return None
    grant = await scope.get(Grant, token.grant_id)
    if grant is None or grant.status != "active":
        return None
    taken = await scope.session.execute(
        update(R).where(R.tenant_id == scope.tenant_id, R.handle == token.handle,
                        R.status == "active").values(status="rotated")
        .execution_options(synchronize_session=False))
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        await revoke(scope, grant, now=now, reason="refresh token reused")
        raise RefreshReused(grant.id)
    return Presented(grant, token)


async def held_refresh_token(
    scope: TenantScope, value: str, *, client_id: str, jkt: str | None, now: float
) -> Grant | None:
    """The grant of an active (not rotated) refresh token of ``client_id``, read without
    rotating it: a subject token (RFC 8693) shows the grant, it does not redeem it. None:
    unknown, rotated, expired, another client's, bound to another DPoP key, or its grant is
    over."""
    if not value or len(value) > 200:
        return None
    token = await scope.get(RefreshToken, handle_of(value))
    if (token is None or token.client_id != client_id or token.expires_at <= now
            or token.status != "active" or (token.jkt is not None and token.jkt != jkt)):
        return None
    grant = await scope.get(Grant, token.grant_id)
    if grant is None or grant.status != "active" or grant.expires_at <= now:
        return None
    return grant


async def revoke(scope: TenantScope, grant: Grant, *, now: float, reason: str) -> None:
    """End the grant: its refresh tokens stop working and its access tokens are revoked."""
    if grant.status == "revoked":
        return
    grant.status = "revoked"
    await scope.session.flush()
    await revocations.revoke(
        scope.session, scope.tenant_id, f"grant:{grant.id}", expires_at=grant.expires_at,
        now=now, client_id=grant.client_id, subject=grant.user_id, reason=reason)
    await audit.record(scope.session, scope.tenant_id, [audit.Event(
        "grant.revoked", "revoked", grant.client_id, grant.user_id,
        {"grant": grant.id, "reason": reason})], now)


async def by_refresh_token(scope: TenantScope, value: str) -> Grant | None:
    token = await scope.get(RefreshToken, handle_of(value))
    if token is None:
        return None
    return (await scope.session.execute(
        select(Grant).where(Grant.id == token.grant_id))).scalar_one_or_none()

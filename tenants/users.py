"""Tenant users, linked just in time to the identity an upstream IdP asserted."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, select

from tenants.hotpath import HotPath
from tenants.models import FederatedIdentity, User
from tenants.scope import TenantScope


@dataclass(frozen=True)
class Profile:
    """What the claim mapping made of an upstream identity."""

    subject: str  # the upstream's stable identifier of the user
    email: str | None = None
    name: str | None = None
    groups: tuple[str, ...] = ()
    claims: dict[str, Any] = field(default_factory=dict)


async def link(scope: TenantScope, upstream: str, profile: Profile, now: float) -> User:
    """The user behind (upstream, subject), created at the first login; the profile is
    refreshed from the upstream at every login (the upstream is the source of truth)."""
    linked = await scope.get(FederatedIdentity, upstream, profile.subject)
    user = await scope.get(User, linked.user_id) if linked is not None else None
    if user is None:
        user = scope.add(User(id=secrets.token_urlsafe(16), status="active", created_at=now,
                              groups=[], claims={}))
        scope.add(FederatedIdentity(upstream=upstream, subject=profile.subject,
                                    user_id=user.id, created_at=now))
    user.email, user.name = profile.email, profile.name
    user.groups, user.claims = list(profile.groups), dict(profile.claims)
    user.last_login_at = now
    await scope.session.flush()
    return user


async def set_status(scope: TenantScope, user_id: str, status: str) -> User:
    """``active`` or ``disabled``; the caller revokes what a disabled user holds
    (``tenants.revocation_cutoffs.revoke_user``) and audits."""
    if status not in ("active", "disabled"):
        raise ValueError("user status: active | disabled")
    user = await scope.get(User, user_id)
    if user is None:
        raise LookupError(user_id)
    user.status = status
    await scope.session.flush()
    return user


_U = User.__table__
_BY_ID = select(_U).where(_U.c.tenant_id == bindparam("tenant_id"), _U.c.id == bindparam("id"))


async def read_now(hot: HotPath, tenant_id: str, user_id: str) -> User | None:
    """The user as it is now, read in one statement on the hot path's connection; a detached
    ``User`` for reading (nothing written through it)."""
    if not user_id or len(user_id) > 64:
        return None
    row = await hot.read_one(_BY_ID, {"tenant_id": tenant_id, "id": user_id})
    return None if row is None else User(**{c.name: getattr(row, c.name) for c in _U.c})

"""Administrative roles given inside a tenant: to a user, to every user of an upstream group,
or to an admin client. The roles' meaning lives in ``broker.admin.roles``; this module only
stores who holds which, and answers the roles of a user (direct and by group) or a client."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import or_, select

from adapters.errors import Conflict
from tenants.models import RoleAssignment
from tenants.scope import TenantScope

KINDS = ("user", "group", "client")


async def assign(scope: TenantScope, kind: str, subject: str, role: str, *, now: float,
                 by: str) -> RoleAssignment:
    """The new assignment; ``Conflict`` (409) when the subject holds the role already."""
    if kind not in KINDS:
        raise ValueError(f"kind: {' | '.join(KINDS)}")
    if await scope.get(RoleAssignment, kind, subject, role) is not None:
        raise Conflict(f"{kind} {subject!r} holds {role} already")
    row = scope.add(RoleAssignment(kind=kind, subject=subject, role=role, created_at=now,
                                   created_by=by))
    await scope.session.flush()
    return row


async def remove(scope: TenantScope, kind: str, subject: str, role: str
                 ) -> RoleAssignment | None:
    found = await scope.get(RoleAssignment, kind, subject, role)
    if found is not None:
        await scope.session.delete(found)
        await scope.session.flush()
    return found


async def listing(scope: TenantScope) -> Sequence[RoleAssignment]:
    rows = await scope.session.execute(select(RoleAssignment).order_by(
        RoleAssignment.kind, RoleAssignment.subject, RoleAssignment.role))
    return rows.scalars().all()


async def roles_of(scope: TenantScope, kind: str, subject: str,
                   groups: Iterable[str] = ()) -> frozenset[str]:
    """The roles a user (with their upstream ``groups``) or a client holds now."""
    wanted = [(RoleAssignment.kind == kind) & (RoleAssignment.subject == subject)]
    names = [g for g in groups if isinstance(g, str)]
    if kind == "user" and names:
        wanted.append((RoleAssignment.kind == "group") & RoleAssignment.subject.in_(names))
    rows = await scope.session.execute(select(RoleAssignment.role).where(or_(*wanted)))
    return frozenset(rows.scalars().all())

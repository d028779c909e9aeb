"""Agent lifecycle: a client's owner, purpose, optional expiry (ephemeral agents) and status.

    active --suspend--> suspended --resume--> active
    active | suspended | disabled --retire--> retired   (final)

A suspended, retired or expired agent fails client authentication at the token endpoint and
every token it holds reads as inactive (``broker.runtime.Broker.token_state`` reads the
client's status and expiry on every check). Every change moves the directory epoch on, so
replicas deciding on a cached view of the client decide again on the next request.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from tenants import audit
from tenants.directory import bump_epoch
from tenants.models import Client
from tenants.scope import TenantScope

STATUSES = ("active", "suspended", "retired", "disabled")
_UNSET = object()


class LifecycleError(ValueError):
    """A transition the agent's current state does not allow."""


def is_live(status: str, expires_at: float | None, now: float) -> bool:
    """Whether an agent in this state may authenticate and its tokens count."""
    return status == "active" and (expires_at is None or expires_at > now)


async def _agent(scope: TenantScope, client_id: str) -> Client:
    client = await scope.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    return client


async def _changed(session: AsyncSession, scope: TenantScope, client: Client, action: str,
                   now: float, detail: dict[str, object]) -> Client:
    await session.flush()
    await bump_epoch(session, scope.tenant_id)
    await audit.record(session, scope.tenant_id, [audit.Event(
        action, "revoked" if action in ("agent.suspended", "agent.retired") else "changed",
        client_id=client.client_id, detail=detail)], now)
    return client


# action -> (new status, refusal when the agent is retired: retirement is final)
_TRANSITIONS: dict[str, tuple[str, str | None]] = {
    "agent.suspended": ("suspended", "a retired agent stays retired"),
    "agent.resumed": ("active", "a retired agent cannot be resumed"),
    "agent.retired": ("retired", None),
}


async def _transition(scope: TenantScope, client_id: str, action: str, now: float,
                      reason: str) -> Client:
    client = await _agent(scope, client_id)
    status, refusal = _TRANSITIONS[action]
    if refusal is not None and client.status == "retired":
        raise LifecycleError(refusal)
    previous, client.status = client.status, status
    return await _changed(scope.session, scope, client, action, now,
                          {"from": previous, "reason": reason})


async def suspend(scope: TenantScope, client_id: str, *, now: float, reason: str = "") -> Client:
    return await _transition(scope, client_id, "agent.suspended", now, reason)


async def resume(scope: TenantScope, client_id: str, *, now: float, reason: str = "") -> Client:
    return await _transition(scope, client_id, "agent.resumed", now, reason)


async def suspend_if_active(
    scope: TenantScope, client_id: str, *, now: float, reason: str,
    also: Sequence[audit.Event] = (),
) -> bool:
    """Suspend the agent only if it is active (one conditional UPDATE: of replicas acting at
    once, exactly one does it), writing ``also`` and ``agent.suspended``; False otherwise."""
    changed = await scope.session.execute(
        update(Client).where(Client.tenant_id == scope.tenant_id, Client.client_id == client_id,
                             Client.status == "active")
        .values(status="suspended").execution_options(synchronize_session=False))
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await bump_epoch(scope.session, scope.tenant_id)
    await audit.record(scope.session, scope.tenant_id, [*also, audit.Event(
        "agent.suspended", "revoked", client_id=client_id,
        detail={"from": "active", "reason": reason})], now)
    return True


async def retire(scope: TenantScope, client_id: str, *, now: float, reason: str = "") -> Client:
    return await _transition(scope, client_id, "agent.retired", now, reason)


async def describe(
    scope: TenantScope, client_id: str, *, now: float, owner: object = _UNSET,
    purpose: object = _UNSET, expires_at: object = _UNSET,
) -> Client:
    """Set what is given: ``owner`` and ``purpose`` (str or None), ``expires_at`` (epoch
    seconds in the future, or None for a long-lived agent)."""
    client = await _agent(scope, client_id)
    detail: dict[str, object] = {}
    if owner is not _UNSET:
        if owner is not None and (not isinstance(owner, str) or len(owner) > 320):
            raise LifecycleError("owner: a string of at most 320 characters")
        client.owner = detail["owner"] = owner  # type: ignore[assignment]
    if purpose is not _UNSET:
        if purpose is not None and (not isinstance(purpose, str) or len(purpose) > 500):
            raise LifecycleError("purpose: a string of at most 500 characters")
        client.purpose = detail["purpose"] = purpose  # type: ignore[assignment]
    if expires_at is not _UNSET:
        if expires_at is not None and (
            not isinstance(expires_at, int | float) or isinstance(expires_at, bool)
            or expires_at <= now
        ):
            raise LifecycleError("expires_at: epoch seconds in the future, or null")
        client.expires_at = detail["expires_at"] = (  # type: ignore[assignment]
            None if expires_at is None else float(expires_at))
    return await _changed(scope.session, scope, client, "agent.updated", now, detail)

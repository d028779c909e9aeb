"""TenantScope: the only way to read or write a tenant's rows.

Isolation is backed twice: repositories take a ``TenantScope`` (which stamps ``tenant_id`` on
every row it adds), and a ``do_orm_execute`` listener adds ``tenant_id = :scope`` to every ORM
SELECT/UPDATE/DELETE of a ``TenantOwned`` row issued through a scoped session, so a query that
forgets the filter still cannot see another tenant's rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NewType, TypeVar

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from tenants.models import Tenant, TenantOwned

TenantId = NewType("TenantId", str)
T = TypeVar("T", bound=TenantOwned)

_SCOPE_KEY = "tessera_tenant_id"


@event.listens_for(Session, "do_orm_execute")
def _filter_by_tenant(state: ORMExecuteState) -> None:
    tenant_id = state.session.info.get(_SCOPE_KEY)
    if tenant_id is None or not (state.is_select or state.is_update or state.is_delete):
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
            track_closure_variables=False,
        )
    )


@dataclass(frozen=True)
class TenantScope:
    """A session bound to one tenant. Rows of other tenants cannot be named through it."""

    tenant_id: TenantId
    session: AsyncSession

    def add(self, row: T) -> T:
        row.tenant_id = self.tenant_id
        self.session.add(row)
        return row

    async def get(self, model: type[T], *key: Any) -> T | None:
        result = await self.session.execute(select(model).filter_by(**_pk_filter(model, key)))
        return result.scalar_one_or_none()

    async def tenant(self) -> Tenant | None:
        return await self.session.get(Tenant, self.tenant_id)


def _pk_filter(model: type[TenantOwned], key: tuple[Any, ...]) -> dict[str, Any]:
    columns = [c.key for c in model.__mapper__.primary_key if c.key != "tenant_id"]  # type: ignore[attr-defined]
    if len(columns) != len(key):
        raise TypeError(f"{model.__name__} needs {len(columns)} key values")
    return dict(zip(columns, key, strict=True))


@asynccontextmanager
async def tenant_scope(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str
) -> AsyncIterator[TenantScope]:
    """One unit of work for one tenant: commits on success, rolls back on error."""
    async with sessions() as session, session.begin():
        session.info[_SCOPE_KEY] = tenant_id
        yield TenantScope(TenantId(tenant_id), session)


def scoped(session: AsyncSession, tenant_id: str) -> TenantScope:
    """Bind an open session to a tenant (for callers that manage the transaction)."""
    session.info[_SCOPE_KEY] = tenant_id
    return TenantScope(TenantId(tenant_id), session)

"""The audit chain: appended in order, verifiable, and any edit of a stored event is caught."""

from __future__ import annotations

import asyncio
import itertools

from sqlalchemy import delete, update

from tenants import audit
from tenants.models import AuditEvent
from tests import admin_ops as ops
from tests.conftest import new_tenant


async def _append(broker, tenant, n):
    for i in range(n):
        await broker.journal.record(tenant, granted=[audit.Event("test.event", "granted",
                                                                 detail={"i": i})])


async def test_chain_links_every_event(broker):
    tenant = await new_tenant(broker)
    await _append(broker, tenant, 5)
    events = await ops.export_audit(broker, tenant)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for prev, cur in itertools.pairwise(events):
        assert cur["prev_hash"] == prev["hash"]
    report = await ops.verify_audit(broker, tenant)
    assert report["intact"] and report["events"] == len(events)


async def test_concurrent_appends_keep_one_linear_chain(broker):
    tenant = await new_tenant(broker)
    await asyncio.gather(*[
        broker.journal.record(tenant, granted=[audit.Event("test.concurrent", "granted",
                                                           detail={"i": i})])
        for i in range(40)
    ])
    report = await ops.verify_audit(broker, tenant)
    assert report["intact"], report
    actions = [e["action"] for e in await ops.export_audit(broker, tenant)]
    assert actions.count("test.concurrent") == 40


async def test_edited_event_is_caught(broker):
    tenant = await new_tenant(broker)
    await _append(broker, tenant, 4)
    events = await ops.export_audit(broker, tenant)
    victim = events[2]["seq"]
    async with broker.sessions() as session, session.begin():
        await session.execute(update(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq == victim).values(
            detail={"i": 999}))
    report = await ops.verify_audit(broker, tenant)
    assert not report["intact"] and report["first_broken_seq"] == victim


async def test_deleted_event_is_caught(broker):
    tenant = await new_tenant(broker)
    await _append(broker, tenant, 4)
    events = await ops.export_audit(broker, tenant)
    victim = events[1]["seq"]
    async with broker.sessions() as session, session.begin():
        await session.execute(delete(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq == victim))
    report = await ops.verify_audit(broker, tenant)
    assert not report["intact"] and report["first_broken_seq"] == victim


async def test_truncated_tail_is_caught(broker):
    tenant = await new_tenant(broker)
    await _append(broker, tenant, 3)
    last = (await ops.export_audit(broker, tenant))[-1]["seq"]
    async with broker.sessions() as session, session.begin():
        await session.execute(delete(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.seq == last))
    report = await ops.verify_audit(broker, tenant)
    assert not report["intact"]

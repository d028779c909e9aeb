"""Revocation by token, grant, agent, user, partner and the whole tenant, from the admin API:
inactive at once everywhere, on a second replica too, and in the tenant's audit chain."""

from __future__ import annotations

import pytest

from tests import admin_ops as ops
from tests.broker.runtime_helpers import (
    access_token,
    active,
    admin,
    new_user,
    refresh,
    replica_http,
    session_ended,
    token,
    user_grant,
    user_session,
    user_token,
    whoami,
)
from tests.conftest import new_client, new_tenant
from tests.flows.test_id_jag import domains, exchange, id_token, redeem  # noqa: F401


async def _revoke(http, tenant, by, value=None, status=200):
    r = await admin(http, "POST", f"/tenants/{tenant}/revoke",
                    {"by": by, **({"value": value} if value is not None else {})})
    assert r.status_code == status, r.text
    return r.json()


def _later(*clocks):
    """Move past the current second (a token issued in the cutoff's second counts as
    revoked); gives back a function that restores the clocks."""
    for clock in clocks:
        clock.advance(2)
    return lambda: [clock.advance(-2) for clock in clocks]


async def test_revoke_agent_everywhere(http, broker, clocked_broker):
    replica, replica_clock = clocked_broker
    tenant = await new_tenant(broker)
    agent, other, probe = [await new_client(broker, tenant) for _ in range(3)]
    held, kept = await access_token(http, agent), await access_token(http, other)
    sub = await new_user(broker, tenant)
    grant_id, refresh_token = await user_grant(broker, agent, sub)
    body = await _revoke(http, tenant, "agent", agent.client_id)
    assert body["by"] == "agent" and body["value"] == agent.client_id
    async with replica_http(replica) as second:
        for server in (http, second):
            assert not await active(server, probe, held)
            assert await whoami(server, agent, held) == 401
            assert await active(server, probe, kept)
        assert (await refresh(http, agent, refresh_token)).json()["error"] == "invalid_grant"
        restore = _later(broker.clock, replica_clock)
        try:  # tokens only: the agent itself goes on
            assert await active(second, probe, await access_token(http, agent))
        finally:
            restore()
    events = await ops.export_audit(broker, tenant)
    revoked = [e for e in events if e["action"] == "tokens.revoked"]
    assert revoked[-1]["detail"]["by"] == "client"
    assert revoked[-1]["detail"]["value"] == agent.client_id
    assert any(e["action"] == "grant.revoked" and e["detail"]["grant"] == grant_id
               for e in events)
    await _revoke(http, tenant, "agent", "nobody", status=404)


async def test_disable_user(http, broker, clocked_broker):
    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    agent, probe = await new_client(broker, tenant), await new_client(broker, tenant)
    sub, bystander = await new_user(broker, tenant), await new_user(broker, tenant, "bob")
    held, kept = await user_token(broker, agent, sub), await user_token(broker, agent, bystander)
    _, refresh_token = await user_grant(broker, agent, sub)
    session = await user_session(broker, tenant, sub)
    assert await active(http, probe, held)
    r = await admin(http, "POST", f"/tenants/{tenant}/users/{sub}/disable", {"reason": "left"})
    assert r.status_code == 200 and r.json()["status"] == "disabled", r.text
    async with replica_http(replica) as second:
        for server in (http, second):
            assert not await active(server, probe, held)
            assert await whoami(server, agent, held) == 401
            assert await active(server, probe, kept)
    assert (await refresh(http, agent, refresh_token)).json()["error"] == "invalid_grant"
    assert await session_ended(broker, tenant, session)
    actions = [e["action"] for e in await ops.export_audit(broker, tenant)]
    assert "user.disabled" in actions and "tokens.revoked" in actions
    r = await admin(http, "POST", f"/tenants/{tenant}/users/{sub}/enable")
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert not await active(http, probe, held)  # revoked for good
    r = await admin(http, "POST", f"/tenants/{tenant}/users/nobody/disable")
    assert r.status_code == 404


async def test_revoke_by_token_and_grant(http, broker):
    tenant = await new_tenant(broker)
    agent, probe = await new_client(broker, tenant), await new_client(broker, tenant)
    held, kept = await access_token(http, agent), await access_token(http, agent)
    body = await _revoke(http, tenant, "token", held)
    assert body["jti"]
    assert not await active(http, probe, held) and await active(http, probe, kept)
    sub = await new_user(broker, tenant)
    grant_id, refresh_token = await user_grant(broker, agent, sub)
    r = await refresh(http, agent, refresh_token)
    assert r.status_code == 200, r.text
    from_grant, rotated = r.json()["access_token"], r.json()["refresh_token"]
    assert await active(http, probe, from_grant)
    await _revoke(http, tenant, "grant", grant_id)
    assert not await active(http, probe, from_grant)
    assert (await refresh(http, agent, rotated)).json()["error"] == "invalid_grant"
    await _revoke(http, tenant, "grant", "nope", status=404)
    # a refresh token as the token: its grant ends
    grant2, refresh2 = await user_grant(broker, agent, sub)
    assert (await _revoke(http, tenant, "token", refresh2))["grant"] == grant2
    assert (await refresh(http, agent, refresh2)).json()["error"] == "invalid_grant"
    await _revoke(http, tenant, "token", "a.b.c", status=400)


async def test_universal_logout(http, broker, clocked_broker):
    replica, replica_clock = clocked_broker
    tenant, elsewhere = await new_tenant(broker), await new_tenant(broker)
    a, b, probe = [await new_client(broker, tenant) for _ in range(3)]
    outsider = await new_client(broker, elsewhere)
    held = [await access_token(http, a), await access_token(http, b)]
    kept = await access_token(http, outsider)
    sub = await new_user(broker, tenant)
    session = await user_session(broker, tenant, sub)
    _, refresh_token = await user_grant(broker, a, sub)
    assert (await _revoke(http, tenant, "tenant"))["value"] == tenant
    async with replica_http(replica) as second:
        for server in (http, second):
            for value in held:
                assert not await active(server, probe, value)
            assert await active(server, outsider, kept)
    assert await session_ended(broker, tenant, session)
    assert (await refresh(http, a, refresh_token)).json()["error"] == "invalid_grant"
    restore = _later(broker.clock, replica_clock)
    try:
        assert await active(http, probe, await access_token(http, a))
    finally:
        restore()
    await _revoke(http, tenant, "everything", "x", status=400)


async def test_partner_suspension_and_revocation(http, broker, domains):  # noqa: F811
    d = domains
    r = await exchange(http, broker, d, scope="read", resource="https://api.pricing.example")
    assert r.status_code == 200, r.text
    r = await redeem(http, d, r.json()["access_token"])
    assert r.status_code == 200, r.text
    held = r.json()["access_token"]
    probe = await new_client(broker, d.pricing)
    assert await active(http, probe, held)
    # suspending the trust link: the partner's users' tokens and its ID-JAGs stop at once
    await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "suspended")
    assert not await active(http, probe, held)
    jag = (await exchange(http, broker, d, scope="read")).json()["access_token"]
    r = await redeem(http, d, jag)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "active")
    assert await active(http, probe, held)
    # revoking by partner: every token of its users so far, the link stays
    body = await _revoke(http, d.pricing, "partner", d.acme_issuer)
    assert body["value"] == d.acme_issuer
    assert not await active(http, probe, held)
    await _revoke(http, d.pricing, "partner", "https://unknown.example", status=404)


async def test_disabled_users_id_tokens_are_not_exchanged(http, broker, domains):  # noqa: F811
    d = domains
    sub = await new_user(broker, d.acme)
    subject_token = await id_token(broker, d, subject=sub)
    r = await exchange(http, broker, d, token=subject_token, scope="read")
    assert r.status_code == 200, r.text
    r = await admin(http, "POST", f"/tenants/{d.acme}/users/{sub}/disable")
    assert r.status_code == 200
    r = await exchange(http, broker, d, token=subject_token, scope="read")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert "disabled" in r.json()["error_description"]


@pytest.mark.parametrize("body", [{"by": "agent"}, {"by": 3, "value": "x"}, {}])
async def test_revoke_refuses_bad_requests(http, broker, body):
    tenant = await new_tenant(broker)
    r = await admin(http, "POST", f"/tenants/{tenant}/revoke", body)
    assert r.status_code == 400
    r = await admin(http, "POST", "/tenants/ghost/revoke", {"by": "tenant"})
    assert r.status_code == 404
    assert (await token(http, await new_client(broker, tenant))).status_code == 200

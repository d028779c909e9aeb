"""Introspection authenticates its caller on the replica's cached view of tenant and client
and confirms that view in the token-state read (which returns the tenant's directory epoch):
a change made on another replica counts at the very next introspection there."""

from __future__ import annotations

import pytest

from tests import admin_ops as ops
from tests.broker.runtime_helpers import replica_http
from tests.conftest import ADMIN_TOKEN, new_client, new_tenant

CC = {"grant_type": "client_credentials"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def _token(http, c) -> str:
    r = await http.post(c.token_url, data=CC, auth=c.basic)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def _introspect(http, c, token: str, auth: tuple[str, str] | None = None):
    return await http.post(f"{c.issuer}/introspect", data={"token": token},
                           auth=auth or c.basic)


async def test_a_change_elsewhere_counts_at_the_next_introspection(http, broker, clocked_broker):
    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    observer = await new_client(broker, tenant, name="observer")
    subject = await new_client(broker, tenant, name="subject")
    token = await _token(http, subject)
    async with replica_http(replica) as other:
        r = await _introspect(other, observer, token)
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        assert (tenant, observer.client_id) in replica._directory  # the view was cached

        # the caller disabled on the first replica: refused at once on the other
        await ops.set_client_status(broker, tenant, observer.client_id, "disabled")
        r = await _introspect(other, observer, token)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        await ops.set_client_status(broker, tenant, observer.client_id, "active")
        assert (await _introspect(other, observer, token)).json()["active"] is True

        # its secret rotated without overlap: the old one no longer authenticates
        base = f"/admin/v1/tenants/{tenant}/clients/{observer.client_id}"
        r = await http.post(f"{base}/rotate-secret", headers=ADMIN, json={"overlap_seconds": 0})
        new_secret = r.json()["client_secret"]
        r = await _introspect(other, observer, token)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        r = await _introspect(other, observer, token, (observer.client_id, new_secret))
        assert r.status_code == 200 and r.json()["active"] is True, r.text

        # the tenant disabled: the cached tenant is not served
        await ops.set_tenant_status(broker, tenant, "disabled")
        r = await _introspect(other, observer, token, (observer.client_id, new_secret))
        assert r.status_code == 404, r.text
        await ops.set_tenant_status(broker, tenant, "active")

        # the caller deleted (retired)
        r = await http.delete(base, headers=ADMIN)
        assert r.status_code in (200, 204), r.text
        r = await _introspect(other, observer, token, (observer.client_id, new_secret))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


async def test_inactive_answers_come_from_a_fresh_read(http, broker, clocked_broker):
    """An inactive token gives the cached view no confirmation (no token-state read), so the
    caller is judged again on a fresh read before anything is said."""
    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    observer = await new_client(broker, tenant, name="observer")
    async with replica_http(replica) as other:
        r = await _introspect(other, observer, "not-a-token")
        assert r.status_code == 200 and r.json() == {"active": False}
        assert (tenant, observer.client_id) in replica._directory
        await ops.set_client_status(broker, tenant, observer.client_id, "disabled")
        r = await _introspect(other, observer, "not-a-token")
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text


async def test_a_confirmed_view_costs_one_read(http, broker, clocked_broker, monkeypatch):
    """On a warm replica an active introspection reads the database once (the token state),
    not twice (directory and token state)."""
    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    observer = await new_client(broker, tenant, name="observer")
    token = await _token(http, observer)
    async with replica_http(replica) as other:
        assert (await _introspect(other, observer, token)).json()["active"] is True
        reads: list[object] = []
        original = replica.hot.read_one

        async def counted(stmt, params):
            reads.append(stmt)
            return await original(stmt, params)

        monkeypatch.setattr(replica.hot, "read_one", counted)
        assert (await _introspect(other, observer, token)).json()["active"] is True
        assert len(reads) == 1
        await ops.set_client_status(broker, tenant, observer.client_id, "disabled")
        reads.clear()
        assert (await _introspect(other, observer, token)).status_code == 401
        assert len(reads) >= 2  # the stale view was read again, fresh


@pytest.mark.parametrize("body", [b"token=%zz", b"\xff", b"token"])
async def test_refused_body_is_refused_once(http, broker, body):
    """A body refused before any view was read is refused and audited once (not twice)."""
    tenant = await new_tenant(broker)
    observer = await new_client(broker, tenant, name="observer")
    before = await ops.verify_audit(broker, tenant)
    r = await http.post(f"{observer.issuer}/introspect", content=body, auth=observer.basic,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    after = await ops.verify_audit(broker, tenant)
    assert after["events"] == before["events"] + 1, (before, after)


async def test_private_key_jwt_caller_is_decided_once(http, broker, clocked_broker):
    """A client assertion's jti is spent when the journal records it (which also confirms the
    cached view): an inactive token is then answered at once, not decided again (which would
    present the same assertion twice and refuse it as replayed)."""
    import time

    from joserfc import jwt
    from joserfc.jwk import ECKey

    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    caller = await new_client(broker, tenant, auth_method="private_key_jwt",
                              jwks={"keys": [key.as_dict(private=False)]})
    subject = await new_client(broker, tenant, name="subject")
    token = await _token(http, subject)

    def form(value: str) -> dict[str, str]:
        now = int(time.time())
        assertion = jwt.encode({"alg": "ES256", "kid": "k1"}, {
            "iss": caller.client_id, "sub": caller.client_id, "aud": caller.issuer,
            "iat": now, "exp": now + 60, "jti": f"a-{time.time_ns()}"}, key)
        return {"token": value, "client_id": caller.client_id, "client_assertion": assertion,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}

    url = f"{caller.issuer}/introspect"
    async with replica_http(replica) as other:
        for value, active in ((token, True), ("not-a-token", False), (token, True)):
            r = await other.post(url, data=form(value))
            assert r.status_code == 200 and r.json()["active"] is active, r.text
        r = await http.post(f"{subject.issuer}/revoke", data={"token": token}, auth=subject.basic)
        assert r.status_code == 200, r.text
        r = await other.post(url, data=form(token))
        assert r.status_code == 200 and r.json() == {"active": False}, r.text
        # a change elsewhere after the view was cached: the journal finds the view stale
        # before the jti is spent, and the request is decided again on a fresh read
        await ops.set_client_status(broker, tenant, caller.client_id, "disabled")
        r = await other.post(url, data=form(token))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
        await ops.set_client_status(broker, tenant, caller.client_id, "active")
        r = await other.post(url, data=form("not-a-token"))
        assert r.status_code == 200 and r.json() == {"active": False}, r.text

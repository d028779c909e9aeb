"""Anomaly response (broker.anomaly): per-agent rate rules suspend the agent, revoke its tokens,
write one ``anomaly.detected`` audit event and fire the tenant webhook ``agent.suspended``."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.errors import InvalidRequest
from broker import anomaly, webhooks
from broker.app import create_app
from broker.runtime import Broker
from tenants.models import AuditEvent, Client, RevocationCutoff, Tenant
from tenants.settings import MAX_RULES, AnomalyRule
from tests.conftest import ADMIN_TOKEN, BASE_URL, TestClient, new_client, new_tenant

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CC = {"grant_type": "client_credentials"}


# -- fixtures ------------------------------------------------------------------------------

@dataclasses.dataclass
class Receiver:
    url: str
    received: list[tuple[dict[str, str], bytes]]
    arrived: threading.Event

    async def wait(self) -> None:
        """Until a webhook arrived (at most 5 s)."""
        assert await asyncio.to_thread(self.arrived.wait, 5.0), "no webhook arrived"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A tiny webhook receiver on 127.0.0.1 (a thread), answering 204."""
    received: list[tuple[dict[str, str], bytes]] = []
    arrived = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            arrived.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook", received, arrived)
    server.shutdown()
    server.server_close()


@dataclasses.dataclass
class Replica:
    broker: Broker
    http: httpx.AsyncClient


@pytest.fixture
async def replica(broker: Broker) -> AsyncIterator[Replica]:
    """A replica that may deliver webhooks to http://127.0.0.1 (same database and clock)."""
    other = Broker.build(broker.settings.replace(allow_http_loopback=True),
                         clock=broker.clock)
    app = create_app(other, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        yield Replica(other, http)
    await other.close()


async def _put_rules(http: httpx.AsyncClient, tenant: str, rules: Any) -> httpx.Response:
    return await http.put(f"/admin/v1/tenants/{tenant}/anomaly-rules", headers=ADMIN,
                          json={"rules": rules})


async def _token(http: httpx.AsyncClient, client: TestClient) -> httpx.Response:
    return await http.post(client.token_url, data=CC, auth=client.basic)


async def _status(broker: Broker, tenant: str, client_id: str) -> str:
    async with broker.sessions() as session:
        return (await session.execute(select(Client.status).where(
            Client.tenant_id == tenant, Client.client_id == client_id))).scalar_one()


async def _events(broker: Broker, tenant: str, action: str) -> list[AuditEvent]:
    async with broker.sessions() as session:
        return list((await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant, AuditEvent.action == action)
            .order_by(AuditEvent.seq))).scalars().all())


async def _cutoff(broker: Broker, tenant: str, client_id: str) -> RevocationCutoff | None:
    async with broker.sessions() as session:
        return (await session.execute(select(RevocationCutoff).where(
            RevocationCutoff.tenant_id == tenant, RevocationCutoff.kind == "client",
            RevocationCutoff.subject == client_id))).scalar_one_or_none()


async def _introspect(http: httpx.AsyncClient, observer: TestClient, token: str) -> Any:
    r = await http.post(f"{observer.issuer}/introspect", data={"token": token},
                        auth=observer.basic)
    assert r.status_code == 200, r.text
    return r.json()


# -- token requests ------------------------------------------------------------------------

async def test_token_request_rule_suspends_revokes_audits_and_notifies(
    broker: Broker, replica: Replica, receiver: Receiver
) -> None:
    b, http = replica.broker, replica.http
    tenant = await new_tenant(broker)
    r = await http.put(f"/admin/v1/tenants/{tenant}/webhook", headers=ADMIN,
                       json={"url": receiver.url})  # the replica allows http to loopback
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]  # shown this once
    rule = {"name": "burst", "metric": "token_requests", "limit": 5, "window": 60}
    r = await _put_rules(http, tenant, [rule])
    assert r.status_code == 200, r.text
    assert r.json()["rules"] == [{**rule, "action": "suspend"}]
    agent = await new_client(b, tenant)
    observer = await new_client(b, tenant)

    tokens = []
    for _ in range(5):
        r = await _token(http, agent)
        assert r.status_code == 200, r.text
        tokens.append(r.json()["access_token"])
    assert await anomaly.evaluate(b) == []  # at the limit: nothing happens
    assert await _status(b, tenant, agent.client_id) == "active"
    assert (await _introspect(http, observer, tokens[0]))["active"] is True

    r = await _token(http, agent)  # the 6th goes over the limit (it is still answered)
    assert r.status_code == 200
    done = await anomaly.evaluate(b)
    assert [(s.tenant_id, s.client_id, s.rule, s.metric, s.window) for s in done] == [
        (tenant, agent.client_id, "burst", "token_requests", 60)]
    assert done[0].count >= 6

    r = await _token(http, agent)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert (await _introspect(http, observer, tokens[0])) == {"active": False}
    assert await _status(b, tenant, agent.client_id) == "suspended"
    cutoff = await _cutoff(b, tenant, agent.client_id)
    assert cutoff is not None and cutoff.not_before >= b.clock.now() - 5
    (event,) = await _events(b, tenant, "anomaly.detected")
    assert event.client_id == agent.client_id
    assert {k: event.detail[k] for k in ("rule", "metric", "limit", "window")} == {
        "rule": "burst", "metric": "token_requests", "limit": 5, "window": 60}
    assert event.detail["count"] >= 6

    await receiver.wait()
    headers, body = receiver.received[0]
    assert webhooks.verify(secret, headers["tessera-signature"], body, now=b.clock.now())
    assert not webhooks.verify(secret, headers["tessera-signature"], body + b" ",
                               now=b.clock.now())
    payload = json.loads(body)
    assert payload["type"] == "agent.suspended" and payload["tenant"] == tenant
    assert payload["data"]["client_id"] == agent.client_id
    assert payload["data"]["rule"] == "burst"

    # idempotent: a suspended agent is not suspended again
    trip = anomaly.Trip(tenant, agent.client_id, AnomalyRule(**rule), 99)
    assert await anomaly.suspend(b, trip) is None
    assert await anomaly.evaluate(b) == []
    assert len(await _events(b, tenant, "anomaly.detected")) == 1
    assert len(receiver.received) == 1
    # the other client of the tenant is untouched
    assert (await _token(http, observer)).status_code == 200


async def test_token_requests_are_counted_across_replicas(
    broker: Broker, http: httpx.AsyncClient, replica: Replica
) -> None:
    """Neither replica alone sees more than the limit: the audit log does."""
    tenant = await new_tenant(broker)
    await _put_rules(http, tenant, [{"name": "r", "metric": "token_requests", "limit": 5,
                                     "window": 600}])
    agent = await new_client(broker, tenant)
    for client_http in (http, replica.http, http, replica.http, http, replica.http):
        assert (await _token(client_http, agent)).status_code == 200
    local = anomaly.counters(replica.broker)
    assert not [t for t in local.trips if t.tenant_id == tenant]
    done = await anomaly.evaluate(replica.broker)
    assert [(s.client_id, s.count) for s in done] == [(agent.client_id, 6)]
    assert (await _token(http, agent)).json()["error"] == "invalid_client"


async def test_refusals_before_client_authentication_do_not_count(
    broker: Broker, replica: Replica
) -> None:
    """Someone else guessing an agent's secret must not get the agent suspended."""
    tenant = await new_tenant(broker)
    await _put_rules(replica.http, tenant, [{"name": "r", "metric": "token_requests",
                                             "limit": 2, "window": 600}])
    agent = await new_client(broker, tenant)
    for _ in range(5):
        r = await replica.http.post(agent.token_url, data=CC, auth=(agent.client_id, "wrong"))
        assert r.status_code == 401
    assert await anomaly.evaluate(replica.broker) == []
    assert await _status(broker, tenant, agent.client_id) == "active"


# -- resource reads ------------------------------------------------------------------------

async def test_resource_read_rule(broker: Broker, replica: Replica, receiver: Receiver) -> None:
    b, http = replica.broker, replica.http
    tenant = await new_tenant(b, webhook_url=receiver.url)
    await _put_rules(http, tenant, [{"name": "reads", "metric": "resource_reads", "limit": 3,
                                     "window": 3600}])
    agent = await new_client(b, tenant)
    token = (await _token(http, agent)).json()["access_token"]
    whoami = {"url": f"{agent.issuer}/demo/whoami",
              "headers": {"Authorization": f"Bearer {token}"}}
    for _ in range(3):
        assert (await http.get(**whoami)).status_code == 200
    assert await anomaly.evaluate(b) == []
    assert (await http.get(**whoami)).status_code == 200
    (done,) = await anomaly.evaluate(b)
    assert (done.metric, done.count, done.rule) == ("resource_reads", 4, "reads")
    r = await http.get(**whoami)
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert await _status(b, tenant, agent.client_id) == "suspended"
    assert await _cutoff(b, tenant, agent.client_id) is not None
    (event,) = await _events(b, tenant, "anomaly.detected")
    assert event.detail["metric"] == "resource_reads" and event.detail["count"] == 4
    await receiver.wait()
    assert json.loads(receiver.received[0][1])["type"] == "agent.suspended"


# -- rules ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("rules", "fragment"), [
    ([{"name": "x", "metric": "logins", "limit": 5, "window": 60}], "metric"),
    ([{"name": "x", "metric": "token_requests", "limit": 0, "window": 60}], "limit"),
    ([{"name": "x", "metric": "token_requests", "limit": -1, "window": 60}], "limit"),
    ([{"name": "x", "metric": "token_requests", "limit": True, "window": 60}], "limit"),
    ([{"name": "x", "metric": "token_requests", "limit": 5, "window": 86_400}], "window"),
    ([{"name": "x", "metric": "token_requests", "limit": 5, "window": 0}], "window"),
    ([{"name": "x", "metric": "token_requests", "limit": 5, "window": 60,
       "action": "delete"}], "action"),
    ([{"name": "x", "metric": "token_requests", "limit": 5, "window": 60}] * 2, "duplicate"),
    ([{"name": "bad name", "metric": "token_requests", "limit": 5, "window": 60}], "name"),
    ([{"name": "x", "metric": "token_requests", "limit": 5, "window": 60, "extra": 1}],
     "unknown"),
    ({"name": "x"}, "list"),
    (["x"], "object"),
])
async def test_rule_validation_refusals(http: httpx.AsyncClient, tenant: str, rules: Any,
                                        fragment: str) -> None:
    r = await _put_rules(http, tenant, rules)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert fragment in r.json()["error_description"]
    r = await http.get(f"/admin/v1/tenants/{tenant}/anomaly-rules", headers=ADMIN)
    assert r.status_code == 200 and r.json()["rules"] == []


async def test_rules_admin_api(http: httpx.AsyncClient, broker: Broker, tenant: str) -> None:
    rules = [{"name": "a", "metric": "token_requests", "limit": 10, "window": 60,
              "action": "suspend"},
             {"name": "b", "metric": "resource_reads", "limit": 100, "window": 3600,
              "action": "suspend"}]
    r = await _put_rules(http, tenant, rules)
    assert r.status_code == 200 and r.json() == {"tenant": tenant, "rules": rules}
    r = await http.get(f"/admin/v1/tenants/{tenant}/anomaly-rules", headers=ADMIN)
    assert r.json()["rules"] == rules
    stored = (await broker.tenant(tenant)).settings.anomaly_rules
    assert [r.model_dump() for r in stored] == rules
    assert len(await _events(broker, tenant, "anomaly.rules_set")) == 1
    assert (await _put_rules(http, tenant, [])).json()["rules"] == []
    r = await http.put(f"/admin/v1/tenants/{tenant}/anomaly-rules", json={"rules": []})
    assert r.status_code == 401
    r = await _put_rules(http, "no-such-tenant", [])
    assert r.status_code == 404
    r = await http.put(f"/admin/v1/tenants/{tenant}/anomaly-rules", headers=ADMIN, json={})
    assert r.status_code == 400


def test_cli_sets_rules(tmp_path: Any) -> None:
    from broker import cli

    rules_file = tmp_path / "rules.json"
    rules_file.write_text("[]")
    args = cli.parser().parse_args(["anomaly-rules", "set", "--tenant", "t", "--rules-file",
                                    str(rules_file)])
    assert args.func.__name__ == "cmd_anomaly_rules" and args.rules_file == str(rules_file)
    args = cli.parser().parse_args(["anomaly-rules", "show", "--tenant", "t", "--json"])
    assert args.action == "show"


# -- the hot path --------------------------------------------------------------------------

async def test_hot_path_counter_is_constant_work_and_memory(broker: Broker) -> None:
    """No timing: ``count`` is synchronous (it cannot wait on I/O), keeps one integer per
    (tenant, client, rule, window) however many requests arrive, and does nothing for a
    tenant without rules."""
    assert not inspect.iscoroutinefunction(anomaly.count)
    assert not inspect.iscoroutinefunction(anomaly.Counters.hit)
    with_rules = await new_tenant(broker, anomaly_rules=[
        {"name": "big", "metric": "resource_reads", "limit": 1_000_000, "window": 3600},
        {"name": "tok", "metric": "token_requests", "limit": 1_000_000, "window": 3600}])
    without = await new_tenant(broker)
    view, bare = await broker.tenant(with_rules), await broker.tenant(without)
    state = anomaly.counters(broker)
    before = len(state.counts)
    for _ in range(20_000):
        anomaly.count(broker, view, "agent-1", anomaly.RESOURCE_READS)
        anomaly.count(broker, bare, "agent-1", anomaly.RESOURCE_READS)
    mine = {k: v for k, v in state.counts.items() if k[0] == with_rules}
    assert len(mine) in (1, 2)  # one window, or two if a window boundary passed meanwhile
    assert sum(mine.values()) == 20_000
    assert not [k for k in state.counts if k[0] == without]
    assert len(state.counts) - before == len(mine)
    assert without not in state.seen


async def test_malformed_stored_rules_are_ignored_on_the_hot_path(broker: Broker) -> None:
    with pytest.raises(InvalidRequest):  # refused when a tenant is created with them ...
        await new_tenant(broker, anomaly_rules=[{"metric": "resource_reads"}])
    tenant = await new_tenant(broker)  # ... but a row edited by hand must not break requests
    async with broker.sessions() as session, session.begin():
        row = await session.get(Tenant, tenant)
        assert row is not None
        row.settings = {**row.settings, "anomaly_rules": [{"metric": "resource_reads"}]}
    view = await broker.tenant(tenant)
    assert view.settings.anomaly_rules == ()  # dropped when the row is read (and logged)
    anomaly.count(broker, view, "agent", anomaly.RESOURCE_READS)  # does not raise
    assert await anomaly.evaluate(broker) == []


def test_check_rules_normalises() -> None:
    rules = anomaly.check_rules([{"name": "n", "metric": "resource_reads", "limit": 1,
                                  "window": 1}])
    assert [r.model_dump() for r in rules] == [
        {"name": "n", "metric": "resource_reads", "limit": 1, "window": 1,
         "action": "suspend"}]
    with pytest.raises(anomaly.RuleError):
        anomaly.check_rules([{}] * (MAX_RULES + 1))

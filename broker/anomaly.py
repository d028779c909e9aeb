"""Anomaly response: per-agent rate rules that suspend the agent when it goes over them.

Rules are tenant configuration (``TenantSettings.anomaly_rules``, set with
``PUT /admin/v1/tenants/{tenant}/anomaly-rules`` or ``tessera anomaly-rules set``)::

    [{"name": "burst", "metric": "token_requests", "limit": 100, "window": 60,
      "action": "suspend"}]

``metric``: ``token_requests`` (every token request of an authenticated client, granted or
refused) or ``resource_reads`` (every access token tessera's own resources accepted: the demo
resource, userinfo). A client whose count in one window goes over ``limit`` is suspended (its
status becomes ``suspended``, the directory epoch moves on, so it gets ``invalid_client`` on its
next request on every replica), every token it holds is revoked (a ``client`` revocation
cutoff, and its grants), one ``anomaly.detected`` audit event names the rule, metric, count
and window, and the tenant webhook gets ``agent.suspended``. A client that is not active any
more is left alone: the response happens once.

How counting works, and what it costs:

* Hot path (``count``): synchronous, no I/O, nothing when the tenant has no rules; otherwise
  one dict increment per rule of that metric (at most 16) in fixed windows aligned
  to the epoch (``int(now) // window``). The request that takes a count over its limit queues
  the trip and wakes the evaluator: on one replica, detection takes one database transaction.
* Evaluator (``evaluate``, run by ``run_forever`` from ``Broker.start_background`` every
  ``INTERVAL`` seconds or as soon as a trip is queued) acts on queued trips, and, because each
  replica only counts its own requests, also counts ``token_requests`` across replicas from
  the audit log: every token request of an authenticated client already writes one audit
  event with its ``client_id`` (``token.issued`` / ``token.refused`` / ...), so one grouped
  COUNT per rule over the window's events (a primary-key range from the chain head down)
  finds agents over the limit on any mix of replicas, within ``INTERVAL`` seconds. Only
  tenants this replica counted rule traffic for in the last ``MAX_WINDOW`` are checked; the
  cost is a read of the window's audit events per rule per replica per tick (no hot-path
  cost at all).
* Trade-off: ``resource_reads`` are not audited, so they are counted per replica only: with N
  replicas behind a balancer an agent can make up to about N x limit reads in a window
  before one replica trips. Exact cross-replica read counts need a shared counter table
  (one UPSERT per (tenant, client, metric, window) per replica per tick); it is left out
  until a migration adds it. Fixed windows also let a burst straddling a boundary reach up
  to 2 x limit; the audit-log check is a sliding window and catches that for token requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select

from adapters.errors import NotFound
from broker import webhooks
from broker.runtime import Broker, ClientView, TenantView
from tenants import agents, audit, revocation_cutoffs
from tenants.hotpath import HotPath
from tenants.models import AuditEvent
from tenants.scope import scoped, tenant_scope
from tenants.settings import MAX_RULE_WINDOW, AnomalyRule, TenantSettings

log = logging.getLogger("tessera.anomaly")

TOKEN_REQUESTS = "token_requests"
RESOURCE_READS = "resource_reads"
METRICS = (TOKEN_REQUESTS, RESOURCE_READS)
ACTIONS = ("suspend",)
MAX_WINDOW = MAX_RULE_WINDOW  # seconds; bounds the counters' memory and the audit range
MAX_COUNTERS = 100_000  # live (tenant, client, rule, window) entries per process
INTERVAL = 5.0  # seconds between cross-replica checks
# audit actions written once per token request of an authenticated client
TOKEN_ACTIONS = ("token.issued", "token.refused", "id_jag.issued", "saml_assertion.issued")


class RuleError(ValueError):
    """Anomaly rules that cannot be accepted (the message names the field and why)."""


def check_rules(raw: Any) -> tuple[AnomalyRule, ...]:
    """Validated, normalised rules (``action`` defaults to ``suspend``): the same model as the
    tenant settings and the admin API (``tenants.settings.AnomalyRule``)."""
    try:
        return TenantSettings.model_validate({"anomaly_rules": raw}).anomaly_rules
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "anomaly_rules"
        raise RuleError(f"rules.{where}: {first['msg']}" if where != "anomaly_rules"
                        else f"anomaly rules: {first['msg']}") from None


# -- hot path ------------------------------------------------------------------------------

Key = tuple[str, str, str, int]  # tenant, client, rule name, window start


@dataclass(frozen=True)
class Trip:
    tenant_id: str
    client_id: str
    rule: AnomalyRule
    count: int


@dataclass
class Counters:
    """One process's counts (one per ``Broker``: each replica counts its own requests)."""

    counts: dict[Key, int] = field(default_factory=dict)
    windows: dict[Key, int] = field(default_factory=dict)  # key -> window length
    trips: list[Trip] = field(default_factory=list)
    seen: dict[str, float] = field(default_factory=dict)  # tenant -> last counted at
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def hit(self, tenant_id: str, client_id: str, metric: str,
            rules: tuple[AnomalyRule, ...], now: float) -> None:
        counted = False
        for rule in rules:
            if rule.metric != metric:
                continue
            window, limit = rule.window, rule.limit
            key = (tenant_id, client_id, rule.name, int(now) // window * window)
            n = self.counts.get(key, 0) + 1
            if n == 1:
                if len(self.counts) >= MAX_COUNTERS:
                    self.counts.clear()  # bounded memory; a flood only delays detection
                    self.windows.clear()
                self.windows[key] = window
            self.counts[key] = n
            counted = True
            if n == limit + 1:
                self.trips.append(Trip(tenant_id, client_id, rule, n))
                self.wake.set()
        if counted:
            self.seen[tenant_id] = now

    def prune(self, now: float) -> None:
        for key in [k for k, w in self.windows.items() if k[3] + w <= now]:
            del self.windows[key]
            self.counts.pop(key, None)
        for tenant_id in [t for t, at in self.seen.items() if at + MAX_WINDOW < now]:
            del self.seen[tenant_id]


_COUNTERS: weakref.WeakKeyDictionary[HotPath, Counters] = weakref.WeakKeyDictionary()


def counters(broker: Broker) -> Counters:
    found = _COUNTERS.get(broker.hot)
    if found is None:
        found = _COUNTERS[broker.hot] = Counters()
    return found


def count(broker: Broker, tenant: TenantView, client_id: str | None, metric: str) -> None:
    """Count one request of ``metric`` by an authenticated client: O(number of the tenant's
    rules), no I/O. The rules are typed and in range (``TenantSettings`` drops a malformed
    stored rule set when it loads the row)."""
    rules = tenant.settings.anomaly_rules
    if not rules or not client_id:
        return
    counters(broker).hit(tenant.id, client_id, metric, rules, broker.clock.now())


def count_token_request(broker: Broker, tenant: TenantView, client: ClientView, *,
                        first_pass: bool) -> None:
    """``count`` for the token endpoint, which may decide a request twice (cached view,
    then fresh): only the first pass counts."""
    if first_pass:
        count(broker, tenant, client.client_id, TOKEN_REQUESTS)


# -- evaluator -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Suspension:
    tenant_id: str
    client_id: str
    rule: str
    metric: str
    count: int
    window: int


async def evaluate(broker: Broker) -> list[Suspension]:
    """One pass: act on the trips queued by the hot path, then count token requests across
    replicas from the audit log. Returns the agents suspended by this pass."""
    state = counters(broker)
    now = broker.clock.now()
    state.wake.clear()
    trips, state.trips = state.trips, []
    state.prune(now)
    for tenant_id in list(state.seen):
        try:
            trips.extend(await _audit_trips(broker, tenant_id, now))
        except Exception:  # one tenant's bad rules must not stop the others
            log.exception("anomaly check of tenant %s failed", tenant_id)
    done: list[Suspension] = []
    handled: set[tuple[str, str]] = set()
    for trip in trips:
        if (trip.tenant_id, trip.client_id) in handled:
            continue
        handled.add((trip.tenant_id, trip.client_id))
        suspension = await suspend(broker, trip)
        if suspension is not None:
            done.append(suspension)
    return done


async def _audit_trips(broker: Broker, tenant_id: str, now: float) -> list[Trip]:
    tenant = await broker.tenant(tenant_id)
    rules = tuple(r for r in tenant.settings.anomaly_rules if r.metric == TOKEN_REQUESTS)
    if not rules:
        return []
    E = AuditEvent
    trips = []
    async with broker.sessions() as session:
        for rule in rules:
            since = now - rule.window
            # the last event before the window, found walking the primary key down from the
            # head (there is no index on ``at``; seq grows with time): the count below then
            # reads only the window's events
            floor = (select(E.seq).where(E.tenant_id == tenant_id, E.at <= since)
                     .order_by(E.seq.desc()).limit(1).scalar_subquery())
            rows = (await session.execute(
                select(E.client_id, func.count())
                .where(E.tenant_id == tenant_id, E.seq > func.coalesce(floor, 0),
                       E.at > since, E.client_id.is_not(None), E.action.in_(TOKEN_ACTIONS))
                .group_by(E.client_id).having(func.count() > rule.limit)
            )).all()
            trips.extend(Trip(tenant_id, client_id, rule, int(n)) for client_id, n in rows)
    return trips


async def suspend(broker: Broker, trip: Trip) -> Suspension | None:
    """Suspend the agent, revoke its tokens, audit and notify; None (and nothing done) when
    the agent is not active any more (suspended before, by this or another replica)."""
    now = broker.clock.now()
    rule = trip.rule
    detail = {"rule": rule.name, "metric": rule.metric, "count": trip.count,
              "limit": rule.limit, "window": rule.window, "action": rule.action}
    async with tenant_scope(broker.sessions, trip.tenant_id) as scope:
        if not await agents.suspend_if_active(
                scope, trip.client_id, now=now, reason=f"anomaly rule {rule.name}",
                also=[audit.Event("anomaly.detected", "changed", client_id=trip.client_id,
                                  detail=detail)]):
            return None
        await revocation_cutoffs.revoke_client(
            scoped(scope.session, trip.tenant_id), trip.client_id, now=now,
            reason=f"anomaly rule {rule.name}")
    broker.forget_directory(trip.tenant_id)
    log.warning("anomaly rule %s: suspended client %s of tenant %s (%s %s in %ss)",
                rule.name, trip.client_id, trip.tenant_id, trip.count, rule.metric, rule.window)
    with contextlib.suppress(NotFound):  # the tenant may have been disabled meanwhile
        tenant = await broker.tenant(trip.tenant_id)
        webhooks.notify(broker, tenant, "agent.suspended",
                        {"client_id": trip.client_id, "reason": "anomaly", **detail})
    return Suspension(trip.tenant_id, trip.client_id, rule.name, rule.metric, trip.count,
                      rule.window)


async def run_forever(broker: Broker) -> None:
    """The background evaluator: every ``INTERVAL`` seconds, or at once when a trip waits."""
    state = counters(broker)
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.wake.wait(), INTERVAL)
        try:
            await evaluate(broker)
        except Exception:  # the evaluator must survive a bad pass
            log.exception("anomaly evaluation failed")

"""In-process benchmark of ``broker.policy.decide`` (performance spec, workload W4).

Builds one tenant with 10,000 managed connections (1,000 clients x 10 audiences, ~20 scopes each
with mixed ``grant``/``approve``/``deny`` rules, some connections ``default_rule=grant``), then
times 200,000 decisions for random (client, audience, scope subset, resource, ceiling, lifetime)
one call at a time with ``time.perf_counter_ns``. About a fifth of the requests are refused
(unknown audience, unserved resource, approval needed, nothing grantable, malformed scope): the
refusal is caught and timed like a decision. Target: p99 < 1 ms. It starts nothing else; run
it from the checkout with tessera installed (``pip install -e '.[test]'``)::

    python scripts/bench_policy.py
    python scripts/bench_policy.py --json
    python scripts/bench_policy.py --decisions 200000 --clients 1000 --audiences 10 --seed 7

Requests are generated before the clock starts; 10,000 warm-up decisions are not counted. The
garbage collector stays on (pauses are part of the latency). ``decisions_per_s`` is the number
of measured calls over the wall time of the measured loop, timer overhead included.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from array import array
from collections import Counter
from typing import Any

from adapters.errors import OAuthError
from broker.policy import ConnectionIndex, ManagedConnection, Rule, decide

TENANT = "bench"
Request = tuple[str, str, list[str] | None, str | None, frozenset[str] | None, int | None]


def build(
    rng: random.Random, clients: int, audiences: int, scopes_per_connection: int
) -> tuple[ConnectionIndex, list[str], list[str], list[str], float]:
    """The tenant's connections, its client ids, audiences and scope vocabulary; build seconds."""
    client_ids = [f"agent-{i:05d}" for i in range(clients)]
    auds = [f"https://as{j}.partner{j % 3}.example" for j in range(audiences)]
    vocabulary = [f"api{k // 10}:scope{k % 10}" for k in range(200)]
    weights: list[Rule] = ["grant"] * 6 + ["approve"] * 1 + ["deny"] * 3
    connections: list[ManagedConnection] = []
    for client_id in client_ids:
        for aud in auds:
            scopes = rng.sample(vocabulary, scopes_per_connection)
            connections.append(
                ManagedConnection(
                    tenant_id=TENANT,
                    client_id=client_id,
                    audience=aud,
                    rules={s: rng.choice(weights) for s in scopes},
                    remote_client_id=f"{client_id}@{aud}",
                    resources=frozenset({f"{aud}/api", f"{aud}/files"}),
                    max_lifetime=rng.choice((60, 120, 300, 600)),
                    default_rule="grant" if rng.random() < 0.05 else "deny",
                )
            )
    start = time.perf_counter()
    index = ConnectionIndex(connections)
    return index, client_ids, auds, vocabulary, time.perf_counter() - start


def requests(
    rng: random.Random,
    n: int,
    index: ConnectionIndex,
    client_ids: list[str],
    auds: list[str],
    vocabulary: list[str],
) -> list[Request]:
    out: list[Request] = []
    for _ in range(n):
        client_id = rng.choice(client_ids)
        aud = rng.choice(auds)
        connection = index.get(client_id, aud)
        assert connection is not None
        granted = [s for s, r in connection.rules.items() if r == "grant"]
        roll = rng.random()
        scopes: list[str] | None
        if roll < 0.10:
            scopes = None
        elif roll < 0.70:  # mostly grantable scopes, sometimes a deny or unlisted one
            scopes = rng.sample(granted, min(len(granted), rng.randint(1, 5)))
            if rng.random() < 0.3:
                scopes.append(rng.choice(vocabulary))
        else:  # any of the connection's scopes or the vocabulary: approvals and refusals happen
            pool = list(connection.rules) + rng.sample(vocabulary, 5)
            scopes = rng.sample(pool, rng.randint(1, 6))
        if scopes is not None and rng.random() < 0.01:
            scopes.append("bad scope")
        if rng.random() < 0.02:
            aud = "https://unknown.example"
        roll = rng.random()
        resource = None if roll < 0.6 else "https://x/api" if roll < 0.65 else f"{aud}/api"
        ceiling = frozenset(rng.sample(vocabulary, 150)) if rng.random() < 0.3 else None
        lifetime = rng.choice((None, None, 30, 300, 3600))
        out.append((client_id, aud, scopes, resource, ceiling, lifetime))
    return out


def percentile(sorted_ns: array[int], q: float) -> int:
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))]


def run(index: ConnectionIndex, batch: list[Request], latencies: array[int] | None) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    clock = time.perf_counter_ns
    for client_id, aud, scopes, resource, ceiling, lifetime in batch:
        start = clock()
        try:
            decide(
                index,
                client_id=client_id,
                audience=aud,
                requested_scopes=scopes,
                resource=resource,
                ceiling=ceiling,
                requested_lifetime=lifetime,
            )
            outcome = "granted"
        except OAuthError as e:
            outcome = e.error
        end = clock()
        if latencies is not None:
            latencies.append(end - start)
        outcomes[outcome] += 1
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--warmup", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=1_000)
    parser.add_argument("--audiences", type=int, default=10)
    parser.add_argument("--scopes-per-connection", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.decisions < 1 or args.clients < 1 or args.audiences < 1:
        parser.error("--decisions, --clients and --audiences must be positive")
    if not 1 <= args.scopes_per_connection <= 200:
        parser.error("--scopes-per-connection must be within 1..200")

    rng = random.Random(args.seed)
    index, client_ids, auds, vocabulary, build_s = build(
        rng, args.clients, args.audiences, args.scopes_per_connection
    )
    run(index, requests(rng, args.warmup, index, client_ids, auds, vocabulary), None)
    batch = requests(rng, args.decisions, index, client_ids, auds, vocabulary)

    latencies: array[int] = array("q")
    wall_start = time.perf_counter_ns()
    outcomes = run(index, batch, latencies)
    wall_ns = time.perf_counter_ns() - wall_start

    ordered = array("q", sorted(latencies))
    clock = time.perf_counter_ns
    overhead = min(-clock() + clock() for _ in range(10_000))
    us = 1_000.0
    result: dict[str, Any] = {
        "workload": "W4",
        "connections": len(index),
        "index_build_ms": round(build_s * 1_000, 2),
        "decisions": len(ordered),
        "outcomes": dict(outcomes.most_common()),
        "p50_us": round(percentile(ordered, 0.50) / us, 2),
        "p90_us": round(percentile(ordered, 0.90) / us, 2),
        "p99_us": round(percentile(ordered, 0.99) / us, 2),
        "p999_us": round(percentile(ordered, 0.999) / us, 2),
        "max_us": round(ordered[-1] / us, 2),
        "mean_us": round(sum(ordered) / len(ordered) / us, 2),
        "decisions_per_s": round(len(ordered) / (wall_ns / 1e9)),
        "timer_overhead_ns": overhead,
        "target_p99_us": 1000,
        "python": sys.version.split()[0],
    }
    result["target_met"] = result["p99_us"] < result["target_p99_us"]
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"W4 policy decision: {result['connections']} managed connections "
            f"(index built in {result['index_build_ms']} ms), {result['decisions']} decisions"
        )
        print("outcomes: " + ", ".join(f"{k}={v}" for k, v in outcomes.most_common()))
        print(
            f"latency us: p50 {result['p50_us']}  p90 {result['p90_us']}  p99 {result['p99_us']}  "
            f"p99.9 {result['p999_us']}  max {result['max_us']}  mean {result['mean_us']}  "
            f"(timer overhead {overhead} ns)"
        )
        print(
            f"throughput: {result['decisions_per_s']} decisions/s; "
            f"target p99 < 1000 us: {'met' if result['target_met'] else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

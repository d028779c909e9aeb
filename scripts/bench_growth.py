"""Cost of growth (issue 15): W1 and W3 on a tessera holding 10,000 tenants and 100,000 clients
beside the same on an empty one, same load generator, alternating rounds, in one run.

Two deployments in a temporary directory (SQLite files; with ``--postgres`` the databases named
by ``TESSERA_BENCH_POSTGRES_URL`` for the seeded one and ``TESSERA_BENCH_POSTGRES_URL_EMPTY``
for the other, both wiped). Each is started once by ``tessera serve`` (schema, master key, the
demo tenant); the seeded one is stopped, seeded, and started again:

* seeding writes ``--tenants`` tenants (``grow-00000`` ...) and ``--clients`` clients spread
  evenly over them, in transactions of ``--batch`` tenants, with the rows the app writes for
  ``tessera tenant create`` and ``tessera client create``: the tenant, its directory epoch, its
  sealed webhook secret, its active and next signing keys (made and wrapped under the master key
  by the key service itself, ``KeyService.ensure``), each client (registration checked by
  ``tenants.clients.check``, secret stored as the app's keyed hash, DPoP-bound, scope ``read``)
  and the audit chain of it all (``tenant.created``, ``client.created``, appended by
  ``tenants.audit.append``). What it skips is the per-row round trips: one flush per batch
  instead of one unit of work per client (the app's own path, ~8 ms per client on SQLite, would
  take hours for 100,000).
* before measuring, ``--verify`` seeded tenants picked at random get a DPoP-bound token from one
  of their seeded clients over HTTP, which is then introspected as active, and the audit chain
  of one of them is checked (``tessera audit verify``);
* then ``bench_tokens.py`` runs W1 and W3 against client ``bench`` of tenant ``demo`` on both
  servers (the arguments of ``bench_side_by_side.py``: concurrency 32, keep-alive, a fresh ES256
  proof per request, ``--cpu-pid`` for server CPU per request), ``--rounds`` times, the order
  alternating, and prints each run and the medians with the ratio seeded / empty (the target:
  within 10 %)::

    python scripts/bench_growth.py                          # 10,000 / 100,000, 3 rounds of 10 s
    python scripts/bench_growth.py --tenants 1000 --clients 10000 --rounds 1 --duration 5
    TESSERA_BENCH_POSTGRES_URL=postgresql+asyncpg://.../tessera_growth \\
    TESSERA_BENCH_POSTGRES_URL_EMPTY=postgresql+asyncpg://.../tessera_growth_empty \\
        python scripts/bench_growth.py --postgres

The servers run as shipped, so the key schedule's pass over every tenant (at start, then
60 s after each pass ends; ~0.25 s of CPU a pass with 10,000 tenants on SQLite since
2026-12-06, ~75 s at ~0.7 of a core before 2026-12-05) counts in the seeded server's CPU.
``--quiet-schedule`` measures the request path alone: both servers get
``TESSERA_KEY_SCHEDULE_INTERVAL=3600`` and the rounds start once the seeded one is idle.
``--json FILE`` writes every run's report; ``--keep`` keeps the directory (logs, databases).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench_tokens import ProofSigner, basic_authorization, tree_usage
from benchkit import (
    RESOURCE,
    Deployment,
    Server,
    add_round_options,
    load_average,
    load_options,
    rounds,
    stop,
    summary,
    tear_down,
)

SEED_SCOPES = ["read"]


# -- seeding (runs in a subprocess with the seeded deployment's environment) ----------------

async def seed(tenants: int, clients_total: int, batch: int, samples: int) -> dict[str, Any]:
    """Seed the deployment of this process's environment; the row counts after, the time it
    took and ``samples`` seeded clients (tenant, client_id, secret) to check."""
    from sqlalchemy import func, select

    from broker.cli.transport import DEFAULT_HOST, DEFAULT_PORT
    from broker.config import Settings
    from broker.deployment import Mode, open_deployment
    from broker.runtime import Broker
    from tenants import audit, clients, webhook_secrets
    from tenants.models import Client, DirectoryEpoch, SigningKey, Tenant
    from tenants.scope import scoped
    from tenants.settings import TenantSettings

    settings = Settings.load()
    if not settings.base_url:
        settings = settings.with_base_url(DEFAULT_HOST, DEFAULT_PORT)
    broker = Broker.build((await open_deployment(settings, Mode.USE)).settings)
    per_tenant = [clients_total // tenants + (1 if i < clients_total % tenants else 0)
                  for i in range(tenants)]
    sampled = set(random.sample(range(tenants), min(samples, tenants)))
    kept: list[dict[str, str]] = []
    registration: dict[str, Any] = {
        "auth_method": "client_secret_basic", "access_token_lifetime": 300,
        "scopes": SEED_SCOPES, "audiences": [RESOURCE], "dpop_bound_access_tokens": True}
    clients.check(registration)
    detail = clients._audited(registration)  # what client.created tells of it
    started = time.perf_counter()
    try:
        for first in range(0, tenants, batch):
            indices = range(first, min(tenants, first + batch))
            now = broker.clock.now()
            events: dict[str, list[audit.Event]] = {}
            async with broker.sessions() as session, session.begin():
                for i in indices:
                    name = f"grow-{i:05d}"
                    session.add(Tenant(id=name, display_name=name, status="active",
                                       created_at=now, settings=TenantSettings().to_dict()))
                    # directory.create_tenant bumps to 1, each clients.create by one
                    session.add(DirectoryEpoch(tenant_id=name, epoch=1 + per_tenant[i]))
                    webhook_secrets.create(scoped(session, name), broker.sealer)
                    events[name] = [audit.Event("tenant.created", "changed")]
                await session.flush()
                for i in indices:
                    name = f"grow-{i:05d}"
                    await broker.keys.ensure(name, session)  # active + next, wrapped
                    for _ in range(per_tenant[i]):
                        client_id, secret = clients._new_client_id(), clients.new_secret()
                        session.add(Client(
                            tenant_id=name, client_id=client_id, name="agent", status="active",
                            secret_hash=broker.hasher.hash(secret), created_at=now,
                            **{k: (list(v) if isinstance(v, list) else v)
                               for k, v in registration.items()}))
                        events[name].append(audit.Event("client.created", "changed",
                                                        client_id=client_id, detail=detail))
                        if i in sampled and not any(k["tenant"] == name for k in kept):
                            kept.append({"tenant": name, "client_id": client_id,
                                         "client_secret": secret})
                await session.flush()

                def chain(sync: Any, events: dict[str, list[audit.Event]] = events,
                          at: float = now) -> None:
                    for name, evs in events.items():
                        audit.append(sync, name, audit.with_actor(evs), at)

                await session.run_sync(chain)
            done = indices.stop
            if done % max(batch, 1000) < batch or done == tenants:
                print(f"  seeded {done:,} tenants in {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
        async with broker.sessions() as session:
            counts = {model.__tablename__: (await session.execute(
                select(func.count()).select_from(model))).scalar_one()
                for model in (Tenant, Client, SigningKey)}
    finally:
        await broker.close()
    return {"seconds": round(time.perf_counter() - started, 1), "rows": counts, "samples": kept}


# -- checking seeded tenants over HTTP -------------------------------------------------------

def _post(url: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=urlencode(form).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def verify_tenant(base: str, sample: dict[str, str]) -> str:
    """A DPoP-bound token for a seeded client at its tenant, introspected as active."""
    issuer = f"{base}/t/{sample['tenant']}"
    auth = {"Authorization": basic_authorization(sample["client_id"], sample["client_secret"])}
    proof = ProofSigner(f"{issuer}/token").proof(None).decode()
    status, body = _post(f"{issuer}/token", {"grant_type": "client_credentials",
                                             "scope": "read", "resource": RESOURCE},
                         {**auth, "DPoP": proof})
    if status != 200 or str(body.get("token_type", "")).lower() != "dpop":
        raise SystemExit(f"seeded tenant {sample['tenant']}: token request {status} {body}")
    status, answer = _post(f"{issuer}/introspect", {"token": body["access_token"]}, auth)
    if status != 200 or answer.get("active") is not True:
        raise SystemExit(f"seeded tenant {sample['tenant']}: introspection {status} {answer}")
    return f"{sample['tenant']} ({sample['client_id']}): DPoP token, introspected active"


# -- the run -----------------------------------------------------------------------------------

def wait_idle(server: Server, timeout: float = 900.0, window: float = 3.0) -> float:
    """Wait until ``server`` uses under 5 % of a core over ``window`` seconds (its key
    schedule's first pass, which runs at start, is over); the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = tree_usage((server.proc.pid,))[0]
        time.sleep(window)
        if tree_usage((server.proc.pid,))[0] - before < 0.05 * window:
            return time.monotonic() - started
    raise SystemExit(f"{server.name} still busy after {timeout:.0f} s")


def start(deployment: Deployment, name: str, postgres: bool,
          seeding: list[str] | None = None) -> tuple[Server, dict[str, Any] | None]:
    if postgres:
        deployment.wipe_postgres()
    proc = deployment.serve()  # first start: schema, master key, tenant demo
    seeded = None
    if seeding is not None:
        stop(proc)
        samples = deployment.work / "seeded.json"
        t0 = time.perf_counter()
        deployment.python(str(Path(__file__).resolve()), "--seed", *seeding,
                          "--samples-file", str(samples))
        seeded = json.loads(samples.read_text()) | {"wall_s": time.perf_counter() - t0}
        proc = deployment.serve()
    return deployment.bench_server(proc, name), seeded


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--tenants", type=int, default=10_000)
    p.add_argument("--clients", type=int, default=100_000, help="spread evenly over the tenants")
    p.add_argument("--batch", type=int, default=250, help="tenants per seeding transaction")
    p.add_argument("--verify", type=int, default=5,
                   help="seeded tenants checked over HTTP before measuring")
    add_round_options(p)
    p.add_argument("--workloads", default="W1,W3", help="comma-separated: W1, W3")
    p.add_argument("--postgres", action="store_true",
                   help="TESSERA_BENCH_POSTGRES_URL (seeded) and TESSERA_BENCH_POSTGRES_URL_EMPTY "
                   "(both wiped) instead of SQLite")
    p.add_argument("--quiet-schedule", action="store_true",
                   help="the request path alone: both servers with the key schedule every hour "
                   "(TESSERA_KEY_SCHEDULE_INTERVAL=3600) and the measurement once the seeded "
                   "one's first pass (at start) is over; by default the schedule runs every "
                   "60 s as shipped, and its pass over every tenant counts in the seeded "
                   "server's CPU")
    p.add_argument("--json", type=Path, help="write every run's report to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--samples-file", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tenants < 1 or args.clients < 0 or args.batch < 1:
        p.error("--tenants and --batch at least 1, --clients at least 0")
    if args.seed:  # the subprocess, in the seeded deployment's environment
        result = asyncio.run(seed(args.tenants, args.clients, args.batch, args.verify))
        args.samples_file.write_text(json.dumps(result))
        return 0
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    if not workloads or not set(workloads) <= {"W1", "W3"}:
        p.error("--workloads: W1 and/or W3")
    urls: list[str | None] = [None, None]
    if args.postgres:
        urls = [os.environ.get("TESSERA_BENCH_POSTGRES_URL"),
                os.environ.get("TESSERA_BENCH_POSTGRES_URL_EMPTY")]
        if not all(urls) or urls[0] == urls[1]:
            p.error("--postgres needs TESSERA_BENCH_POSTGRES_URL and, another database, "
                    "TESSERA_BENCH_POSTGRES_URL_EMPTY")
    if shutil.which("tessera") is None:
        p.error("needs tessera on PATH (pip install -e .)")
    if args.quiet_schedule:
        os.environ["TESSERA_KEY_SCHEDULE_INTERVAL"] = "3600"  # the servers' environment
    work = Path(tempfile.mkdtemp(prefix="tessera-growth-"))
    servers: list[Server] = []
    label = f"tessera+{args.tenants // 1000}k" if args.tenants >= 1000 else \
        f"tessera+{args.tenants}"
    try:
        seeding = ["--tenants", str(args.tenants), "--clients", str(args.clients),
                   "--batch", str(args.batch), "--verify", str(args.verify)]
        print(f"seeding {args.tenants:,} tenants and {args.clients:,} clients "
              f"(load average {load_average()})", flush=True)
        deployment = Deployment.create(work / "seeded", urls[0])
        grown, seeded = start(deployment, label, args.postgres, seeding)
        servers.append(grown)
        assert seeded is not None
        print(f"seeded in {seeded['seconds']:.0f} s ({seeded['wall_s']:.0f} s with the "
              f"restart); rows: {seeded['rows']}", flush=True)
        for sample in seeded["samples"]:
            print(f"  checked {verify_tenant(deployment.base, sample)}", flush=True)
        if seeded["samples"]:
            tenant = seeded["samples"][0]["tenant"]
            report = deployment.cli("audit", "verify", "--tenant", tenant)
            print(f"  audit chain of {tenant}: {report}", flush=True)
        empty, _ = start(Deployment.create(work / "empty", urls[1]), "tessera", args.postgres)
        servers.append(empty)
        if args.quiet_schedule:
            print(f"key schedule every 3600 s; waited {wait_idle(grown):.0f} s for the seeded "
                  f"server's first pass to end", flush=True)
        backend = "PostgreSQL" if args.postgres else "SQLite"
        print(f"{label} at {grown.issuer}, empty tessera at {empty.issuer} ({backend}, 1 worker "
              f"each); {os.cpu_count()} cores shared with the load generator; load average "
              f"{load_average()}; {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
        extra = load_options(args)
        rounds(servers, workloads, args.rounds, extra)
        summary(servers, workloads)
        if args.json:
            args.json.write_text(json.dumps({
                "seeding": {k: v for k, v in seeded.items() if k != "samples"},
                **{s.name: s.runs for s in servers}}, indent=1))
    finally:
        tear_down(servers, work, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())

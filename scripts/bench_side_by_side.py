"""tessera beside node oidc-provider, same load generator, alternating rounds, in one run.

Starts a fresh tessera (``tessera serve``, SQLite in its own temporary directory, one worker
unless ``--workers``; PostgreSQL with ``--postgres``, which wipes the database named by
``TESSERA_BENCH_POSTGRES_URL``) and node oidc-provider 9 (``fixtures/peers/bench_op.mjs`` with
``fixtures/peers/bench_op.json``: client credentials, RFC 8707 resource indicators, DPoP, in-memory
store), then runs ``scripts/bench_tokens.py`` against each in turn, ``--rounds`` times per
workload, the order alternating each round so that both see the same load on a shared machine:

  * W1: client credentials + ``resource`` + a fresh ES256 DPoP proof per request; a DPoP-bound
    JWT access token signed ES256 comes back from both;
  * W3: introspection of one valid DPoP-bound token (oidc-provider introspects only its
    opaque tokens, so its token is opaque; tessera's is its usual JWT);
  * W5 (``--workloads W5``, tessera only: oidc-provider has no SAML out): the token exchange
    of a user's ID token for a signed SAML 2.0 assertion (``bench_tokens.py --mode saml``) at
    an RS256 tenant (RSA-SHA256, the performance spec's W5), for a registered legacy app.

Server CPU per request is the utime + stime of the server's process tree over the measured
window (``/proc/<pid>/stat``), divided by the requests answered in it. It prints one line per
run and a summary (median and spread per server, and the ratio tessera / oidc-provider)::

    python scripts/bench_side_by_side.py                      # W1 and W3, 3 rounds of 10 s
    python scripts/bench_side_by_side.py --rounds 5 --duration 20 --workloads W1
    python scripts/bench_side_by_side.py --workloads W5       # SAML out over HTTP (no node)
    TESSERA_BENCH_POSTGRES_URL=postgresql+asyncpg://... \\
        python scripts/bench_side_by_side.py --postgres
    python scripts/bench_side_by_side.py --memory 100000      # RSS after 100k requests, each on
                                                              # a new connection, ...

``--memory N`` (instead of the rounds) sends N token requests (W1) on fresh TCP connections
(``Connection: close``), N on fresh connections the client closes, then N on keep-alive
connections, to each server and prints its RSS before and after each N requests.
``--json FILE`` writes every run's report. Needs node and ``fixtures/peers/node_modules``
(``npm ci`` in fixtures/peers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchkit import (
    ROOT,
    Deployment,
    Server,
    add_round_options,
    bench,
    free_port,
    load_average,
    load_options,
    rounds,
    summary,
    tear_down,
    wait_http,
)

PEERS = ROOT / "fixtures" / "peers"
OP_JWT, OP_OPAQUE = "https://bench.example/jwt", "https://bench.example/opaque"
SECRET = "bench-side-by-side-secret-0123456789"


def start_tessera(work: Path, args: argparse.Namespace, source: Path | None = None,
                  name: str = "tessera") -> Server:
    """tessera from this tree, or (``source``) from another one: a ``git archive`` of an
    earlier commit, for a before/after in the same run."""
    url = None
    if args.postgres:
        url = os.environ.get("TESSERA_BENCH_POSTGRES_URL")
        if not url:
            raise SystemExit("--postgres needs TESSERA_BENCH_POSTGRES_URL")
        if source is not None:
            raise SystemExit("--baseline with --postgres: one database, one server at a time")
    deployment = Deployment.create(work, url, source)
    if url:
        deployment.wipe_postgres()
    server = deployment.bench_server(deployment.serve(args.workers), name)
    if "W5" in args.workload_list:
        deployment.add_saml_out(server)
    return server


def start_oidc_provider(work: Path) -> Server:
    if not (PEERS / "node_modules" / "oidc-provider").is_dir():
        raise SystemExit(f"no {PEERS}/node_modules/oidc-provider: run npm ci in {PEERS}")
    port = free_port()
    config = json.loads((PEERS / "bench_op.json").read_text())
    config["port"] = port
    config["client"]["client_secret"] = SECRET
    path = work / "bench_op.json"
    path.write_text(json.dumps(config))
    log = open(work / "oidc-provider.log", "wb")
    proc = subprocess.Popen(["node", str(PEERS / "bench_op.mjs"), str(path)], cwd=PEERS,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    issuer = f"http://127.0.0.1:{port}"
    wait_http(f"{issuer}/.well-known/openid-configuration", proc, "oidc-provider")
    common = ["--issuer", issuer, "--client-id", "bench", "--client-secret", SECRET,
              "--scope", "read"]
    return Server("oidc-provider", proc, issuer, {
        "W1": [*common, "--resource", OP_JWT],
        "W3": [*common, "--resource", OP_OPAQUE, "--mode", "introspect",
               "--introspect-url", f"{issuer}/token/introspection"],
    })


def memory(servers: list[Server], n: int, concurrency: int) -> None:
    """N token requests on fresh connections the server closes, N on fresh ones the client
    closes, then N on keep-alive ones, per server."""
    print(f"\nmemory: {n} W1 requests on a new TCP connection each (Connection: close), {n} "
          f"more closed by the client, then {n} on keep-alive connections (concurrency "
          f"{concurrency})")
    for s in servers:
        for label, extra in (("fresh", ["--fresh-connections"]),
                             ("client-closes", ["--fresh-connections", "--client-closes"]),
                             ("keep-alive", [])):
            r = bench(s, "W1", ["--requests", str(n), "--duration", "3600", "--warmup", "0",
                                "--concurrency", str(concurrency), *extra])
            srv = r["server"]
            print(f"  {s.name:<13} {label:<13} {r['operations_completed']} requests "
                  f"({r['throughput_per_s']:.0f}/s, errors {r['errors_total']}): RSS "
                  f"{srv['rss_mb_start']:.0f} -> {srv['rss_mb_end']:.0f} MB  "
                  f"load {r['load_average_after']}", flush=True)
            s.runs.setdefault(f"memory-{label}", []).append(r)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_round_options(p)
    p.add_argument("--workloads", default="W1,W3",
                   help="comma-separated: W1, W3, W5 (SAML out; tessera only)")
    p.add_argument("--workers", type=int, default=1, help="tessera's Hypercorn workers")
    p.add_argument("--postgres", action="store_true",
                   help="tessera on TESSERA_BENCH_POSTGRES_URL (wiped) instead of SQLite")
    p.add_argument("--baseline", metavar="REV",
                   help="also run tessera as of this git revision (git archive), SQLite only: "
                   "a before/after in the same run")
    p.add_argument("--only", choices=("tessera", "oidc-provider"),
                   help="run one server only (profiling)")
    p.add_argument("--memory", type=int, default=0, metavar="N",
                   help="instead of the rounds: RSS after N requests on fresh connections, "
                   "then N on keep-alive ones")
    p.add_argument("--json", type=Path, help="write every run's report to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args(argv)
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    if not workloads or not set(workloads) <= {"W1", "W3", "W5"}:
        p.error("--workloads: W1, W3 and/or W5")
    args.workload_list = workloads
    # oidc-provider has no SAML out: W5 alone runs tessera alone
    with_op = args.only != "tessera" and (set(workloads) != {"W5"} or bool(args.memory))
    if shutil.which("tessera") is None or (with_op and shutil.which("node") is None):
        p.error("needs tessera (pip install -e .) and node on PATH")
    work = Path(tempfile.mkdtemp(prefix="tessera-side-by-side-"))
    servers: list[Server] = []
    try:
        servers = [start_tessera(work / "tessera", args)]
        if args.baseline:
            source = work / "baseline-src"
            source.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
            servers.append(start_tessera(work / "baseline", args, source,
                                         f"tessera@{args.baseline}"))
        if with_op:
            servers.append(start_oidc_provider(work))
        backend = "PostgreSQL" if args.postgres else "SQLite"
        op = f", oidc-provider at {servers[-1].issuer}" if with_op else ""
        print(f"tessera ({backend}, {args.workers} worker(s)) at {servers[0].issuer}{op}; "
              f"{os.cpu_count()} cores shared with the load generator; load average "
              f"{load_average()}; {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
        chosen = [s for s in servers if args.only in (None, s.name)]
        if args.only == "tessera":
            chosen = [s for s in servers if s.name != "oidc-provider"]
        if args.memory:
            memory(chosen, args.memory, args.concurrency)
        else:
            extra = load_options(args)
            rounds(chosen, workloads, args.rounds, extra)
            summary(chosen, workloads)
        if args.json:
            args.json.write_text(json.dumps({s.name: s.runs for s in servers}, indent=1))
    finally:
        tear_down(servers, work, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())

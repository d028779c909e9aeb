"""tessera beside node oidc-provider, same load generator, alternating rounds, in one run.

Starts a fresh tessera (``tessera serve``, SQLite in its own temporary directory, one worker
unless ``--workers``; PostgreSQL with ``--postgres``, which wipes the database named by
``TESSERA_BENCH_POSTGRES_URL``) and node oidc-provider 9 (``tests/peers/bench_op.mjs`` with
``tests/peers/bench_op.json``: client credentials, RFC 8707 resource indicators, DPoP, in-memory
store), then runs ``scripts/bench_tokens.py`` against each in turn, ``--rounds`` times per
workload, the order alternating each round so that both see the same load on a shared machine:

  * W1: client credentials + ``resource`` + a fresh ES256 DPoP proof per request; a DPoP-bound
    JWT access token signed ES256 comes back from both;
  * W3: introspection of one valid DPoP-bound token (oidc-provider introspects only its
    opaque tokens, so its token is opaque; tessera's is its usual JWT).

Server CPU per request is the utime + stime of the server's process tree over the measured
window (``/proc/<pid>/stat``), divided by the requests answered in it. It prints one line per
run and a summary (median and spread per server, and the ratio tessera / oidc-provider)::

    python scripts/bench_side_by_side.py                      # W1 and W3, 3 rounds of 10 s
    python scripts/bench_side_by_side.py --rounds 5 --duration 20 --workloads W1
    TESSERA_BENCH_POSTGRES_URL=postgresql+asyncpg://... \\
        python scripts/bench_side_by_side.py --postgres
    python scripts/bench_side_by_side.py --memory 100000      # RSS after 100k requests, each on
                                                              # a new connection, ...

``--memory N`` (instead of the rounds) sends N token requests (W1) on fresh TCP connections
(``Connection: close``), N on fresh connections the client closes, then N on keep-alive
connections, to each server and prints its RSS before and after each N requests.
``--json FILE`` writes every run's report. Needs node and ``tests/peers/node_modules``
(``npm ci`` in tests/peers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = ROOT / "tests" / "peers"
BENCH = HERE / "bench_tokens.py"
RESOURCE = "https://bench.example/api"  # tessera: the bench client's audience
OP_JWT, OP_OPAQUE = "https://bench.example/jwt", "https://bench.example/opaque"
SECRET = "bench-side-by-side-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {timeout:g} s")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    issuer: str
    bench_args: dict[str, list[str]]  # workload -> bench_tokens.py arguments
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_tessera(work: Path, args: argparse.Namespace, source: Path | None = None,
                  name: str = "tessera") -> Server:
    """tessera from this tree, or (``source``) from another one: a ``git archive`` of an
    earlier commit, for a before/after in the same run."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ)
    tessera = ["tessera"]
    if source is not None:
        env["PYTHONPATH"] = str(source)
        tessera = [sys.executable, "-c", "import sys; from broker.cli import main; "
                   "sys.exit(main())"]
    base = f"http://127.0.0.1:{port}"
    env["TESSERA_BASE_URL"] = base
    if args.postgres:
        url = os.environ.get("TESSERA_BENCH_POSTGRES_URL")
        if not url:
            raise SystemExit("--postgres needs TESSERA_BENCH_POSTGRES_URL")
        env["TESSERA_DATABASE_URL"] = url
        env["TESSERA_MASTER_KEY_FILE"] = str(work / "tessera-master.key")
        env["TESSERA_ADMIN_TOKEN_FILE"] = str(work / "tessera-admin.token")
        env["TESSERA_DEMO_FILE"] = str(work / "demo.json")
        wipe = ("import asyncio, os\nfrom sqlalchemy import text\n"
                "from tenants.db import Base, create_engine\nimport tenants.models\n"
                "async def wipe():\n    e = create_engine(os.environ['TESSERA_DATABASE_URL'])\n"
                "    async with e.begin() as c:\n"
                "        await c.run_sync(Base.metadata.drop_all)\n"
                "        await c.execute(text('DROP TABLE IF EXISTS alembic_version'))\n"
                "    await e.dispose()\nasyncio.run(wipe())\n")
        subprocess.run([sys.executable, "-c", wipe], env=env, cwd=work, check=True)
        if source is not None:
            raise SystemExit("--baseline with --postgres: one database, one server at a time")
    else:
        env["TESSERA_DATABASE_URL"] = f"sqlite+aiosqlite:///{work}/tessera.db"
    log = open(work / "tessera.log", "wb")
    proc = subprocess.Popen(
        [*tessera, "serve", "--port", str(port), "--workers", str(args.workers)],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_http(f"{base}/healthz", proc, "tessera")
    out = subprocess.run(
        [*tessera, "client", "create", "--tenant", "demo", "--name", "bench", "--client-id",
         "bench", "--dpop-required", "--scope", "read", "--audience", RESOURCE, "--json"],
        cwd=work, env=env, check=True, capture_output=True)
    secret = json.loads(out.stdout)["client_secret"]
    issuer = f"{base}/t/demo"
    common = ["--issuer", issuer, "--client-id", "bench", "--client-secret", secret,
              "--scope", "read", "--resource", RESOURCE]
    return Server(name, proc, issuer, {
        "W1": common,
        "W3": [*common, "--mode", "introspect"],
    })


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


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench(server: Server, workload: str, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCH), *server.bench_args[workload], *extra,
           "--cpu-pid", str(server.proc.pid), "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if not done.stdout.strip():
        raise SystemExit(f"{server.name} {workload}: load generator failed "
                         f"({done.returncode}): {done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    report["load_average_after"] = load_average()
    return report


def line(server: Server, workload: str, rnd: int, r: dict[str, Any]) -> str:
    lat, srv = r["latency_ms"], r.get("server", {})
    errors = f" errors {r['errors_total']} {r['errors']}" if r["errors_total"] else ""
    return (f"{workload} round {rnd} {server.name:<13} {r['throughput_per_s']:>7.0f}/s "
            f"p50 {lat['p50'] or 0:6.1f} ms p99 {lat['p99'] or 0:6.1f} ms "
            f"CPU {srv.get('cpu_ms_per_op') or 0:.3f} ms/req ({srv.get('cpu_cores') or 0:.2f} "
            f"cores) RSS {srv.get('rss_mb_end', 0):.0f} MB  load {r['load_average_after']}"
            f"{errors}")


def spread(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def summary(servers: list[Server], workloads: list[str]) -> None:
    print("\nsummary: median (min-max) over rounds; ratios of the medians")
    for w in workloads:
        rows: dict[str, dict[str, list[float]]] = {}
        for s in servers:
            runs = s.runs.get(w, [])
            rows[s.name] = {
                "rate": [r["throughput_per_s"] for r in runs],
                "p99": [r["latency_ms"]["p99"] or 0.0 for r in runs],
                "cpu": [r["server"]["cpu_ms_per_op"] or 0.0 for r in runs],
            }
        for name, m in rows.items():
            if m["rate"]:
                print(f"  {w} {name:<13} {spread(m['rate'])}/s  p99 {spread(m['p99'])} ms  "
                      f"CPU {spread(m['cpu'], 3)} ms/req")
        med = statistics.median
        tesseras = [s.name for s in servers if s.name.startswith("tessera")]
        pairs = [(t, s.name) for t in tesseras for s in servers if s.name == "oidc-provider"]
        if len(tesseras) == 2:
            pairs.append((tesseras[0], tesseras[1]))
        for new, old in pairs:
            a, b = rows[new], rows[old]
            if a["rate"] and b["rate"]:
                print(f"  {w} {new} / {old}: throughput "
                      f"{med(a['rate']) / med(b['rate']):.2f}x  "
                      f"p99 {med(a['p99']) / med(b['p99']):.2f}x  "
                      f"CPU/req {med(a['cpu']) / med(b['cpu']):.2f}x")


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
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--workloads", default="W1,W3", help="comma-separated: W1, W3")
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
    if not set(workloads) <= {"W1", "W3"}:
        p.error("--workloads: W1 and/or W3")
    if shutil.which("tessera") is None or shutil.which("node") is None:
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
        servers.append(start_oidc_provider(work))
        backend = "PostgreSQL" if args.postgres else "SQLite"
        print(f"tessera ({backend}, {args.workers} worker(s)) at {servers[0].issuer}, "
              f"oidc-provider at {servers[-1].issuer}; {os.cpu_count()} cores shared with the "
              f"load generator; load average {load_average()}; "
              f"{time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
        chosen = [s for s in servers if args.only in (None, s.name)]
        if args.only == "tessera":
            chosen = servers[:-1]
        if args.memory:
            memory(chosen, args.memory, args.concurrency)
        else:
            extra = ["--duration", str(args.duration), "--warmup", str(args.warmup),
                     "--concurrency", str(args.concurrency)]
            for w in workloads:
                for rnd in range(1, args.rounds + 1):
                    order = chosen if rnd % 2 else chosen[::-1]
                    for s in order:
                        r = bench(s, w, extra)
                        s.runs.setdefault(w, []).append(r)
                        print(line(s, w, rnd, r), flush=True)
            if len(chosen) >= 2:
                summary(chosen, workloads)
        if args.json:
            args.json.write_text(json.dumps({s.name: s.runs for s in servers}, indent=1))
    finally:
        for s in servers:
            s.stop()
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the benchmark harnesses share: start ``tessera serve`` in a directory of its own, set up
the clients a workload needs (CLI on the local deployment), run ``scripts/bench_tokens.py``
against it with ``--cpu-pid``, and print one line per run and a median (min-max) summary.

Used by ``bench_side_by_side.py`` (tessera beside node oidc-provider) and ``bench_growth.py``
(tessera with 10,000 tenants beside an empty one). Run as a script it is the in-process setup
step those need and the CLI lacks (``python scripts/benchkit.py user TENANT``: a tenant user,
as a first login makes one; run with the deployment's environment).
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
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH = HERE / "bench_tokens.py"
RESOURCE = "https://bench.example/api"  # tessera: the bench client's audience
SAML_APP = "https://legacy.bench.example/sp"  # W5: the legacy app's entity ID
SAML_TENANT = "saml"  # W5: an RS256 tenant (RSA-SHA256 signatures, the spec's W5)

# in a subprocess, with the deployment's environment: empty the PostgreSQL database
_WIPE = """\
import asyncio, os
from sqlalchemy import text
from tenants.db import Base, create_engine
import tenants.models
async def wipe():
    e = create_engine(os.environ['TESSERA_DATABASE_URL'])
    async with e.begin() as c:
        await c.run_sync(Base.metadata.drop_all)
        await c.execute(text('DROP TABLE IF EXISTS alembic_version'))
    await e.dispose()
asyncio.run(wipe())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0,
              data: bytes | None = None) -> None:
    """Until ``url`` answers 2xx (a POST of ``data`` when given); SystemExit if ``proc`` ends
    or ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, data=data, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {url} within {timeout:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    issuer: str
    bench_args: dict[str, list[str]]  # workload -> bench_tokens.py arguments
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def stop(self) -> None:
        stop(self.proc)


@dataclass
class Deployment:
    """One tessera deployment in ``work``: its environment, URL and how to run its CLI."""

    work: Path
    env: dict[str, str]
    port: int
    tessera: list[str]  # the command line of the ``tessera`` CLI

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, work: Path, database_url: str | None = None,
               source: Path | None = None) -> Deployment:
        """SQLite in ``work`` unless ``database_url``; tessera from this tree, or (``source``)
        from another one, such as a ``git archive`` of an earlier commit."""
        work.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = dict(os.environ)
        tessera = ["tessera"]
        if source is not None:
            env["PYTHONPATH"] = str(source)
            tessera = [sys.executable, "-c", "import sys; from broker.cli import main; "
                       "sys.exit(main())"]
        env["TESSERA_BASE_URL"] = f"http://127.0.0.1:{port}"
        if database_url:
            env["TESSERA_DATABASE_URL"] = database_url
            # PostgreSQL has no "next to the database": name where serve creates the secrets
            env["TESSERA_MASTER_KEY_FILE"] = str(work / "tessera-master.key")
            env["TESSERA_ADMIN_TOKEN_FILE"] = str(work / "tessera-admin.token")
            env["TESSERA_DEMO_FILE"] = str(work / "demo.json")
        else:
            env["TESSERA_DATABASE_URL"] = f"sqlite+aiosqlite:///{work}/tessera.db"
        return cls(work, env, port, tessera)

    def wipe_postgres(self) -> None:
        """Drop every table of the PostgreSQL database (never call it on a SQLite one)."""
        subprocess.run([sys.executable, "-c", _WIPE], env=self.env, cwd=self.work, check=True)

    def python(self, *argv: str) -> str:
        """Run ``python argv`` with the deployment's environment; its stdout."""
        done = subprocess.run([sys.executable, *argv], env=self.env, cwd=self.work,
                              capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): "
                             f"{done.stderr[-2000:]}")
        return done.stdout

    def cli(self, *argv: str) -> Any:
        """The JSON answer of ``tessera argv --json`` on the local deployment."""
        done = subprocess.run([*self.tessera, *argv, "--json"], cwd=self.work, env=self.env,
                              capture_output=True)
        if done.returncode:
            raise SystemExit(f"tessera {' '.join(argv)} failed ({done.returncode}): "
                             f"{done.stderr.decode(errors='replace')[-2000:]}")
        return json.loads(done.stdout)

    def serve(self, workers: int = 1, log: str = "tessera.log") -> subprocess.Popen[bytes]:
        """``tessera serve`` (first start: database, keys, demo tenant), answering."""
        with open(self.work / log, "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                [*self.tessera, "serve", "--port", str(self.port), "--workers", str(workers)],
                cwd=self.work, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_http(f"{self.base}/healthz", proc, "tessera")
        return proc

    def bench_server(self, proc: subprocess.Popen[bytes], name: str = "tessera") -> Server:
        """Client ``bench`` in tenant ``demo`` (DPoP-bound, scope read, audience RESOURCE):
        W1 and W3 against the running ``proc``."""
        secret = self.cli("client", "create", "--tenant", "demo", "--name", "bench",
                          "--client-id", "bench", "--dpop-required", "--scope", "read",
                          "--audience", RESOURCE)["client_secret"]
        issuer = f"{self.base}/t/demo"
        # --name=value: a generated secret may start with "-", which argparse would take for
        # an option of its own (the load generator then refused its arguments)
        common = ["--issuer", issuer, "--client-id", "bench", f"--client-secret={secret}",
                  "--scope", "read", "--resource", RESOURCE]
        return Server(name, proc, issuer, {
            "W1": common,
            "W3": [*common, "--mode", "introspect"],
        })

    def add_saml_out(self, server: Server) -> None:
        """W5: an RS256 tenant with a legacy app, a client that may get assertions for it, a
        user and an ID token of that user for that client (one hour); the operation is the
        token exchange of the ID token for a signed SAML assertion (``--mode saml``)."""
        self.cli("tenant", "create", SAML_TENANT, "--key-alg", "RS256")
        self.cli("legacy-app", "add", "--tenant", SAML_TENANT, "--entity-id", SAML_APP,
                 "--acs", "https://legacy.bench.example/saml/acs", "--name-id-format",
                 "persistent", "--attribute", "mail=email", "--attribute", "displayName=name",
                 "--attribute", "memberOf=groups")
        client = self.cli("client", "create", "--tenant", SAML_TENANT, "--name", "saml-bench",
                          "--audience", SAML_APP)
        user = self.python(str(Path(__file__).resolve()), "user", SAML_TENANT).strip()
        id_token = self.cli("id-token", "--tenant", SAML_TENANT, "--client",
                            client["client_id"], "--sub", user, "--lifetime", "3600")["id_token"]
        server.bench_args["W5"] = [
            "--mode", "saml", "--issuer", f"{self.base}/t/{SAML_TENANT}",
            f"--client-id={client['client_id']}", f"--client-secret={client['client_secret']}",
            "--audience", SAML_APP, f"--id-token={id_token}"]


def tear_down(servers: list[Server], work: Path, *, keep: bool) -> None:
    """Stop the servers; remove their directory unless ``keep`` (then say where it is)."""
    for s in servers:
        s.stop()
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def add_round_options(p: argparse.ArgumentParser) -> None:
    """The options every harness's rounds take (``load_options`` passes them on)."""
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--concurrency", type=int, default=32)


def load_options(args: argparse.Namespace) -> list[str]:
    """``bench_tokens.py`` arguments for the options ``add_round_options`` added."""
    return ["--duration", str(args.duration), "--warmup", str(args.warmup),
            "--concurrency", str(args.concurrency)]


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
    return (f"{workload} round {rnd} {server.name:<17} {r['throughput_per_s']:>7.0f}/s "
            f"p50 {lat['p50'] or 0:6.1f} ms p99 {lat['p99'] or 0:6.1f} ms "
            f"CPU {srv.get('cpu_ms_per_op') or 0:.3f} ms/req ({srv.get('cpu_cores') or 0:.2f} "
            f"cores) RSS {srv.get('rss_mb_end', 0):.0f} MB  load {r['load_average_after']}"
            f"{errors}")


def rounds(servers: list[Server], workloads: list[str], count: int, extra: list[str]) -> None:
    """``count`` rounds per workload over the servers that have it, the order alternating
    each round so that all see the same load on a shared machine."""
    for w in workloads:
        having = [s for s in servers if w in s.bench_args]
        for rnd in range(1, count + 1):
            for s in having if rnd % 2 else having[::-1]:
                r = bench(s, w, extra)
                s.runs.setdefault(w, []).append(r)
                print(line(s, w, rnd, r), flush=True)


def spread(values: list[float], digits: int = 0) -> str:
    med = statistics.median(values)
    return f"{med:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def summary(servers: list[Server], workloads: list[str], reference: str = "oidc-provider") -> None:
    """Median (min-max) per server and workload; the ratios of the medians: each tessera
    against ``reference`` (when that server ran), and the first tessera against the second."""
    print("\nsummary: median (min-max) over rounds; ratios of the medians")
    for w in workloads:
        rows: dict[str, dict[str, list[float]]] = {}
        for s in servers:
            runs = s.runs.get(w, [])
            rows[s.name] = {
                "rate": [r["throughput_per_s"] for r in runs],
                "p50": [r["latency_ms"]["p50"] or 0.0 for r in runs],
                "p99": [r["latency_ms"]["p99"] or 0.0 for r in runs],
                "cpu": [r["server"]["cpu_ms_per_op"] or 0.0 for r in runs],
            }
        for name, m in rows.items():
            if m["rate"]:
                print(f"  {w} {name:<13} {spread(m['rate'])}/s  p50 {spread(m['p50'], 1)} ms  "
                      f"p99 {spread(m['p99'])} ms  CPU {spread(m['cpu'], 3)} ms/req")
        med = statistics.median
        tesseras = [s.name for s in servers if s.name.startswith("tessera")]
        pairs = [(t, s.name) for t in tesseras for s in servers if s.name == reference]
        if len(tesseras) == 2:
            pairs.append((tesseras[0], tesseras[1]))
        for new, old in pairs:
            a, b = rows[new], rows[old]
            if a["rate"] and b["rate"]:
                print(f"  {w} {new} / {old}: throughput "
                      f"{med(a['rate']) / med(b['rate']):.2f}x  "
                      f"p99 {med(a['p99']) / med(b['p99']):.2f}x  "
                      f"CPU/req {med(a['cpu']) / med(b['cpu']):.2f}x")


async def _make_user(tenant: str) -> str:
    """A user of ``tenant`` as a first login through an upstream makes one; its id."""
    from broker.cli.transport import DEFAULT_HOST, DEFAULT_PORT
    from broker.config import Settings
    from broker.deployment import Mode, open_deployment
    from broker.runtime import Broker
    from tenants import users
    from tenants.scope import tenant_scope

    settings = Settings.load()
    if not settings.base_url:
        settings = settings.with_base_url(DEFAULT_HOST, DEFAULT_PORT)
    broker = Broker.build((await open_deployment(settings, Mode.USE)).settings)
    try:
        async with tenant_scope(broker.sessions, tenant) as scope:
            user = await users.link(scope, "corp", users.Profile(
                subject="alice", email="alice@corp.example", name="Alice Liddell",
                groups=("eng", "admins")), broker.clock.now())
            return user.id
    finally:
        await broker.close()


if __name__ == "__main__":
    import asyncio

    if len(sys.argv) != 3 or sys.argv[1] != "user":
        raise SystemExit("usage: benchkit.py user TENANT  (with the deployment's environment)")
    print(asyncio.run(_make_user(sys.argv[2])))

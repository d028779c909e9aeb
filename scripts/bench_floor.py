"""What an introspection (W3), or a SAML assertion out (W5), costs below tessera's own code:
the same load generator against servers that answer the same requests with a fixed JSON body,
layer by layer, beside tessera itself, in alternating rounds of one run.

Each layer is a Hypercorn server (one process, as ``tessera serve``) whose app answers
``POST /t/{tenant}/token`` with a bearer token and ``POST /t/{tenant}/introspect`` with an
``active`` answer of the size and headers tessera sends, after reading the request body:

  * ``hypercorn-asyncio``: Hypercorn 0.18 as shipped (h11, asyncio's event loop), a bare ASGI
    app: the cost of the server alone;
  * ``hypercorn-uvloop``: the same on uvloop (what ``tessera serve`` uses when installed);
  * ``hypercorn-patched``: plus ``broker.hypercorn_h11.install()`` (one write per response,
    the idle timer, header lines checked once): tessera's server as it runs;
  * ``starlette``: plus a Starlette app (routing by path with a ``{tenant}`` parameter, a
    ``Request``, the form parsed, a ``JSONResponse``), as tessera's endpoints are reached;
  * ``middleware``: plus tessera's three ASGI middlewares (request id, access log and
    metrics, client certificate) in front: everything but the endpoint's own work;
  * ``rsa-signature`` (``--workload W5`` only): ``hypercorn-patched`` plus the work no signed
    assertion can skip, in process as tessera's software key service does it: the SHA-256
    digest of an assertion of the size tessera issues and one RSA-2048 PKCS#1 v1.5 SHA-256
    signature over a ``SignedInfo`` of the size tessera signs. Its "per core" is the most SAML
    out could answer on one core of this machine with Hypercorn, whatever else tessera did;
  * ``tessera``: ``tessera serve`` (SQLite, the demo tenant) and the real workload. W3: a
    DPoP-bound JWT introspected with client authentication and the revocation state read each
    time. W5: an ID token exchanged for a signed SAML assertion in an RS256 tenant.

Each layer's "adds" is its CPU minus that of the layer it is built on (``rsa-signature`` on
``hypercorn-patched``, ``starlette`` on ``hypercorn-patched``, each other on the one above).
CPU per request is the server process's utime + stime over the measured window
(``bench_tokens.py --cpu-pid``), and "per core" is 1,000 / CPU ms: the most one event loop
could answer if it did nothing else::

    python scripts/bench_floor.py                     # 3 rounds of 10 s per layer
    python scripts/bench_floor.py --rounds 5 --layers hypercorn-patched,tessera
    python scripts/bench_floor.py --workers 2 --layers hypercorn-patched,tessera   # scale-out
    python scripts/bench_floor.py --workload W5 --layers hypercorn-patched,rsa-signature,tessera

``--serve LAYER --port N`` runs one layer's server in the foreground (what the run starts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from benchkit import (
    ROOT,
    Deployment,
    Server,
    add_round_options,
    free_port,
    load_options,
    rounds,
    tear_down,
    wait_http,
)

LAYERS = ("hypercorn-asyncio", "hypercorn-uvloop", "hypercorn-patched", "rsa-signature",
          "starlette", "middleware", "tessera")
BUILT_ON = {"hypercorn-uvloop": "hypercorn-asyncio", "hypercorn-patched": "hypercorn-uvloop",
            "rsa-signature": "hypercorn-patched", "starlette": "hypercorn-patched",
            "middleware": "starlette", "tessera": "middleware"}
WORKLOADS = ("W3", "W5")
# the size of tessera's answer to the benchmark's introspection (an active DPoP-bound token)
INTROSPECTION = (b'{"active":true,"client_id":"bench","sub":"bench","scope":"read",'
                 b'"aud":"https://bench.example/api","iss":"http://127.0.0.1:8000/t/demo",'
                 b'"exp":1796000000,"iat":1795999100,"jti":"bench-floor-0123456789abcdef",'
                 b'"token_type":"DPoP","cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA'
                 b'4I"},"tenant":"demo"}')
TOKEN = (b'{"access_token":"floor-token-0123456789abcdef","token_type":"Bearer",'
         b'"expires_in":900,"scope":"read"}')
# W5: sizes of tessera's answer (2026-12-07: a 4,385-byte signed assertion, base64url in a
# 5,963-byte JSON body) and of the SignedInfo its one RSA signature covers
ASSERTION_BYTES, SIGNED_INFO_BYTES = 4385, 700
SAML_OUT = (b'{"access_token":"' + b"A" * (4 * -(-ASSERTION_BYTES // 3))
            + b'","issued_token_type":"urn:ietf:params:oauth:token-type:saml2",'
            b'"token_type":"N_A","expires_in":300}')
HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
           (b"pragma", b"no-cache")]


def assertion_signer() -> Callable[[], bytes]:
    """What ``rsa-signature`` adds per request: the assertion's digest and one RSA signature."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assertion, signed_info = os.urandom(ASSERTION_BYTES), os.urandom(SIGNED_INFO_BYTES)
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def sign() -> bytes:
        hashlib.sha256(assertion).digest()
        return key.sign(signed_info, pkcs1, sha256)
    return sign


def raw_app(token_answer: bytes = TOKEN, sign: Callable[[], bytes] | None = None) -> Any:
    """A bare ASGI app: read the body, (``sign``,) answer the fixed JSON."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                while (await receive())["type"] != "lifespan.shutdown":
                    await send({"type": "lifespan.startup.complete"})
                await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        parse_qsl(body.decode("latin-1"))
        if sign is not None:
            sign()
        answer = INTROSPECTION if scope["path"].endswith("/introspect") else token_answer
        await send({"type": "http.response.start", "status": 200, "headers": [
            *HEADERS, (b"content-length", str(len(answer)).encode())]})
        await send({"type": "http.response.body", "body": answer})
    return app


def starlette_app(middleware: bool, token_answer: bytes = TOKEN) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def answer(request: Request, body: bytes) -> Response:
        dict(parse_qsl((await request.body()).decode("latin-1")))
        return Response(body, headers={"cache-control": "no-store", "pragma": "no-cache"},
                        media_type="application/json")

    async def token(request: Request) -> Response:
        return await answer(request, token_answer)

    async def introspect(request: Request) -> Response:
        return await answer(request, INTROSPECTION)

    app = Starlette(routes=[Route("/t/{tenant}/token", token, methods=["POST"]),
                            Route("/t/{tenant}/introspect", introspect, methods=["POST"])])
    if middleware:  # as broker.app.create_app adds them, the last added outermost
        from broker import logs
        from broker.client_cert import ClientCertMiddleware
        from broker.config import Settings
        from broker.observe import ObserveMiddleware
        from broker.request_context import RequestContextMiddleware

        logs.configure(Settings())  # JSON access lines to stderr (the layer's log), as serve
        app.add_middleware(ClientCertMiddleware, trusted_proxies=())
        app.add_middleware(ObserveMiddleware)
        app.add_middleware(RequestContextMiddleware)
    return app


def layer_app(layer: str, workload: str = "W3") -> Any:
    """The layer's ASGI app, tessera's Hypercorn patches installed where the layer has them."""
    from broker import hypercorn_h11

    if layer not in ("hypercorn-asyncio", "hypercorn-uvloop"):
        hypercorn_h11.install(strict=True)
    token_answer = SAML_OUT if workload == "W5" else TOKEN
    if layer == "rsa-signature":
        return raw_app(token_answer, assertion_signer())
    return (raw_app(token_answer) if layer.startswith("hypercorn-")
            else starlette_app(middleware=layer == "middleware", token_answer=token_answer))


def worker_app() -> Any:
    """Each worker's app (``--workers`` > 1: Hypercorn's process manager evaluates this)."""
    return layer_app(os.environ["TESSERA_FLOOR_LAYER"], os.environ["TESSERA_FLOOR_WORKLOAD"])


def serve(layer: str, port: int, workers: int = 1, workload: str = "W3") -> None:
    """One layer's server, in the foreground, until SIGTERM."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.run import run as hypercorn_run

    from broker.serve import event_loop_factory, hypercorn_config, tune_gc

    config = hypercorn_config("127.0.0.1", port, None, None)
    factory = None if layer == "hypercorn-asyncio" else event_loop_factory()
    if layer != "hypercorn-asyncio" and factory is None:
        raise SystemExit(f"{layer} needs uvloop")
    if workers > 1:  # as ``tessera serve --workers``: Hypercorn's processes, one socket
        os.environ["TESSERA_FLOOR_LAYER"] = layer
        os.environ["TESSERA_FLOOR_WORKLOAD"] = workload
        config.application_path = f"{Path(__file__).resolve()}:worker_app()"
        config.workers = workers
        config.worker_class = "asyncio" if factory is None else "uvloop"
        hypercorn_run(config)
        return
    app = layer_app(layer, workload)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        tune_gc()
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait)

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def start_layer(layer: str, work: Path, workers: int, workload: str = "W3") -> Server:
    port = free_port()
    with open(work / f"{layer}.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", layer, "--port", str(port),
                                 "--workers", str(workers), "--workload", workload],
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                start_new_session=True)
    issuer = f"http://127.0.0.1:{port}/t/floor"
    wait_http(f"{issuer}/introspect", proc, layer, timeout=30, data=b"token=x")
    client = ["--issuer", issuer, "--client-id", "floor", "--client-secret", "floor-secret"]
    if workload == "W5":  # a subject token of an ID token's size (the layers do not read it)
        id_token = "eyJ" + "A" * 90 + ".eyJ" + "A" * 280 + "." + "A" * 86
        args = [*client, "--mode", "saml", "--audience", "https://legacy.floor.example/sp",
                f"--id-token={id_token}"]
    else:
        args = [*client, "--no-dpop", "--mode", "introspect"]
    return Server(layer, proc, issuer, {workload: args})


def start_tessera(work: Path, workers: int, workload: str = "W3") -> Server:
    deployment = Deployment.create(work)
    server = deployment.bench_server(deployment.serve(workers), "tessera")
    if workload == "W5":
        deployment.add_saml_out(server)
    server.bench_args = {workload: server.bench_args[workload]}
    return server


def report(servers: list[Server], workload: str = "W3") -> None:
    print(f"\n{workload}: median (min-max) over rounds; 'adds' is this layer's CPU minus that "
          "of the layer it is built on")
    print(f"  {'layer':<18} {'requests/s':>22} {'CPU ms/request':>24} {'per core':>9} "
          f"{'adds':>9}")
    medians: dict[str, float] = {}
    for s in servers:
        runs = s.runs.get(workload, [])
        if not runs:
            continue
        rate = [r["throughput_per_s"] for r in runs]
        cpu = [r["server"]["cpu_ms_per_op"] or 0.0 for r in runs]
        med = medians[s.name] = statistics.median(cpu)
        base = medians.get(BUILT_ON.get(s.name, ""))
        adds = f"{med - base:+.3f}" if base is not None else ""
        print(f"  {s.name:<18} {statistics.median(rate):>8,.0f} ({min(rate):,.0f}-"
              f"{max(rate):,.0f}) {med:>10.3f} ({min(cpu):.3f}-{max(cpu):.3f}) "
              f"{1000 / med if med else 0:>9,.0f} {adds:>9}")


def workload_layers(workload: str) -> list[str]:
    """The layers a workload runs (``rsa-signature`` is W5's alone), in order."""
    return [x for x in LAYERS if workload == "W5" or x != "rsa-signature"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_round_options(p)
    p.add_argument("--workers", type=int, default=1, help="Hypercorn worker processes per server")
    p.add_argument("--layers", help="comma-separated, of: " + ", ".join(LAYERS)
                   + " (default: every layer of the workload)")
    p.add_argument("--workload", choices=WORKLOADS, default="W3",
                   help="W3 introspection, or W5 SAML assertion out (adds rsa-signature)")
    p.add_argument("--serve", choices=LAYERS[:-1], help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.workers, args.workload)
        return 0
    own = workload_layers(args.workload)
    layers = own if args.layers is None else [
        x.strip() for x in args.layers.split(",") if x.strip()]
    if not layers or not set(layers) <= set(LAYERS):
        p.error(f"--layers: of {', '.join(LAYERS)}")
    if not set(layers) <= set(own):
        p.error("--layers: rsa-signature is a W5 layer (--workload W5)")
    layers.sort(key=LAYERS.index)
    work = Path(tempfile.mkdtemp(prefix="tessera-floor-"))
    servers: list[Server] = []
    try:
        for layer in layers:
            servers.append(start_tessera(work / "tessera", args.workers, args.workload)
                           if layer == "tessera"
                           else start_layer(layer, work, args.workers, args.workload))
        print(f"{args.workload}; layers {', '.join(layers)}; {args.workers} worker(s) each; "
              f"{os.cpu_count()} cores shared with the load "
              f"generator; {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
        extra = load_options(args)
        rounds(servers, [args.workload], args.rounds, extra)
        report(servers, args.workload)
    finally:
        tear_down(servers, work, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``tessera demo-resource``: a demo resource server in its own process, protected by the
resource-server toolkit (``broker.resource_server``) the way an API or MCP server would be.

    tessera demo-resource --issuer http://127.0.0.1:8000/t/demo [--resource URL]
                          [--host H] [--port 8100] [--scope S ...] [--poll SECONDS]

It serves ``GET /whoami`` (the verified access token's claims) behind ``TesseraAuthMiddleware``,
and the RFC 9728 metadata at ``/.well-known/oauth-protected-resource`` + the resource's path.
Tokens are checked locally against the issuer's JWKS; revocations come from the issuer's
signed revocation feed, pulled every ``--poll`` seconds at most (the staleness bound). The
resource (default ``http://HOST:PORT/whoami``) must be registered at the tenant
(``tessera resource add``) for clients to get tokens for it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from broker.cli.exits import UNAVAILABLE, USAGE, CliError
from broker.json_response import JSONResponse
from broker.resource_server import RemoteJWKS, ResourceConfig, RevocationFeed, TokenVerifier
from broker.resource_server.asgi import TesseraAuthMiddleware, metadata_url


async def whoami(request: Request) -> JSONResponse:
    verified = request.state.tessera_token
    return JSONResponse({"sub": verified.subject, "client_id": verified.client_id,
                         "scopes": list(verified.scopes), "claims": verified.claims})


def build_app(issuer: str, resource: str, *, scopes: tuple[str, ...] = (),
              poll_interval: float = 15.0) -> TesseraAuthMiddleware:
    """The demo resource as an ASGI app: Starlette behind the toolkit's middleware."""
    http = httpx.AsyncClient(timeout=5.0)
    jwks = RemoteJWKS(f"{issuer}/jwks", http)
    feed = RevocationFeed(issuer, http, jwks, poll_interval=poll_interval,
                          max_staleness=max(60.0, 4 * poll_interval))
    config = ResourceConfig(resource, issuer, required_scopes=scopes, scopes_supported=scopes,
                            resource_name="tessera demo resource")

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await http.aclose()

    path = urlsplit(resource).path.rstrip("/") or "/"
    routes = [Route(p, whoami, methods=["GET"]) for p in dict.fromkeys((path, "/whoami"))]
    parts = urlsplit(resource)
    return TesseraAuthMiddleware(Starlette(routes=routes, lifespan=lifespan),
                                 TokenVerifier(config, jwks, feed),
                                 public_base=f"{parts.scheme}://{parts.netloc}")


def _url(value: str, what: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or \
            parts.fragment:
        raise CliError(f"{what} must be an http(s) URL without query or fragment: {value}",
                       USAGE)
    return value.rstrip("/") if what == "--issuer" else value


async def _serve(app: TesseraAuthMiddleware, host: str, port: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def cmd_demo_resource(args: argparse.Namespace) -> int:
    issuer = _url(args.issuer, "--issuer")
    host = f"[{args.host}]" if ":" in args.host else args.host
    resource = _url(args.resource or f"http://{host}:{args.port}/whoami", "--resource")
    scopes = tuple(dict.fromkeys(args.scope or ()))
    if args.poll <= 0:
        raise CliError("--poll must be positive", USAGE)
    app = build_app(issuer, resource, scopes=scopes, poll_interval=args.poll)
    print(f"demo resource {resource} on http://{host}:{args.port}\n"
          f"  issuer:             {issuer} (JWKS and revocation feed every {args.poll:g} s)\n"
          f"  metadata (RFC 9728): {metadata_url(app.verifier.config)}", flush=True)
    try:
        asyncio.run(_serve(app, args.host, args.port))
    except OSError as exc:  # the port is taken, the host is not this machine's
        raise CliError(f"cannot listen on {host}:{args.port}: {exc.strerror or exc}",
                       UNAVAILABLE) from None
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo-resource", help="run a demo resource server protected by the "
                       "resource-server toolkit (tokens checked locally, revocation feed)")
    p.add_argument("--issuer", required=True,
                   help="the tenant's issuer, e.g. http://127.0.0.1:8000/t/demo")
    p.add_argument("--resource", help="the resource's identifier: the aud its tokens carry "
                   "(default http://HOST:PORT/whoami); register it with `tessera resource add`")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100)
    p.add_argument("--scope", action="append", metavar="SCOPE",
                   help="a scope every request needs (repeat; default none)")
    p.add_argument("--poll", type=float, default=15.0, metavar="SECONDS",
                   help="revocation feed poll interval: the revocation staleness bound")
    p.set_defaults(func=cmd_demo_resource)

"""Give the app the TLS client certificate when Hypercorn terminates TLS.

Hypercorn 0.18 verifies client certificates (``ca_certs``, ``verify_mode``) but never hands
them to the application: ``hypercorn/protocol/http_stream.py`` builds every scope with
``"extensions": {}`` and no ``tls`` entry, and ``asyncio/tcp_server.py`` reads the
connection's ``ssl_object`` only for ALPN. So we reach in, at one point: the asyncio worker
(``hypercorn.asyncio.run.worker_serve``) makes one ``TCPServer(app, loop, config, context,
state, reader, writer)`` per accepted connection, looking the class up in its module at
connection time. ``install`` replaces that name with a subclass that reads the peer
certificate once from ``writer.get_extra_info("ssl_object")`` (the handshake is over when
asyncio calls back) and wraps the app for that connection so every request scope carries the
ASGI TLS extension (``scope["extensions"]["tls"]``, ``client_cert_chain`` = [leaf PEM]).
Plain-text connections and TLS connections without a client certificate get the app
unwrapped. Pinned to the Hypercorn version checked below (pyproject pins it too).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

log = logging.getLogger("tessera")
SUPPORTED_HYPERCORN = "0.18.0"
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class _WithTLSExtension:
    """Hypercorn's app-wrapper interface (``hypercorn.typing.AppWrapper``), for one
    connection whose client presented ``pem``."""

    def __init__(self, app: Any, pem: str, tls_version: int | None) -> None:
        self.app = app
        self.tls = {"server_cert": None, "client_cert_chain": [pem], "client_cert_name": None,
                    "client_cert_error": None, "tls_version": tls_version,
                    "cipher_suite": None}

    async def __call__(self, scope: Any, receive: Callable[..., Any], send: Callable[..., Any],
                       sync_spawn: Callable[..., Any], call_soon: Callable[..., Any]) -> None:
        if scope.get("type") in ("http", "websocket"):
            scope.setdefault("extensions", {})["tls"] = dict(self.tls)
        await self.app(scope, receive, send, sync_spawn, call_soon)


def wrap_for_connection(app: Any, writer: Any) -> Any:
    """``app`` itself, or ``app`` adding the TLS extension if the peer sent a certificate."""
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return app
    cert = ssl_object.getpeercert(binary_form=True)
    if not cert:
        return app
    return _WithTLSExtension(app, ssl.DER_cert_to_PEM_cert(cert),
                             _TLS_VERSIONS.get(ssl_object.version() or ""))


def install(*, strict: bool = True) -> bool:
    """Make Hypercorn's asyncio (and uvloop) worker fill the ASGI TLS extension. Idempotent.
    On a Hypercorn this was not written against: ``RuntimeError`` if ``strict``, else a
    warning and False (client certificates then never reach the app: mTLS fails closed)."""
    import hypercorn.asyncio.run as run_module
    from hypercorn.asyncio.tcp_server import TCPServer

    if getattr(run_module.TCPServer, "_tessera_tls", False):
        return True
    found = version("hypercorn")
    if found != SUPPORTED_HYPERCORN or run_module.TCPServer is not TCPServer:
        message = (f"TLS client certificates need Hypercorn {SUPPORTED_HYPERCORN} "
                   f"(found {found}): see broker/hypercorn_tls.py")
        if strict:
            raise RuntimeError(message)
        log.warning(message)
        return False

    class TLSExtensionTCPServer(TCPServer):
        _tessera_tls = True

        def __init__(self, app: Any, loop: Any, config: Any, context: Any, state: Any,
                     reader: Any, writer: Any) -> None:
            super().__init__(wrap_for_connection(app, writer), loop, config, context, state,
                             reader, writer)

    run_module.TCPServer = TLSExtensionTCPServer  # type: ignore[misc]
    return True

"""The one place an ``OAuthError`` becomes an HTTP response.

Token-endpoint style errors are JSON bodies (RFC 6749 §5.2) with ``Cache-Control: no-store``;
``invalid_client`` from HTTP Basic carries a ``Basic`` challenge (§5.2); resource-server errors
carry a ``WWW-Authenticate`` challenge (RFC 6750 §3, RFC 9449 §7.1) built by the caller.
"""

from __future__ import annotations

from adapters.errors import OAuthError
from broker import logs
from broker.json_response import JSONResponse

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(exc: OAuthError, *, status: int | None = None) -> JSONResponse:
    logs.note(error=exc.error)  # counted by the request middleware (broker.metrics)
    return JSONResponse(
        exc.body(), status_code=status or exc.status, headers={**NO_STORE, **exc.headers}
    )


def quote(value: str) -> str:
    """A quoted-string for an auth-param (RFC 9110 §11.2): no quotes or backslashes inside."""
    return '"' + value.replace("\\", "").replace('"', "'") + '"'


def challenge(scheme: str, params: dict[str, str]) -> str:
    inner = ", ".join(f"{k}={quote(v)}" for k, v in params.items() if v)
    return f"{scheme} {inner}" if inner else scheme

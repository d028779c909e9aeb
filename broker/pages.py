"""Plain server-rendered HTML pages (login chooser, consent, errors, logout): no JavaScript,
everything escaped, framing and scripts forbidden by the Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from html import escape

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from adapters.errors import OAuthError
from broker.runtime import Broker, TenantView

HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self' https: http:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;"
          "padding:0 1rem;color:#1d2330}button{font-size:1rem;padding:.5rem 1rem;margin:.25rem 0}"
          "li{margin:.3rem 0}.muted{color:#5b6473}")


def page(title: str, body: str, *, status: int = 200) -> HTMLResponse:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>")
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def error_page(error: str, description: str, *, status: int = 400) -> HTMLResponse:
    return page("Sign-in cannot continue", (
        f"<p>{escape(description or error)}</p>"
        f"<p class=muted>Error code: <code>{escape(error)}</code>. Return to the application "
        "and try again.</p>"), status=status)


def chooser(tenant_name: str, choices: Iterable[tuple[str, str]]) -> HTMLResponse:
    """``choices``: (display name, URL) of each upstream."""
    items = "".join(
        f"<li><form method=get action='{escape(url)}'><button>{escape(name)}</button></form></li>"
        if "?" not in url else
        f"<li><a href='{escape(url)}'>{escape(name)}</a></li>"
        for name, url in choices)
    return page(f"Sign in to {tenant_name}", f"<p>Choose your organisation's sign-in:</p>"
                                             f"<ul>{items}</ul>")


def consent(client_name: str, action: str, hidden: dict[str, str], scopes: Iterable[str],
            details: Iterable[str]) -> HTMLResponse:
    fields = "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                     for k, v in hidden.items())
    scope_items = "".join(f"<li>{escape(s)}</li>" for s in scopes) or "<li>sign you in</li>"
    detail_items = "".join(f"<li>{escape(d)}</li>" for d in details)
    detail_block = f"<p>and to:</p><ul>{detail_items}</ul>" if detail_items else ""
    return page("Allow access?", (
        f"<p><strong>{escape(client_name)}</strong> is asking to:</p><ul>{scope_items}</ul>"
        f"{detail_block}<form method=post action='{escape(action)}'>{fields}"
        "<button name=decision value=allow>Allow</button> "
        "<button name=decision value=deny>Deny</button></form>"))


def logout_confirm(tenant_name: str, action: str, hidden: dict[str, str],
                   confirm: str) -> HTMLResponse:
    """Asks before a logout nobody can vouch for (no ``id_token_hint``): the form POSTs back
    with the hidden fields (a CSRF token bound to the session among them)."""
    fields = "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                     for k, v in hidden.items())
    return page("Sign out?", (
        f"<p>Do you want to sign out of <strong>{escape(tenant_name)}</strong> at tessera?</p>"
        f"<form method=post action='{escape(action)}'>{fields}"
        f"<button name=logout value='{escape(confirm)}'>Sign out</button></form>"
        "<p class=muted>If you did not ask to sign out, close this page: you stay signed "
        "in.</p>"))


def logged_out() -> HTMLResponse:
    return page("Signed out", "<p>You are signed out of this organisation at tessera.</p>")


def tenant_page(
    handler: Callable[[Request, Broker, TenantView], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """A browser-facing endpoint's tenant, or the page for an unknown one."""
    async def run(request: Request) -> Response:
        broker: Broker = request.app.state.broker
        try:
            tenant = await broker.tenant(request.path_params["tenant"])
        except OAuthError:
            return error_page("not_found", "Unknown organisation.", status=404)
        return await handler(request, broker, tenant)

    return run

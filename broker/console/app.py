"""The console's routes: a page per section (GET), its forms (POST, each CSRF-checked, then
one admin action, then back to the page: 303, or the page showing a secret once), the audit
export, and the two static files.

    GET  /t/{tenant}/console[/{section}]          a page (no session: log in, then back)
    POST /t/{tenant}/console/{section}/{...}      a form (see ``broker.console.actions``)
    GET  /t/{tenant}/console/audit/export         the audit chain, JSON lines
    GET  /registry/console[?tenant=T]             registry administrators' way in: T's
                                                  console, partners section
    GET  /console/static/{console.css|console.js}
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from adapters.errors import OAuthError
from broker import pages
from broker.console import registry_entry, render, session
from broker.console.actions import ACTIONS
from broker.console.kit import Action, Done
from broker.console.views import REGISTRY_SECTIONS, SECTIONS, run
from broker.forms import read_form
from broker.runtime import Broker, TenantView

CONSOLE = "/t/{tenant}/console"
MAX_FORM_BYTES = 600 * 1024  # SAML metadata may be pasted
STATIC = {"console.css": "text/css", "console.js": "text/javascript"}
NOTICES = {"done": "Done.",
           "tested": "The test login went through: this browser is now signed in as the user "
                     "the IdP asserted (see the header).",
           "compromised": "The key is out of service: it left the JWKS, every token it signed "
                          "is refused, and another key signs now.",
           "registered": "The entity's configuration was fetched and verified: it waits below "
                         "as a pending registration.",
           "refreshed": "The partner's keys were read again: they changed (see the registry's "
                        "audit chain).",
           "unchanged": "The partner's keys were read again: nothing changed."}


async def section_page(broker: Broker, admin: session.Admin, section: str, *,
                       query: dict[str, str] | None = None, status: int = 200,
                       **extra: Any) -> Response:
    title, loader = SECTIONS[section]
    try:
        context = await loader(broker, admin, query or {})
    except OAuthError as exc:
        return render.page("console_refused.html", status=exc.status, tenant=admin.tenant,
                           message=exc.description or exc.error)
    offered = {k: v for k, v in SECTIONS.items() if admin.uses(k, REGISTRY_SECTIONS)}
    return render.page(f"{section or 'overview'}.html", status=status, admin=admin,
                       sections=offered, section=section, title=title,
                       base=session.home(admin.tenant), **context, **extra)


def _page(section: str) -> Callable[[Request], Awaitable[Response]]:
    @pages.tenant_page
    async def show(request: Request, broker: Broker, tenant: TenantView) -> Response:
        found = await session.signed_in(request, broker, tenant)
        if isinstance(found, Response):
            return found
        notice = NOTICES.get(request.query_params.get("notice", ""))
        return await section_page(broker, found, section, notice=notice, error=None,
                                  query=dict(request.query_params))

    return show


def _form(section: str, action: Action) -> Callable[[Request], Awaitable[Response]]:
    @pages.tenant_page
    async def submit(request: Request, broker: Broker, tenant: TenantView) -> Response:
        found = await session.signed_in(request, broker, tenant)
        if isinstance(found, Response):
            return found
        params = {k: v for k, v in request.path_params.items() if k != "tenant"}
        try:
            form = await read_form(request, MAX_FORM_BYTES)
            session.check_csrf(request, found, form.get("csrf"), broker.settings.base_url)
            shown = await action(broker, found, form, params)
        except OAuthError as exc:
            return await section_page(broker, found, section, status=exc.status,
                                      error=exc.description or exc.error, notice=None)
        if isinstance(shown, Response):  # somewhere else (a test login at an upstream)
            return shown
        if isinstance(shown, dict):  # a secret: shown in this answer only
            return await section_page(broker, found, section, notice=None, error=None,
                                      **shown)
        notice = shown.notice if isinstance(shown, Done) else "done"
        return RedirectResponse(f"{session.home(tenant)}/{section}?notice={notice}",
                                status_code=303, headers={"Cache-Control": "no-store"})

    return submit


@pages.tenant_page
async def export_audit(request: Request, broker: Broker, tenant: TenantView) -> Response:
    found = await session.signed_in(request, broker, tenant)
    if isinstance(found, Response):
        return found
    events = await run(broker, found, "export_audit")
    body = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
    return Response(body, media_type="application/x-ndjson", headers={
        **render.HEADERS,
        "Content-Disposition": f'attachment; filename="audit-{tenant.id}.jsonl"'})


async def static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        return Response(status_code=404)
    data = resources.files("broker.console").joinpath("static", name).read_bytes()
    return Response(data, media_type=STATIC[name], headers={
        "Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


def routes() -> list[Route]:
    out = [Route("/console/static/{name}", static, methods=["GET"]),
           Route(registry_entry.PATH, registry_entry.entry, methods=["GET"]),
           Route(CONSOLE + "/audit/export", export_audit, methods=["GET"])]
    for section in SECTIONS:
        out.append(Route(CONSOLE + (f"/{section}" if section else ""), _page(section),
                         methods=["GET"]))
    for (section, path), action in ACTIONS.items():
        out.append(Route(f"{CONSOLE}/{section}/{path}", _form(section, action),
                         methods=["POST"]))
    return out

"""``/registry/console``: the registry administrators' way into the console. A registry
administrator is a user (or admin client) of some tenant holding ``registry_admin``, and signs
in through that tenant's login, so the page only asks which organisation: ``?tenant=T`` sends
the browser (303) to T's console, partners section, where the session and login machinery of
every console page applies. A malformed name is a 400 and an unknown (or disabled)
organisation a 404, each the same page with the reason."""

from __future__ import annotations

from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from adapters.errors import OAuthError
from broker.admin.models.common import TenantName
from broker.console import render, session
from broker.forms import read_params
from broker.runtime import Broker

PATH = "/registry/console"
TENANT_NAME: TypeAdapter[str] = TypeAdapter(TenantName)  # the admin API's rule
MAX_QUERY = 1024


def _ask(*, status: int = 200, error: str | None = None, tenant: str = "") -> Response:
    return render.page("registry_console.html", status=status, error=error, tenant=tenant)


async def entry(request: Request) -> Response:
    broker: Broker = request.app.state.broker
    try:
        given = (await read_params(request, MAX_QUERY)).get("tenant")
    except OAuthError as exc:  # repeated, malformed or oversized query
        return _ask(status=400, error=f"The address could not be read: "
                    f"{exc.description or exc.error}.")
    if given is None:
        if "tenant" in request.query_params:
            return _ask(status=400, error="Enter the name of your organisation.")
        return _ask()
    name = given.strip().lower()
    try:
        TENANT_NAME.validate_python(name)
    except ValidationError:
        return _ask(status=400, tenant=given[:64], error=(
            "An organisation's name is 1 to 64 of a-z, 0-9 and '-' (not at either end), as "
            "in its sign-in address /t/<name>/."))
    try:
        tenant = await broker.tenant(name)
    except OAuthError:
        return _ask(status=404, tenant=name, error=f"There is no organisation {name!r} here "
                    "(or it is disabled). Check the name with your operator.")
    return RedirectResponse(f"{session.home(tenant)}/partners", status_code=303,
                            headers={"Cache-Control": "no-store"})

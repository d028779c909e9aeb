"""What the console's form actions share: their signature, the ``Done`` answer (back to the
page with a named notice) and the parsing of form fields into the admin models' shapes. A
field that cannot be parsed is an ``InvalidRequest`` naming it (a 400 page, never a 500)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from adapters.errors import InvalidRequest
from broker.console.session import Admin
from broker.console.views import run
from broker.forms import Form
from broker.runtime import Broker


@dataclass(frozen=True)
class Done:
    """The action is done: back to its page (303) with this notice (a key of the app's
    ``NOTICES``), instead of the plain "Done."."""

    notice: str


Answer = dict[str, Any] | Response | Done | None
Action = Callable[[Broker, Admin, Form, dict[str, str]], Awaitable[Answer]]


def verb_action(what: str, operation: str, verbs: tuple[str, ...], param: str,
                path_name: str | None = None) -> Action:
    """The form ``.../{path_name}/{verb}``: the admin operation ``{verb}_{operation}`` on the
    row the path names (passed as ``param``); any other verb is refused naming ``what``."""

    async def act(broker: Broker, admin: Admin, _f: Form, p: dict[str, str]) -> None:
        verb = p["verb"]
        if verb not in verbs:
            raise InvalidRequest(f"no {what} {verb!r}")
        await run(broker, admin, f"{verb}_{operation}", **{param: p[path_name or param]})

    return act


def words(value: str | None) -> list[str]:
    """Space- or comma-separated values."""
    return [w for w in (value or "").replace(",", " ").split() if w]


def without_suffix(url: str, suffix: str) -> str:
    """What an administrator pastes (an identifier, or a well-known URL under it) as the
    identifier: ``suffix`` and a trailing slash taken off."""
    url = url.strip()
    return url[: -len(suffix)] if url.endswith(suffix) else url.rstrip("/")


def whole_number(form: Form, name: str, label: str) -> int | None:
    """A field holding a whole number (empty: None)."""
    value = form.get(name)
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        raise InvalidRequest(f"{label}: a whole number")
    return int(text)


def pairs(value: str | None, label: str) -> dict[str, str]:
    """Lines of ``name = value`` (blank lines skipped) as a mapping."""
    out: dict[str, str] = {}
    for number, line in enumerate((value or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, target = line.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise InvalidRequest(f"{label}, line {number}: write name = value")
        out[name.strip()] = target.strip()
    return out


def checked(form: Form, *names: str) -> list[str]:
    """The checkboxes among ``names`` that are ticked."""
    return [n for n in names if form.get(n) == "on"]

"""Print the README's admin API table from the route table (``broker.admin.routes``), so the
README and the API cannot drift apart by hand: ``python scripts/admin_api_table.py``."""

from __future__ import annotations

from typing import Any, get_args, get_origin

from broker.admin.openapi import template
from broker.admin.routes import ROUTES


def _name(model: Any) -> str:
    if model is None:
        return ""
    if get_origin(model) is list:
        return f"[{get_args(model)[0].__name__}]"
    return str(model.__name__)


def main() -> None:
    print("| method | path (under `/admin/v1`) | what | body → answer |")
    print("|---|---|---|---|")
    for route in ROUTES:
        body = "" if route.request is None or route.request.__name__ == "Empty" else \
            f"`{route.request.__name__}` "
        path = template(route.path).removeprefix("/admin/v1")
        print(f"| {route.method} | `{path}` | {route.summary} | {body}→ "
              f"`{_name(route.response)}` {route.status} |")


if __name__ == "__main__":
    main()

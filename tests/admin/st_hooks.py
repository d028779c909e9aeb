"""Schemathesis hooks for ``test_admin_schemathesis`` (loaded through SCHEMATHESIS_HOOKS).

tessera fetches a SAML IdP's ``metadata_url`` as soon as an upstream is added or refreshed;
a generated URL would send the test server to a random host on the internet. Every such URL
is pointed at the loopback address, which the server's fetcher refuses before connecting (the
refusal is still exercised, the network is not).

Rotating the admin token (``/admin-token/rotate``) replaces the bearer the run sends: the
token a successful rotation answers is the one every later request carries (``AdminBearer``),
as an operator's tooling would. Only one previous token is kept, so with a fixed header the
second rotation would leave the rest of the run answered 401 (which hid every write behind
the admin edge's authentication check). The test passes the first token in
``TESSERA_ST_ADMIN_TOKEN``."""

from __future__ import annotations

import os
import threading
from typing import Any

import schemathesis

NOWHERE = "https://127.0.0.1/metadata"


def _no_fetch(body: Any) -> None:
    if not isinstance(body, dict):
        return
    if isinstance(body.get("metadata_url"), str):
        body["metadata_url"] = NOWHERE
    saml = body.get("saml")
    if isinstance(saml, dict) and isinstance(saml.get("metadata_url"), str):
        saml["metadata_url"] = NOWHERE


_token = {"current": os.environ.get("TESSERA_ST_ADMIN_TOKEN", "")}
_lock = threading.Lock()


@schemathesis.auth(refresh_interval=None)
class AdminBearer:
    """The admin bearer of the moment (see the module's docstring)."""

    def get(self, case: Any, ctx: Any) -> str:
        with _lock:
            return _token["current"]

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    _no_fetch(case.body)


@schemathesis.hook
def after_call(ctx: Any, case: Any, response: Any) -> None:
    if not str(getattr(case, "path", "")).endswith("/admin-token/rotate") \
            or response.status_code != 200:
        return
    with _lock:
        _token["current"] = response.json()["admin_token"]

"""Schemathesis hooks for ``test_admin_schemathesis`` (loaded through SCHEMATHESIS_HOOKS).

tessera fetches a SAML IdP's ``metadata_url`` as soon as an upstream is added or refreshed;
a generated URL would send the test server to a random host on the internet. Every such URL
is pointed at the loopback address, which the server's fetcher refuses before connecting (the
refusal is still exercised, the network is not).

Rotating the admin token (``/admin-token/rotate``) would leave the rest of the run with a
token that no longer works: a valid rotation keeps the run's token for at least an hour."""

from __future__ import annotations

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


def _keep_admin_token(case: Any) -> None:
    body = case.body
    if not str(getattr(case, "path", "")).endswith("/admin-token/rotate"):
        return
    if isinstance(body, dict) and type(body.get("overlap_seconds")) is int \
            and 0 <= body["overlap_seconds"] < 3600:
        body["overlap_seconds"] = 3600


@schemathesis.hook
def before_call(ctx: Any, case: Any, kwargs: Any) -> None:
    _no_fetch(case.body)
    _keep_admin_token(case)

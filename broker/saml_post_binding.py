"""The SAML HTTP-POST binding's page (Bindings §3.5.4, §3.5.5): a form that carries a
SAMLResponse (and RelayState) to a legacy app's registered ACS.

It works without JavaScript: the Continue button submits it. Where scripts run, a nonce-bound
inline script submits it at once; the page has its own Content-Security-Policy (the house pages
forbid scripts): ``script-src 'nonce-...'`` and ``form-action`` limited to the ACS's origin, so
even injected markup could not send the form anywhere else.
"""

from __future__ import annotations

import base64
import secrets
from html import escape
from urllib.parse import urlsplit

from starlette.responses import Response

from broker import pages


def post_page(acs: str, saml_response: bytes, relay_state: str) -> Response:
    nonce = secrets.token_urlsafe(16)
    fields = {"SAMLResponse": base64.b64encode(saml_response).decode()}
    if relay_state:
        fields["RelayState"] = relay_state
    inputs = "".join(f"<input type=hidden name='{escape(k)}' value='{escape(v)}'>"
                     for k, v in fields.items())
    response = pages.page("Signing you in", (
        f"<form method=post action='{escape(acs)}'>{inputs}<p>Continue to the application."
        "</p><button type=submit>Continue</button></form>"
        f"<script nonce='{nonce}'>document.forms[0].submit()</script>"))
    parts = urlsplit(acs)
    origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; "
        f"form-action {origin}; frame-ancestors 'none'")
    return response

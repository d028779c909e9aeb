"""URLs an administrator registers for tessera to call or send browsers to (webhooks, ACS URLs,
notification endpoints, metadata and JWKS locations): absolute ``https`` with a host, or
``http`` to a loopback host when the deployment allows it (development, tests; RFC 8252 §7.3
names the loopback hosts). Never ``file:``, ``javascript:``, ``data:`` or anything else.

Pure checks, no I/O: what a URL resolves to is judged again when it is fetched
(``registry.remote_keys`` guards every hop against private addresses).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_URL = 2048


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address((host or "").strip("[]")).is_loopback
    except ValueError:
        return False


def check_https_url(url: str, *, allow_http_loopback: bool = False,
                    max_length: int = MAX_URL) -> str:
    """``url`` if it is an absolute https URL with a host, no userinfo and no fragment (or
    http to a loopback host when ``allow_http_loopback``); ``ValueError`` saying why not."""
    if len(url) > max_length or any(c.isspace() or ord(c) < 0x20 for c in url):
        raise ValueError(f"a URL of at most {max_length} characters without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a malformed port
    except ValueError as exc:
        raise ValueError(f"not a URL ({exc})") from None
    del port
    if not parts.hostname or parts.username is not None or parts.password is not None:
        raise ValueError("an absolute URL with a host and no userinfo")
    if parts.fragment or "#" in url:
        raise ValueError("no fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_http_loopback and is_loopback(parts.hostname):
        return url
    raise ValueError("must be https" + (" (or http to a loopback host)"
                                        if allow_http_loopback else ""))

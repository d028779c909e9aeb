"""API keys: the format of tenant-issued keys for agents and services (pure; no storage).

A key reads ``tsk_<tenant>_<key_id>_<secret>``::

    tsk_acme_k3xq7v2m4p5rta6b_Q2hhbmdlIG1lIQ-8sZ3y0Lk9Jd7wYbX1nVfR5tPqAeM
    └┬┘ └┬─┘ └──────┬───────┘ └────────────────────┬────────────────────┘
  prefix tenant  key_id (public)              secret (43 chars)

* ``tsk`` ("tessera key") lets secret scanners and log filters recognise a key.
* ``tenant``: the issuing tenant's name (a-z, 0-9, '-'; never '_'), so a key presented at the
  wrong tenant is refused without a lookup.
* ``key_id``: 16 characters of lowercase base32 (80 random bits): the public handle of the
  key (primary key of its row, shown in listings, audit events and tokens as ``akid``).
* ``secret``: 32 random bytes, base64url without padding (43 characters; may hold '_' and '-').

Neither the tenant name nor the key id contains '_', so a key is split on its first three
underscores and the rest is the secret. Only a keyed hash of the whole key is stored
(``tenants.api_keys``); ``redact`` gives the form that may be displayed or logged.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass

PREFIX = "tsk"
KEY_ID_CHARS = 16
SECRET_BYTES = 32
SECRET_CHARS = 43  # base64url of 32 bytes, unpadded
MAX_LENGTH = len(PREFIX) + 1 + 64 + 1 + KEY_ID_CHARS + 1 + SECRET_CHARS

_TENANT = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
_KEY_ID = re.compile(rf"^[a-z2-7]{{{KEY_ID_CHARS}}}$")
_SECRET = re.compile(rf"^[A-Za-z0-9_-]{{{SECRET_CHARS}}}$")


class MalformedApiKey(ValueError):
    """The value is not an API key of this format (the message never repeats the value)."""


@dataclass(frozen=True)
class ParsedKey:
    tenant: str
    key_id: str
    secret: str

    @property
    def value(self) -> str:
        """The whole key, as issued (what the stored hash is computed over)."""
        return f"{PREFIX}_{self.tenant}_{self.key_id}_{self.secret}"

    @property
    def redacted(self) -> str:
        return f"{PREFIX}_{self.tenant}_{self.key_id}_…"

    def __repr__(self) -> str:  # never the secret, even in a traceback
        return f"ParsedKey({self.redacted!r})"


def is_key_id(value: str) -> bool:
    return bool(_KEY_ID.match(value))


def new_key_id() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def new_key(tenant: str) -> tuple[str, str, str]:
    """A fresh key for ``tenant``: (key_id, secret, the full key)."""
    if not _TENANT.match(tenant):
        raise MalformedApiKey("not a tenant name")
    key_id = new_key_id()
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")
    secret = secret.rstrip("=")
    return key_id, secret, ParsedKey(tenant, key_id, secret).value


def with_new_secret(tenant: str, key_id: str) -> tuple[str, str]:
    """A rotation: the same key id with a fresh secret; (secret, the full key)."""
    _, secret, _ = new_key(tenant)
    return secret, ParsedKey(tenant, key_id, secret).value


def parse(value: str) -> ParsedKey:
    """Split and check a presented key; ``MalformedApiKey`` on anything else."""
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        raise MalformedApiKey("not an API key (too long)")
    parts = value.split("_", 3)
    if len(parts) != 4 or parts[0] != PREFIX:
        raise MalformedApiKey(f"not an API key (expected {PREFIX}_<tenant>_<key id>_<secret>)")
    _, tenant, key_id, secret = parts
    if not _TENANT.match(tenant):
        raise MalformedApiKey("API key with a malformed tenant part")
    if not _KEY_ID.match(key_id):
        raise MalformedApiKey("API key with a malformed key id")
    if not _SECRET.match(secret):
        raise MalformedApiKey("API key with a malformed secret part")
    return ParsedKey(tenant, key_id, secret)


def redact(value: str) -> str:
    """What may be shown of a presented value: prefix, tenant and key id, never the secret."""
    try:
        return parse(value).redacted
    except MalformedApiKey:
        return f"{PREFIX}_…" if value.startswith(PREFIX + "_") else "(not an API key)"

"""Subjects from other trust domains stay namespaced by their issuer (RFC 9493 ``iss_sub``).

A tenant's own users have random ids (``secrets.token_urlsafe``: letters, digits, ``-`` and
``_``). A user asserted by another issuer (a partner's ID-JAG or SAML assertion, a peer
tenant's ID-JAG) never gets a local id: the access token's ``sub`` is a pairwise identifier
derived from (tenant, issuer, subject) — stable, so a resource server can key on it, and
unable to collide with a local user id because it contains a ``.`` — and ``sub_id`` keeps the
issuer and the subject as the issuer named them. Every check that keys on users (userinfo,
revocation by user or partner, cutoffs) therefore keys on issuer and subject together.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

FOREIGN_PREFIX = "x."  # local ids never contain "."


def foreign_sub(tenant_id: str, issuer: str, subject: str) -> str:
    """The pairwise ``sub`` tenant ``tenant_id`` gives ``subject`` of ``issuer``."""
    digest = hashlib.sha256(
        b"tessera foreign subject\x00" + tenant_id.encode() + b"\x00" + issuer.encode()
        + b"\x00" + subject.encode()).digest()
    return FOREIGN_PREFIX + base64.urlsafe_b64encode(digest[:24]).decode("ascii")


def sub_id(issuer: str, subject: str) -> dict[str, str]:
    """RFC 9493 §3.2.3 Issuer and Subject Identifier."""
    return {"format": "iss_sub", "iss": issuer, "sub": subject}


def foreign_claims(tenant_id: str, issuer: str, subject: str) -> dict[str, Any]:
    """``sub`` and ``sub_id`` of an access token for another issuer's user."""
    return {"sub": foreign_sub(tenant_id, issuer, subject), "sub_id": sub_id(issuer, subject)}


def is_foreign(claims: dict[str, Any]) -> bool:
    """Whether a token's subject came from another issuer (it then is no local user)."""
    sid = claims.get("sub_id")
    sub = claims.get("sub")
    return isinstance(sid, dict) or (isinstance(sub, str) and sub.startswith(FOREIGN_PREFIX))

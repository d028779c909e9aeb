"""Every value tessera keeps encrypted under the master key, and what each is bound to
(associated data): the one list a master-key rotation walks (``tenants.master_key_rotation``).

    signing_keys.private_blob          software-wrapped signing key   "<tenant>|<kid>" (bytes)
    webhook_secrets.sealed             a tenant's webhook secret      "webhook/<tenant>"
    webhook_secrets.previous_sealed    the previous one (overlap)     "webhook/<tenant>"
    upstreams.config.client_secret_sealed  an OIDC upstream's secret  "<tenant>/<upstream>"
    ciba_requests.notification_token_sealed  a CIBA ping/push token   "tessera ciba cnt v1|..."
    ciba_requests.context.auth_req_id_sealed  its auth_req_id         "tessera ciba id v1|..."
    deployment key_root:<key id>       the root of derived secrets    "tessera key root v1"

Hashes (client secrets, API keys) are not here: they are keyed by a pepper derived from the key
root, which a rotation carries over unchanged (``master_key_rotation``).
"""

from __future__ import annotations

UPSTREAM_SECRET = "client_secret_sealed"  # the key of an upstream's config holding its secret
CIBA_ID = "auth_req_id_sealed"  # the key of a CIBA request's context holding its auth_req_id
KEY_ROOT_CONTEXT = "tessera key root v1"


def webhook_context(tenant_id: str) -> str:
    return f"webhook/{tenant_id}"


def upstream_secret_context(tenant_id: str, name: str) -> str:
    return f"{tenant_id}/{name}"


def ciba_context(tenant_id: str, client_id: str, what: str) -> str:
    """``what``: ``cnt`` (the client notification token) or ``id`` (the auth_req_id)."""
    return f"tessera ciba {what} v1|{tenant_id}|{client_id}"

"""Routes of tenants (settings, webhook, keys, audit) and their OAuth clients."""

from __future__ import annotations

from broker.admin.models.clients import (
    ClientCreate,
    ClientOut,
    ClientPatch,
    ClientSecretRotation,
    ClientWithSecret,
)
from broker.admin.models.keys_audit import (
    AdminTokenOut,
    AdminTokenRotation,
    AuditEventOut,
    AuditReport,
    CompromiseOut,
    KeyCompromise,
    KeyOut,
    RotationOut,
)
from broker.admin.models.tenants import (
    SecretRotation,
    TenantCreate,
    TenantOut,
    TenantPatch,
    WebhookOut,
    WebhookPut,
)
from broker.admin.roles import OPERATOR_ONLY, READ, WRITE
from broker.admin.route import EXISTS, NOT_NOW, AdminRoute, C, T, route, status_route
from broker.admin.services import (
    clients,
    keys_audit,
    tenants,
    webhooks,
)

TENANTS: tuple[AdminRoute, ...] = (
    route("GET", "/tenants", "List tenants", "tenants",
          lambda c: tenants.list_tenants(c.broker), response=list[TenantOut],
          roles=OPERATOR_ONLY, name="list_tenants"),
    route("POST", "/tenants", "Create a tenant (keys and webhook secret made now)", "tenants",
          lambda c: tenants.create_tenant(c.broker, c.body), request=TenantCreate,
          response=TenantOut, status=201, creates=(("tenant", "id"),), conflict=EXISTS,
          roles=OPERATOR_ONLY, name="create_tenant"),
    route("GET", T, "Read a tenant", "tenants",
          lambda c: tenants.get_tenant(c.broker, c["tenant"]), response=TenantOut,
          roles=READ, name="get_tenant"),
    route("PATCH", T, "Change a tenant (merge patch; the merged settings are validated whole)",
          "tenants", lambda c: tenants.update_tenant(c.broker, c["tenant"], c.body),
          request=TenantPatch, response=TenantOut, roles=WRITE, name="update_tenant"),
    route("DELETE", T, "Archive a tenant: final; it answers nothing, its tokens are revoked, its "
          "rows and audit chain stay", "tenants",
          lambda c: tenants.archive_tenant(c.broker, c["tenant"]), response=TenantOut,
          roles=OPERATOR_ONLY, name="archive_tenant"),
    status_route("POST", T + "/disable", "Disable a tenant", "tenants", tenants.set_tenant_status,
                 "disabled", "tenant", response=TenantOut,
                 roles=OPERATOR_ONLY, name="disable_tenant"),
    status_route("POST", T + "/enable", "Enable a tenant", "tenants", tenants.set_tenant_status,
                 "active", "tenant", response=TenantOut, roles=OPERATOR_ONLY, name="enable_tenant"),
    route("GET", T + "/webhook", "Read the webhook (never the secret)", "tenants",
          lambda c: webhooks.get_webhook(c.broker, c["tenant"]), response=WebhookOut,
          roles=READ, name="get_webhook"),
    route("PUT", T + "/webhook", "Set the webhook URL (the answer shows the secret if it was "
          "never shown)", "tenants", lambda c: webhooks.put_webhook(c.broker, c["tenant"], c.body),
          request=WebhookPut, response=WebhookOut, roles=WRITE, name="put_webhook"),
    route("POST", T + "/webhook/rotate-secret", "Rotate the webhook secret (both sign during "
          "the overlap)", "tenants",
          lambda c: webhooks.rotate_webhook_secret(c.broker, c["tenant"], c.body),
          request=SecretRotation, response=WebhookOut, roles=WRITE, name="rotate_webhook_secret"),
    route("GET", T + "/keys", "List signing keys", "keys",
          lambda c: keys_audit.list_keys(c.broker, c["tenant"]), response=list[KeyOut],
          roles=READ, name="list_keys"),
    route("POST", T + "/keys/rotate", "Rotate signing keys now (409 until the next key has "
          "been published long enough)", "keys",
          lambda c: keys_audit.rotate_keys(c.broker, c["tenant"]), response=RotationOut,
          roles=WRITE, conflict=NOT_NOW, name="rotate_keys"),
    route("POST", "/admin-token/rotate", "Rotate the admin bearer token (shown once; the "
          "current one works for the overlap)", "keys",
          lambda c: keys_audit.rotate_admin_token(c.broker, c.body),
          request=AdminTokenRotation, response=AdminTokenOut, roles=OPERATOR_ONLY,
          name="rotate_admin_token"),
    route("POST", T + "/keys/{kid}/compromise", "Emergency rotation: the key leaves the JWKS "
          "and every token it signed is refused now; a new key signs at once", "keys",
          lambda c: keys_audit.compromise_key(c.broker, c["tenant"], c["kid"], c.body),
          request=KeyCompromise, response=CompromiseOut, roles=WRITE, conflict=NOT_NOW,
          name="compromise_key"),
    route("GET", T + "/audit/verify", "Verify the audit chain", "audit",
          lambda c: keys_audit.verify_audit(c.broker, c["tenant"]), response=AuditReport,
          roles=READ, name="verify_audit"),
    route("GET", T + "/audit/events", "Export the audit chain, oldest event first", "audit",
          lambda c: keys_audit.export_audit(c.broker, c["tenant"]),
          response=list[AuditEventOut], roles=READ, name="export_audit"),
)

CLIENTS: tuple[AdminRoute, ...] = (
    route("GET", T + "/clients", "List clients", "clients",
          lambda c: clients.list_clients(c.broker, c["tenant"]), response=list[ClientOut],
          roles=READ, name="list_clients"),
    route("POST", T + "/clients", "Register a client (the secret is in this answer only)",
          "clients", lambda c: clients.create_client(c.broker, c["tenant"], c.body),
          request=ClientCreate, response=ClientWithSecret, status=201,
          creates=(("client_id", "client_id"),), conflict=EXISTS, roles=WRITE,
          name="create_client"),
    route("GET", C, "Read a client", "clients",
          lambda c: clients.get_client(c.broker, c["tenant"], c["client_id"]),
          response=ClientOut, roles=READ, name="get_client"),
    route("PATCH", C, "Change a client (merge patch, checked whole)", "clients",
          lambda c: clients.update_client(c.broker, c["tenant"], c["client_id"], c.body),
          request=ClientPatch, response=ClientOut, roles=WRITE, name="update_client"),
    route("DELETE", C, "Delete a client: retired (final), its tokens and grants revoked",
          "clients", lambda c: clients.delete_client(c.broker, c["tenant"], c["client_id"]),
          response=ClientOut, roles=WRITE, name="delete_client"),
    route("POST", C + "/rotate-secret", "Rotate the client secret (the old one works for the "
          "overlap)", "clients",
          lambda c: clients.rotate_client_secret(c.broker, c["tenant"], c["client_id"], c.body),
          request=ClientSecretRotation, response=ClientWithSecret,
          roles=WRITE, name="rotate_client_secret"),
    status_route("POST", C + "/disable", "Disable a client", "clients", clients.set_client_status,
                 "disabled", "tenant", "client_id", response=ClientOut,
                 roles=WRITE, name="disable_client"),
    status_route("POST", C + "/enable", "Enable a client", "clients", clients.set_client_status,
                 "active", "tenant", "client_id", response=ClientOut,
                 roles=WRITE, name="enable_client"),
)

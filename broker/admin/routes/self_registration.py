"""Routes of partner self-registration, for the *registry admin* role (tag ``registry
admin``): invitations, registering an entity from its Entity Configuration, pending
registrations, approve / reject, refresh of a partner's keys, the registry's webhook."""

from __future__ import annotations

from broker.admin.models.self_registration import (
    Decision,
    EntityRegistration,
    InvitationCreate,
    InvitationOut,
    RegistrySettingsOut,
    RegistrySettingsPut,
    SelfRegisteredOut,
)
from broker.admin.roles import REGISTRY
from broker.admin.route import EXISTS, AdminRoute, P, route
from broker.admin.services import self_registration as sr

TAG = "registry admin"
INV = "/registry/invitations"

SELF_REGISTRATION: tuple[AdminRoute, ...] = (
    route("POST", INV, "Issue an invitation code (shown in this answer only)", TAG,
          lambda c: sr.issue_invitation(c.broker, c.body), request=InvitationCreate,
          response=InvitationOut, status=201, creates=(("invitation", "id"),),
          roles=REGISTRY, name="issue_invitation"),
    route("GET", INV, "List invitations (codes are never shown again)", TAG,
          lambda c: sr.list_invitations(c.broker), response=list[InvitationOut],
          roles=REGISTRY, name="list_invitations"),
    route("DELETE", INV + "/{invitation}", "Revoke an open invitation", TAG,
          lambda c: sr.revoke_invitation(c.broker, c["invitation"]), response=InvitationOut,
          roles=REGISTRY, name="revoke_invitation"),
    route("POST", "/registry/entities", "Register an entity from its OpenID Federation Entity "
          "Configuration (fetched, verified, pending)", TAG,
          lambda c: sr.register_entity(c.broker, c.body), request=EntityRegistration,
          response=SelfRegisteredOut, status=201, creates=(("partner", "id"),), conflict=EXISTS,
          roles=REGISTRY, name="register_entity"),
    route("GET", "/registry/pending", "List registrations waiting for a decision", TAG,
          lambda c: sr.list_pending(c.broker), response=list[SelfRegisteredOut],
          roles=REGISTRY, name="list_pending_registrations"),
    route("POST", P + "/approve", "Approve a pending registration (the partner becomes active)",
          TAG, lambda c: sr.approve_partner(c.broker, c["partner"], c.body), request=Decision,
          response=SelfRegisteredOut, roles=REGISTRY, name="approve_partner"),
    route("POST", P + "/reject", "Reject a pending registration (revoked: final)", TAG,
          lambda c: sr.reject_partner(c.broker, c["partner"], c.body), request=Decision,
          response=SelfRegisteredOut, roles=REGISTRY, name="reject_partner"),
    route("POST", P + "/refresh", "Re-read a self-registered partner's keys from its Entity "
          "Configuration now", TAG, lambda c: sr.refresh_partner(c.broker, c["partner"]),
          response=SelfRegisteredOut, roles=REGISTRY, name="refresh_partner"),
    route("GET", "/registry/settings", "Read the registry's settings", TAG,
          lambda c: sr.get_registry_settings(c.broker), response=RegistrySettingsOut,
          roles=REGISTRY, name="get_registry_settings"),
    route("PUT", "/registry/settings", "Set the registry's notification webhook (the signing "
          "secret is shown once)", TAG, lambda c: sr.put_registry_settings(c.broker, c.body),
          request=RegistrySettingsPut, response=RegistrySettingsOut,
          roles=REGISTRY, name="put_registry_settings"),
)

"""Routes of the trust registry: partners, trust links, managed connections."""

from __future__ import annotations

from broker.admin.models.connections import (
    ManagedConnectionOut,
    ManagedConnectionPatch,
    ManagedConnectionPut,
)
from broker.admin.models.registry import (
    DirectionsPut,
    PartnerCreate,
    PartnerOut,
    PartnerPatch,
    TrustLinkCreate,
    TrustLinkOut,
    TrustLinkPatch,
)
from broker.admin.roles import READ, REGISTRY, WRITE
from broker.admin.route import EXISTS, MC, AdminRoute, L, P, T, route, status_route
from broker.admin.services import (
    connections,
    partners,
    trust_links,
)

REGISTRY: tuple[AdminRoute, ...] = (
    route("GET", "/partners", "List partners of the registry", "registry",
          lambda c: partners.list_partners(c.broker), response=list[PartnerOut],
          roles=REGISTRY, name="list_partners"),
    route("POST", "/partners", "Register a partner (pending until activated)", "registry",
          lambda c: partners.register_partner(c.broker, c.body), request=PartnerCreate,
          response=PartnerOut, status=201, creates=(("partner", "id"),), conflict=EXISTS,
          roles=REGISTRY, name="register_partner"),
    route("GET", P, "Read a partner", "registry",
          lambda c: partners.get_partner(c.broker, c["partner"]), response=PartnerOut,
          roles=REGISTRY, name="get_partner"),
    route("PATCH", P, "Change a partner (display name, contact, keys, metadata, expiry)",
          "registry", lambda c: partners.update_partner(c.broker, c["partner"], c.body),
          request=PartnerPatch, response=PartnerOut, roles=REGISTRY, name="update_partner"),
    status_route("DELETE", P, "Delete a partner: revoked (final)", "registry",
                 partners.set_partner_status, "revoked", "partner", response=PartnerOut,
                 roles=REGISTRY, name="delete_partner"),
    *(status_route("POST", f"{P}/{verb}", f"{verb.capitalize()} a partner", "registry",
                   partners.set_partner_status, status, "partner", response=PartnerOut,
                   roles=REGISTRY, name=f"{verb}_partner")
      for verb, status in (("activate", "active"), ("suspend", "suspended"),
                           ("revoke", "revoked"))),
    route("GET", T + "/trust-links", "List trust links", "registry",
          lambda c: trust_links.list_trust_links(c.broker, c["tenant"]),
          response=list[TrustLinkOut], roles=READ, name="list_trust_links"),
    route("POST", T + "/trust-links", "Add a trust link (to a partner or a tenant)", "registry",
          lambda c: trust_links.add_trust_link(c.broker, c["tenant"], c.body),
          request=TrustLinkCreate, response=TrustLinkOut, status=201, creates=(("link", "id"),),
          conflict=EXISTS, roles=WRITE, name="add_trust_link"),
    route("GET", L, "Read a trust link", "registry",
          lambda c: trust_links.get_trust_link(c.broker, c["tenant"], c["link"]),
          response=TrustLinkOut, roles=READ, name="get_trust_link"),
    route("PATCH", L, "Change a trust link (directions, scope ceiling, expiry)", "registry",
          lambda c: trust_links.update_trust_link(c.broker, c["tenant"], c["link"], c.body),
          request=TrustLinkPatch, response=TrustLinkOut, roles=WRITE, name="update_trust_link"),
    status_route("DELETE", L, "Delete a trust link: revoked (final)", "registry",
                 trust_links.set_trust_link_status, "revoked", "tenant", "link",
                 response=TrustLinkOut, roles=WRITE, name="delete_trust_link"),
    route("PUT", L + "/directions", "Set a trust link's directions", "registry",
          lambda c: trust_links.set_trust_link_directions(c.broker, c["tenant"], c["link"],
                                                          c.body),
          request=DirectionsPut, response=TrustLinkOut,
          roles=WRITE, name="set_trust_link_directions"),
    *(status_route("POST", f"{L}/{verb}", f"{verb.capitalize()} a trust link", "registry",
                   trust_links.set_trust_link_status, status, "tenant", "link",
                   response=TrustLinkOut, roles=WRITE, name=f"{verb}_trust_link")
      for verb, status in (("suspend", "suspended"), ("resume", "active"),
                           ("revoke", "revoked"))),
    route("GET", T + "/managed-connections", "List managed connections", "managed connections",
          lambda c: connections.list_managed_connections(c.broker, c["tenant"]),
          response=list[ManagedConnectionOut], roles=READ, name="list_managed_connections"),
    route("PUT", T + "/managed-connections", "Create or replace the managed connection of "
          "(client_id, audience)", "managed connections",
          lambda c: connections.put_managed_connection(c.broker, c["tenant"], c.body),
          request=ManagedConnectionPut, response=ManagedConnectionOut,
          creates=(("client_id", "client_id"), ("audience", "audience")),
          roles=WRITE, name="put_managed_connection"),
    route("GET", MC, "Read a managed connection (audience percent-encoded)",
          "managed connections", lambda c: connections.get_managed_connection(
              c.broker, c["tenant"], c["client_id"], c["audience"]),
          response=ManagedConnectionOut, roles=READ, name="get_managed_connection"),
    route("PATCH", MC, "Change a managed connection", "managed connections",
          lambda c: connections.update_managed_connection(
              c.broker, c["tenant"], c["client_id"], c["audience"], c.body),
          request=ManagedConnectionPatch, response=ManagedConnectionOut,
          roles=WRITE, name="update_managed_connection"),
    route("DELETE", MC, "Delete a managed connection", "managed connections",
          lambda c: connections.delete_managed_connection(
              c.broker, c["tenant"], c["client_id"], c["audience"]),
          response=ManagedConnectionOut, roles=WRITE, name="delete_managed_connection"),
)

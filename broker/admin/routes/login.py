"""Routes of a tenant's login configuration: upstream IdPs, RAR detail types, users."""

from __future__ import annotations

from broker.admin.models.keys_audit import (
    DetailTypeOut,
    DetailTypePut,
)
from broker.admin.models.runtime import (
    ReasonBody,
    UserOut,
    UserStatusOut,
)
from broker.admin.models.upstreams import (
    MetadataRefresh,
    UpstreamCreate,
    UpstreamOut,
    UpstreamPatch,
)
from broker.admin.roles import READ, WRITE
from broker.admin.route import EXISTS, AdminRoute, T, U, route, status_route
from broker.admin.services import (
    agents,
    keys_audit,
    upstreams,
)

LOGIN: tuple[AdminRoute, ...] = (
    route("GET", T + "/upstreams", "List upstream IdPs", "upstreams",
          lambda c: upstreams.list_upstreams(c.broker, c["tenant"]), response=list[UpstreamOut],
          roles=READ, name="list_upstreams"),
    route("POST", T + "/upstreams", "Add an upstream IdP (OIDC or SAML)", "upstreams",
          lambda c: upstreams.create_upstream(c.broker, c["tenant"], c.body),
          request=UpstreamCreate, response=UpstreamOut, status=201,
          creates=(("upstream", "name"),), conflict=EXISTS, roles=WRITE,
          name="create_upstream"),
    route("GET", U, "Read an upstream IdP", "upstreams",
          lambda c: upstreams.get_upstream(c.broker, c["tenant"], c["upstream"]),
          response=UpstreamOut, roles=READ, name="get_upstream"),
    route("PATCH", U, "Change an upstream IdP (display name, domains, mapping, settings, "
          "secret)", "upstreams",
          lambda c: upstreams.update_upstream(c.broker, c["tenant"], c["upstream"], c.body),
          request=UpstreamPatch, response=UpstreamOut, roles=WRITE, name="update_upstream"),
    route("DELETE", U, "Delete an upstream IdP (tombstone: its users unlinked, sessions ended)",
          "upstreams", lambda c: upstreams.delete_upstream(c.broker, c["tenant"], c["upstream"]),
          response=UpstreamOut, roles=WRITE, name="delete_upstream"),
    route("POST", U + "/refresh-metadata", "Refresh a SAML IdP's metadata (XML, URL, or the "
          "stored URL)", "upstreams",
          lambda c: upstreams.refresh_metadata(c.broker, c["tenant"], c["upstream"], c.body),
          request=MetadataRefresh, response=UpstreamOut,
          roles=WRITE, name="refresh_upstream_metadata"),
    *(status_route("POST", f"{U}/{verb}", f"{verb.capitalize()} an upstream IdP", "upstreams",
                   upstreams.set_upstream_status, status, "tenant", "upstream",
                   response=UpstreamOut, roles=WRITE, name=f"{verb}_upstream")
      for verb, status in (("disable", "disabled"), ("enable", "active"))),
    route("GET", T + "/authorization-details-types", "List RAR authorization_details types",
          "authorization details", lambda c: keys_audit.list_detail_types(c.broker, c["tenant"]),
          response=list[DetailTypeOut], roles=READ, name="list_detail_types"),
    route("POST", T + "/authorization-details-types", "Register a RAR type and its JSON Schema "
          "(replaces one of the same type)", "authorization details",
          lambda c: keys_audit.register_detail_type(c.broker, c["tenant"], c.body),
          request=DetailTypePut, response=DetailTypeOut, status=201,
          roles=WRITE, name="register_detail_type"),
    route("PUT", T + "/authorization-details-types", "Register or replace a RAR type and its "
          "JSON Schema", "authorization details",
          lambda c: keys_audit.register_detail_type(c.broker, c["tenant"], c.body),
          request=DetailTypePut, response=DetailTypeOut, roles=WRITE, name="put_detail_type"),
    route("GET", T + "/users", "List users (created by logins)", "users",
          lambda c: agents.list_users(c.broker, c["tenant"]), response=list[UserOut],
          roles=READ, name="list_users"),
    *(route("POST", f"{T}/users/{{sub}}/{verb}", f"{verb.capitalize()} a user", "users",
            lambda c, status=status: agents.set_user_status(
                c.broker, c["tenant"], c["sub"], status, c.body.reason),
            request=ReasonBody, response=UserStatusOut, roles=WRITE, name=f"{verb}_user")
      for verb, status in (("disable", "disabled"), ("enable", "active"))),
)

"""The signed revocation list for resource servers that validate tokens locally."""

from __future__ import annotations

from adapters import jose
from tests import admin_ops as ops
from tests.broker.helpers import jwt_parts
from tests.broker.runtime_helpers import access_token, admin, new_user, user_grant
from tests.conftest import new_client, new_tenant
from tests.flows.test_id_jag import domains  # noqa: F401


async def _feed(http, tenant_issuer):
    r = await http.get(f"{tenant_issuer}/revocations")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/jwt")
    assert "max-age=" in r.headers["cache-control"]
    jwks = (await http.get(f"{tenant_issuer}/jwks")).json()["keys"]

    def key_for(header):
        return next(jose.import_public_jwk(k) for k in jwks if k["kid"] == header["kid"])

    claims = jose.verify_jws(r.text, key_for, typ="revocation-list+jwt").claims
    assert claims["iss"] == tenant_issuer and claims["exp"] > claims["iat"]
    return claims


async def test_feed_lists_what_is_revoked(http, broker):
    tenant = await new_tenant(broker)
    agent, other, suspended = [await new_client(broker, tenant) for _ in range(3)]
    empty = await _feed(http, agent.issuer)
    assert empty["jtis"] == [] and empty["cutoffs"] == [] and empty["inactive_clients"] == []
    held = await access_token(http, agent)
    assert (await http.post(f"{agent.issuer}/revoke", data={"token": held},
                            auth=agent.basic)).status_code == 200
    sub = await new_user(broker, tenant)
    grant_id, _ = await user_grant(broker, agent, sub)
    for body in ({"by": "grant", "value": grant_id}, {"by": "agent", "value": other.client_id},
                 {"by": "user", "value": sub}):
        r = await admin(http, "POST", f"/tenants/{tenant}/revoke", body)
        assert r.status_code == 200, r.text
    r = await admin(http, "POST", f"/tenants/{tenant}/agents/{suspended.client_id}/suspend")
    assert r.status_code == 200
    claims = await _feed(http, agent.issuer)
    assert claims["jtis"] == [jwt_parts(held)[1]["jti"]]
    assert claims["grants"] == [grant_id]
    cutoffs = {(c["kind"], c["subject"]) for c in claims["cutoffs"]}
    assert cutoffs == {("client", other.client_id), ("user", sub)}
    assert claims["inactive_clients"] == [suspended.client_id]
    assert (await http.get(f"{broker.issuer('ghost')}/revocations")).status_code == 404


async def test_feed_lists_inactive_issuers(http, broker, domains):  # noqa: F811
    d = domains
    assert (await _feed(http, d.pricing_issuer))["inactive_issuers"] == []
    await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "suspended")
    assert (await _feed(http, d.pricing_issuer))["inactive_issuers"] == [d.acme_issuer]

"""A SAML assertion signed by a compromised key is refused, even where the key's certificate
came in through metadata another tenant imported: tenant B trusts tenant A's SAML IdP metadata
(as a partner's ``saml_idp_metadata``); once A's key is compromised, B refuses assertions
signed by it at the SAML bearer grant on the next request, while A's metadata still lists the
remaining keys."""

from __future__ import annotations

import base64
import secrets

from adapters.saml_issue import NAMEID_FORMATS, Subject, assertion_bytes, issue_assertion
from broker import legacy_saml
from broker.grants.saml2_bearer import SAML2_BEARER
from tests import admin_ops as ops
from tests.conftest import new_client, new_tenant
from tests.dpop_client import new_key, public_jwk


def _b64url(xml: bytes) -> str:
    return base64.urlsafe_b64encode(xml).rstrip(b"=").decode()


async def test_assertion_by_compromised_key_refused_through_imported_metadata(broker, http):
    idp_tenant = await new_tenant(broker)
    rp_tenant = await new_tenant(broker)
    idp_view, rp_view = await broker.tenant(idp_tenant), await broker.tenant(rp_tenant)
    metadata = (await http.get(f"{idp_view.issuer}/saml/idp/metadata")).text
    tag = secrets.token_hex(4)
    partner = await ops.register_partner(
        broker, issuer=f"https://partner-{tag}.example", display_name="Tenant A as partner",
        jwks={"keys": [public_jwk(new_key())]}, metadata={"saml_idp_metadata": metadata})
    await ops.set_partner_status(broker, partner["id"], "active")
    await ops.add_trust_link(broker, rp_tenant, partner_id=partner["id"],
                             scope_ceiling=["read"], accept=True)
    client = await new_client(broker, rp_tenant)
    key = await legacy_saml.idp_key(broker, idp_view)
    token_url = f"{rp_view.issuer}/token"

    def assertion(name: str) -> str:
        signed = issue_assertion(
            key, Subject(name, NAMEID_FORMATS["persistent"], {"mail": [f"{name}@a.example"]}),
            issuer=legacy_saml.idp_entity_id(idp_view), audience=rp_view.issuer,
            now=broker.clock.now(), lifetime=300, recipient=token_url)
        return _b64url(assertion_bytes(signed))

    first, second = assertion("alice"), assertion("bob")  # both signed by A's active key

    async def present(value: str):
        return await http.post(token_url, data={"grant_type": SAML2_BEARER, "assertion": value},
                               auth=client.basic)

    r = await present(first)
    assert r.status_code == 200, r.text
    await ops.compromise_key(broker, idp_tenant, (await broker.keys.raw_signer(idp_tenant)).kid)
    r = await present(second)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert "compromised" in r.json()["error_description"] \
        or "does not verify" in r.json()["error_description"]
    # a new assertion by A's new active key verifies once B trusts A's current metadata
    fresh = await legacy_saml.idp_key(broker, idp_view)
    assert fresh.certificate != key.certificate

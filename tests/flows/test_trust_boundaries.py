"""Identity never crosses a trust domain under another issuer's name (issue 10, findings 1-6),
tried as an attacker would, over HTTP against the real app:

1. a link that lets acme *send* identity to pricing does not make acme *accept* pricing's
   tokens, and acme never re-issues another issuer's user as its own;
2. a partner asserting ``sub`` = a local user's id neither reads nor becomes that user;
3. on-behalf-of keeps ``sub_id``: suspending the trust or revoking the partner ends the
   derived token too;
4. on-behalf-of keeps the subject token's sender constraint (DPoP key, TLS certificate);
5. jwt-bearer scopes stay within the redeeming client's registered scopes;
6. a trusted partner's SAML assertion is keyed by the partner's issuer and lives until the
   trust in it ends.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from adapters import subjects
from adapters.saml_assertion import build_assertion, sign
from broker import id_jag
from broker.app import create_app
from broker.grants.saml2_bearer import SAML2_BEARER
from broker.runtime import Broker, TenantView
from tenants import users
from tenants.scope import tenant_scope
from tenants.settings import TenantSettings
from tests import admin_ops as ops
from tests.broker.helpers import counts, jwt_parts, last_event
from tests.conftest import BASE_URL, OffsetClock, TestClient, new_client, new_tenant
from tests.dpop_client import make_proof, new_key, public_jwk
from tests.mtls_pki import SPIFFE_ID, make_pki

API = "https://api.pricing.example"
TX = id_jag.TOKEN_EXCHANGE
PKI = make_pki()
PROXY = ("10.9.8.7", 44321)


@dataclass
class Pair:
    acme: str
    pricing: str
    agent: TestClient  # at acme
    remote: TestClient  # the agent's client at pricing
    link_at_pricing: str

    @property
    def acme_issuer(self) -> str:
        return self.agent.issuer


async def pair(broker: Broker, *, remote_scopes: list[str] | None = None,
               rules: dict[str, str] | None = None, ceiling: list[str] | None = None) -> Pair:
    """acme sends identity to pricing; pricing accepts acme's ID-JAGs."""
    acme, pricing = await new_tenant(broker), await new_tenant(broker)
    agent = await new_client(broker, acme, scopes=[], audiences=[])
    remote = await new_client(broker, pricing, audiences=[API],
                              scopes=remote_scopes if remote_scopes is not None
                              else ["openid", "read", "write"])
    await ops.add_trust_link(broker, acme, peer_tenant=pricing, send=True)
    link = await ops.add_trust_link(broker, pricing, peer_tenant=acme, accept=True,
                                    scope_ceiling=ceiling)
    await ops.put_managed_connection(
        broker, acme, client_id=agent.client_id, audience=broker.issuer(pricing),
        rules=rules or {"openid": "grant", "read": "grant", "write": "grant"},
        remote_client_id=remote.client_id, resources=[API])
    return Pair(acme, pricing, agent, remote, link["id"])


async def id_token_of(broker: Broker, tenant: str, client_id: str, subject: str) -> str:
    view = TenantView(tenant, broker.issuer(tenant), TenantSettings())
    return await id_jag.mint_id_token(broker, view, subject=subject, client_id=client_id)


async def id_jag_for(http: httpx.AsyncClient, broker: Broker, p: Pair, *, subject: str = "alice",
                     scope: str = "openid read") -> str:
    r = await http.post(p.agent.token_url, auth=p.agent.basic, data={
        "grant_type": TX, "requested_token_type": id_jag.ID_JAG,
        "audience": broker.issuer(p.pricing), "scope": scope,
        "subject_token_type": id_jag.ID_TOKEN,
        "subject_token": await id_token_of(broker, p.acme, p.agent.client_id, subject)})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def redeem(http: httpx.AsyncClient, client: TestClient, assertion: str,
                 **extra: str) -> httpx.Response:
    return await http.post(client.token_url, auth=client.basic, data={
        "grant_type": id_jag.JWT_BEARER, "assertion": assertion, **extra})


async def introspect(http: httpx.AsyncClient, client: TestClient, token: str) -> dict:
    r = await http.post(f"{client.issuer}/introspect", data={"token": token},
                        auth=client.basic)
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- 1. direction ---------------------------------------------------------------------------

async def test_sending_to_a_peer_is_not_accepting_from_it(http, broker):
    """acme may send to pricing; pricing may send to acme. Neither accepts the other's ID-JAGs
    until it says so: an outbound link is not inbound trust."""
    p = await pair(broker)
    back = await new_client(broker, p.acme, scopes=["read"], audiences=[])
    pricing_agent = await new_client(broker, p.pricing, scopes=[], audiences=[])
    # pricing's link to acme exists (accept): open it to send as well
    links = await ops.list_trust_links(broker, p.pricing)
    await ops.set_trust_link_directions(broker, p.pricing, links[0]["id"], send=True)
    await ops.put_managed_connection(
        broker, p.pricing, client_id=pricing_agent.client_id, audience=p.acme_issuer,
        rules={"read": "grant"}, remote_client_id=back.client_id)
    r = await http.post(pricing_agent.token_url, auth=pricing_agent.basic, data={
        "grant_type": TX, "requested_token_type": id_jag.ID_JAG, "audience": p.acme_issuer,
        "scope": "read", "subject_token_type": id_jag.ID_TOKEN,
        "subject_token": await id_token_of(broker, p.pricing, pricing_agent.client_id, "bob")})
    assert r.status_code == 200, r.text
    jag = r.json()["access_token"]
    # acme's link to pricing only sends: pricing's ID-JAG is refused there
    before = await counts(broker, p.acme)
    r = await redeem(http, back, jag)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text
    assert "does not accept" in r.json()["error_description"]
    after = await counts(broker, p.acme)
    assert after["replay_records"] == before["replay_records"]
    assert after["audit_events"] == before["audit_events"] + 1
    # and an accept-only link does not let acme send: close pricing's send again
    await ops.set_trust_link_directions(broker, p.pricing, links[0]["id"], send=False)
    r = await http.post(pricing_agent.token_url, auth=pricing_agent.basic, data={
        "grant_type": TX, "requested_token_type": id_jag.ID_JAG, "audience": p.acme_issuer,
        "scope": "read", "subject_token_type": id_jag.ID_TOKEN,
        "subject_token": await id_token_of(broker, p.pricing, pricing_agent.client_id, "bob")})
    assert r.status_code == 400 and r.json()["error"] == "invalid_target", r.text


async def test_idp_never_launders_a_peer_identity(http, broker):
    """The attack of finding 1: with acme -> pricing (send), an ID token *issued by pricing*
    presented at acme must not come back as an acme ID-JAG for pricing's subject."""
    p = await pair(broker)
    forged = await id_token_of(broker, p.pricing, p.agent.client_id, "victim-at-acme")
    before = await counts(broker, p.acme)
    r = await http.post(p.agent.token_url, auth=p.agent.basic, data={
        "grant_type": TX, "requested_token_type": id_jag.ID_JAG,
        "audience": broker.issuer(p.pricing), "scope": "read",
        "subject_token_type": id_jag.ID_TOKEN, "subject_token": forged})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    after = await counts(broker, p.acme)
    assert after["audit_events"] == before["audit_events"] + 1
    assert after["replay_records"] == before["replay_records"]
    event = await last_event(broker, p.acme)
    assert event.action == "token.refused" and event.detail["error"] == "invalid_request"


# -- 2. a partner's sub is not a local user -------------------------------------------------

async def test_partner_sub_cannot_name_a_local_user(http, broker):
    p = await pair(broker)
    async with tenant_scope(broker.sessions, p.pricing) as scope:
        local = await users.link(scope, "corp", users.Profile(
            subject="carol-upstream", email="carol@pricing.example", name="Carol"),
            broker.clock.now())
        local_id = local.id
    # acme asserts pricing's local user id as its own user's sub
    jag = await id_jag_for(http, broker, p, subject=local_id)
    r = await redeem(http, p.remote, jag)
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    _, claims = jwt_parts(token)
    assert claims["sub"] != local_id
    assert claims["sub"] == subjects.foreign_sub(p.pricing, p.acme_issuer, local_id)
    assert claims["sub_id"] == {"format": "iss_sub", "iss": p.acme_issuer, "sub": local_id}
    # userinfo does not answer with the local user's claims
    r = await http.get(f"{p.remote.issuer}/userinfo",
                       headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token", r.text
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "carol" not in r.text.lower()
    # revoking the local user leaves the partner's user alone, and the other way round
    await ops.revoke(broker, p.pricing, "user", local_id, "test")
    assert (await introspect(http, p.remote, token))["active"] is True
    await ops.revoke(broker, p.pricing, "user", local_id, "test", issuer=p.acme_issuer)
    assert (await introspect(http, p.remote, token))["active"] is False


async def test_revoke_foreign_user_by_issuer_is_validated(http, broker):
    p = await pair(broker)
    from adapters.errors import InvalidRequest
    with pytest.raises(InvalidRequest):
        await ops.revoke(broker, p.pricing, "agent", p.remote.client_id, issuer=p.acme_issuer)


# -- 3. on-behalf-of keeps sub_id -----------------------------------------------------------

async def test_on_behalf_of_of_a_partner_user_ends_with_the_trust(http, broker):
    p = await pair(broker)
    tool = await new_client(broker, p.pricing, scopes=["read"],
                            audiences=[API, "https://tool.pricing.example"])
    r = await redeem(http, p.remote, await id_jag_for(http, broker, p))
    original = r.json()["access_token"]
    r = await http.post(tool.token_url, auth=tool.basic, data={
        "grant_type": TX, "subject_token": original, "subject_token_type": id_jag.ACCESS_TOKEN,
        "scope": "read", "resource": "https://tool.pricing.example"})
    assert r.status_code == 200, r.text
    derived = r.json()["access_token"]
    _, o_claims = jwt_parts(original)
    _, d_claims = jwt_parts(derived)
    assert d_claims["sub"] == o_claims["sub"] and d_claims["sub_id"] == o_claims["sub_id"]
    assert d_claims["act"] == {"sub": tool.client_id, "act": {"sub": p.remote.client_id}}
    assert (await introspect(http, tool, derived))["active"] is True
    await ops.set_trust_link_status(broker, p.pricing, p.link_at_pricing, "suspended")
    assert (await introspect(http, tool, derived))["active"] is False
    await ops.set_trust_link_status(broker, p.pricing, p.link_at_pricing, "active")
    assert (await introspect(http, tool, derived))["active"] is True
    await ops.revoke(broker, p.pricing, "partner", p.acme_issuer, "test")
    assert (await introspect(http, tool, derived))["active"] is False
    assert (await introspect(http, p.remote, original))["active"] is False


# -- 4. on-behalf-of keeps the sender constraint --------------------------------------------

async def test_on_behalf_of_a_dpop_bound_token_needs_its_key(http, broker, tenant):
    owner = await new_client(broker, tenant, scopes=["read"], audiences=["https://a.example"])
    other = await new_client(broker, tenant, scopes=["read"],
                             audiences=["https://a.example", "https://b.example"])
    key = new_key()
    r = await http.post(owner.token_url, auth=owner.basic, data={
        "grant_type": "client_credentials", "scope": "read"},
        headers={"DPoP": make_proof(key, htm="POST", htu=owner.token_url)})
    bound = r.json()["access_token"]
    form = {"grant_type": TX, "subject_token": bound, "subject_token_type": id_jag.ACCESS_TOKEN,
            "resource": "https://b.example"}
    for proof_key in (None, new_key()):
        headers = ({"DPoP": make_proof(proof_key, htm="POST", htu=other.token_url)}
                   if proof_key else {})
        before = await counts(broker, tenant)
        r = await http.post(other.token_url, auth=other.basic, data=form, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert "DPoP-bound" in r.json()["error_description"]
        after = await counts(broker, tenant)
        assert after["replay_records"] == before["replay_records"]
        assert after["audit_events"] == before["audit_events"] + 1
    r = await http.post(other.token_url, auth=other.basic, data=form,
                        headers={"DPoP": make_proof(key, htm="POST", htu=other.token_url)})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    _, claims = jwt_parts(r.json()["access_token"])
    assert claims["cnf"] == jwt_parts(bound)[1]["cnf"]


@pytest.fixture
async def via_proxy(broker: Broker) -> AsyncIterator[httpx.AsyncClient]:
    """The app behind a TLS-terminating proxy whose Client-Cert header it believes."""
    proxied = Broker.build(broker.settings.replace(trusted_proxies=("10.0.0.0/8",)),
                           clock=OffsetClock())
    app = create_app(proxied, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=PROXY),
                                 base_url=BASE_URL) as client:
        yield client
    await proxied.close()


async def test_on_behalf_of_a_certificate_bound_token_needs_its_certificate(via_proxy, broker,
                                                                          tenant):
    owner = await new_client(broker, tenant, auth_method="tls_client_auth",
                             tls_client_auth_san_uri=SPIFFE_ID, scopes=["read"],
                             audiences=["https://a.example"],
                             tls_client_certificate_bound_access_tokens=True)
    other = await new_client(broker, tenant, scopes=["read"],
                             audiences=["https://a.example", "https://b.example"])
    r = await via_proxy.post(owner.token_url, data={
        "grant_type": "client_credentials", "client_id": owner.client_id},
        headers={"Client-Cert": PKI.spiffe.header})
    assert r.status_code == 200, r.text
    bound = r.json()["access_token"]
    form = {"grant_type": TX, "subject_token": bound, "subject_token_type": id_jag.ACCESS_TOKEN,
            "resource": "https://b.example"}
    for cert in (None, PKI.other):
        headers = {"Client-Cert": cert.header} if cert else {}
        r = await via_proxy.post(other.token_url, auth=other.basic, data=form, headers=headers)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert "certificate" in r.json()["error_description"]
    r = await via_proxy.post(other.token_url, auth=other.basic, data=form,
                             headers={"Client-Cert": PKI.spiffe.header})
    assert r.status_code == 200, r.text
    _, claims = jwt_parts(r.json()["access_token"])
    assert claims["cnf"] == {"x5t#S256": PKI.spiffe.x5t}


# -- 5. jwt-bearer scopes are within the client's -------------------------------------------

async def test_jwt_bearer_scope_within_the_redeeming_clients_scopes(http, broker):
    p = await pair(broker, remote_scopes=["read"],
                   rules={"read": "grant", "admin": "grant", "superuser": "grant"})
    jag = await id_jag_for(http, broker, p, scope="read admin superuser")
    assert jwt_parts(jag)[1]["scope"] == "read admin superuser"  # no ceiling at pricing
    r = await redeem(http, p.remote, jag)
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    assert jwt_parts(r.json()["access_token"])[1]["scope"] == "read"
    # a client registered for none of them gets nothing at all
    q = await pair(broker, remote_scopes=["write"], rules={"admin": "grant"})
    before = await counts(broker, q.pricing)
    r = await redeem(http, q.remote, await id_jag_for(http, broker, q, scope="admin"))
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope", r.text
    after = await counts(broker, q.pricing)
    assert after["replay_records"] == before["replay_records"]
    assert after["audit_events"] == before["audit_events"] + 1


# -- 6. a partner's SAML assertion ----------------------------------------------------------

def _idp_key() -> tuple[bytes, bytes]:
    key, name = rsa.generate_private_key(65537, 2048), x509.Name([])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(7)
            .public_key(key.public_key()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            cert.public_bytes(serialization.Encoding.PEM))


def _idp_metadata(entity_id: str, cert_pem: bytes) -> str:
    der = base64.b64encode(x509.load_pem_x509_certificate(cert_pem).public_bytes(
        serialization.Encoding.DER)).decode()
    md = "urn:oasis:names:tc:SAML:2.0:metadata"
    return (f'<md:EntityDescriptor xmlns:md="{md}" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"'
            f' entityID="{entity_id}"><md:IDPSSODescriptor protocolSupportEnumeration='
            '"urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo>'
            f"<ds:X509Data><ds:X509Certificate>{der}</ds:X509Certificate></ds:X509Data>"
            "</ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="
            '"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" '
            f'Location="{entity_id}/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>')


async def test_partner_saml_assertion_is_keyed_by_the_partner(http, broker, tenant):
    tag = secrets.token_hex(4)
    entity, issuer = f"https://idp.p-{tag}.example/saml", f"https://p-{tag}.example"
    key = _idp_key()
    partner = await ops.register_partner(
        broker, issuer=issuer, display_name="Partner", jwks={"keys": [public_jwk(new_key())]},
        metadata={"saml_idp_metadata": _idp_metadata(entity, key[1])})
    await ops.set_partner_status(broker, partner["id"], "active")
    link = await ops.add_trust_link(broker, tenant, partner_id=partner["id"], accept=True,
                                    scope_ceiling=["read"])
    client = await new_client(broker, tenant, scopes=["read", "write"])
    tenant_issuer = broker.issuer(tenant)

    def assertion() -> str:
        element = build_assertion(
            issuer=entity, name_id="pat", audience=tenant_issuer, now=broker.clock.now(),
            name_id_format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
            recipient=f"{tenant_issuer}/token")
        xml = etree.tostring(sign(element, *key))
        return base64.urlsafe_b64encode(xml).rstrip(b"=").decode()

    r = await http.post(client.token_url, auth=client.basic,
                        data={"grant_type": SAML2_BEARER, "assertion": assertion()})
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    _, claims = jwt_parts(token)
    assert claims["sub_id"] == {"format": "iss_sub", "iss": issuer, "sub": "pat"}
    assert claims["sub"] == subjects.foreign_sub(tenant, issuer, "pat")
    assert r.json()["scope"] == "read"
    # alive at once (it was dead on arrival when keyed by the SAML entity ID) ...
    assert (await introspect(http, client, token))["active"] is True
    # ... until the trust in the partner ends, and again after revocation by partner
    await ops.set_trust_link_status(broker, tenant, link["id"], "suspended")
    assert (await introspect(http, client, token))["active"] is False
    await ops.set_trust_link_status(broker, tenant, link["id"], "active")
    assert (await introspect(http, client, token))["active"] is True
    await ops.revoke(broker, tenant, "partner", partner["id"], "test")
    assert (await introspect(http, client, token))["active"] is False
    # a send-only link does not accept the partner's assertions
    await ops.set_trust_link_directions(broker, tenant, link["id"], accept=False, send=True)
    r = await http.post(client.token_url, auth=client.basic,
                        data={"grant_type": SAML2_BEARER, "assertion": assertion()})
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant", r.text

"""ID-JAG across two tenants of one broker: token exchange at the IdP tenant (acme), jwt-bearer
redemption at the resource tenant (pricing); every refusal of shared/specs/id-jag.md."""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from adapters import subjects
from adapters.dpop import jwk_thumbprint
from broker import id_jag
from broker.runtime import TenantView
from tenants.models import TrustLink
from tenants.settings import TenantSettings
from tests import admin_ops as ops
from tests.broker.helpers import counts, jwt_parts, last_event
from tests.conftest import TestClient, new_client, new_tenant
from tests.dpop_client import make_proof, new_key, public_jwk

API = "https://api.pricing.example"
TX = id_jag.TOKEN_EXCHANGE


@dataclass
class Domains:
    acme: str
    pricing: str
    agent: TestClient  # the agent's client at acme
    remote: TestClient  # the same agent's client at pricing
    acme_link: str
    pricing_link: str

    @property
    def acme_issuer(self) -> str:
        return self.agent.issuer

    @property
    def pricing_issuer(self) -> str:
        return self.remote.issuer


@pytest.fixture
async def domains(broker) -> Domains:
    acme, pricing = await new_tenant(broker), await new_tenant(broker)
    agent = await new_client(broker, acme, scopes=[], audiences=[])
    remote = await new_client(broker, pricing, scopes=["read", "write", "export"],
                              audiences=[API])
    acme_link = await ops.add_trust_link(broker, acme, peer_tenant=pricing, send=True)
    pricing_link = await ops.add_trust_link(broker, pricing, peer_tenant=acme, accept=True,
                                            scope_ceiling=["read", "write", "export"])
    await ops.put_managed_connection(
        broker, acme, client_id=agent.client_id, audience=broker.issuer(pricing),
        rules={"read": "grant", "write": "grant", "export": "grant", "admin": "deny",
               "payments": "approve"},
        remote_client_id=remote.client_id, resources=[API], max_lifetime=120,
    )
    return Domains(acme, pricing, agent, remote, acme_link["id"], pricing_link["id"])


async def id_token(broker, d: Domains, *, subject: str = "alice", client_id: str | None = None,
                   tenant: str | None = None, lifetime: int = 300) -> str:
    t = tenant or d.acme
    view = TenantView(t, broker.issuer(t), TenantSettings())
    return await id_jag.mint_id_token(broker, view, subject=subject,
                                      client_id=client_id or d.agent.client_id,
                                      lifetime=lifetime, email=f"{subject}@acme.example")


async def exchange(http, broker, d: Domains, *, key=None, token=None, **overrides):
    form = {"grant_type": TX, "requested_token_type": id_jag.ID_JAG,
            "audience": d.pricing_issuer, "subject_token_type": id_jag.ID_TOKEN,
            "subject_token": token or await id_token(broker, d)}
    form.update(overrides)
    form = {k: v for k, v in form.items() if v is not None}
    headers = {"DPoP": make_proof(key, htm="POST", htu=d.agent.token_url)} if key else {}
    return await http.post(d.agent.token_url, data=form, auth=d.agent.basic, headers=headers)


async def redeem(http, d: Domains, assertion: str, *, key=None, client=None, **extra):
    client = client or d.remote
    headers = {"DPoP": make_proof(key, htm="POST", htu=client.token_url)} if key else {}
    return await http.post(client.token_url, auth=client.basic, headers=headers,
                           data={"grant_type": id_jag.JWT_BEARER, "assertion": assertion, **extra})


async def test_round_trip_with_dpop(http, broker, domains):
    d, key = domains, new_key()
    r = await exchange(http, broker, d, key=key, scope="read write", resource=API)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == id_jag.ID_JAG and body["token_type"] == "N_A"
    assert body["expires_in"] <= 120 and "refresh_token" not in body
    assert "scope" not in body  # granted as asked
    header, jag = jwt_parts(body["access_token"])
    assert header["typ"] == "oauth-id-jag+jwt"
    assert jag["iss"] == d.acme_issuer and jag["aud"] == d.pricing_issuer
    assert jag["sub"] == "alice" and jag["client_id"] == d.remote.client_id
    assert jag["scope"] == "read write" and jag["resource"] == API and "tenant" not in jag
    assert "email" not in jag  # minimised: the sub identifies the user
    assert jag["cnf"]["jkt"] == jwk_thumbprint(public_jwk(key))
    issued = await last_event(broker, d.acme)
    assert issued.action == "id_jag.issued" and issued.subject == "alice"
    assert issued.client_id == d.agent.client_id
    assert issued.detail["audience"] == d.pricing_issuer

    r = await redeem(http, d, body["access_token"], key=key)
    assert r.status_code == 200, r.text
    token = r.json()
    assert token["token_type"] == "DPoP" and token["scope"] == "read write"
    _, at = jwt_parts(token["access_token"])
    # acme's user stays acme's: a pairwise sub that names no pricing user, and sub_id
    assert at["iss"] == d.pricing_issuer and at["aud"] == API
    assert at["sub"] == subjects.foreign_sub(d.pricing, d.acme_issuer, "alice")
    assert at["sub"] != "alice" and at["sub"].startswith("x.")
    assert at["act"] == {"sub": d.remote.client_id}
    assert at["client_id"] == d.remote.client_id and at["cnf"] == jag["cnf"]
    assert at["sub_id"] == {"format": "iss_sub", "iss": d.acme_issuer, "sub": "alice"}
    redeemed = await last_event(broker, d.pricing)
    assert redeemed.action == "token.issued" and redeemed.subject == at["sub"]
    assert redeemed.detail["sub_id"] == at["sub_id"]
    assert redeemed.detail["issuer"] == d.acme_issuer
    # introspection at pricing reports the delegation
    r = await http.post(f"{d.pricing_issuer}/introspect", data={"token": token["access_token"]},
                        auth=d.remote.basic)
    assert r.json()["active"] is True and r.json()["act"] == {"sub": d.remote.client_id}


async def test_id_token_of_another_issuer_is_never_reissued(http, broker, domains):
    """The IdP side asserts only its own users: an ID token of any other issuer is refused,
    whatever trust acme has in that issuer (accept, send or both) — else acme would re-issue a
    foreign identity under its own name."""
    d = domains
    corp = await new_tenant(broker)
    token = await id_token(broker, d, tenant=corp, subject="bob")
    for directions in ({"accept": True}, {"send": True}, {"accept": True, "send": True}):
        link = await ops.add_trust_link(broker, d.acme, peer_tenant=corp, **directions)
        before = await counts(broker, d.acme)
        r = await exchange(http, broker, d, token=token, scope="read")
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert "issued by this tenant" in r.json()["error_description"]
        assert (await counts(broker, d.acme))["audit_events"] == before["audit_events"] + 1
        assert (await last_event(broker, d.acme)).action == "token.refused"
        await ops.set_trust_link_status(broker, d.acme, link["id"], "revoked")
    # pricing's own ID token (acme sends identity to pricing) is refused at acme too
    token = await id_token(broker, d, tenant=d.pricing, subject="mallory")
    r = await exchange(http, broker, d, token=token, scope="read")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_deny_scopes_dropped_and_reported(http, broker, domains):
    r = await exchange(http, broker, domains, scope="read admin")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    assert jwt_parts(r.json()["access_token"])[1]["scope"] == "read"


async def test_no_scope_means_every_granted_scope(http, broker, domains):
    r = await exchange(http, broker, domains)
    assert r.status_code == 200, r.text
    assert set(r.json()["scope"].split()) == {"read", "write", "export"}


async def test_ceiling_at_the_resource_side(http, broker, domains):
    d = domains
    # pricing narrows its trust in acme to read only: write is dropped on redemption
    await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "revoked")
    await ops.add_trust_link(broker, d.pricing, peer_tenant=d.acme, scope_ceiling=["read"],
                             accept=True)
    r = await exchange(http, broker, d, scope="read write")
    r = await redeem(http, d, r.json()["access_token"])
    assert r.status_code == 200 and r.json()["scope"] == "read"
    r = await exchange(http, broker, d, scope="write")
    r = await redeem(http, d, r.json()["access_token"])
    assert r.status_code == 400 and r.json()["error"] == "invalid_scope"


# -- IdP-side refusals: nothing issued ------------------------------------------------------

@pytest.mark.parametrize("case", [
    "subject-type-access-token", "id-token-other-client", "id-token-other-tenant",
    "id-token-expired", "id-token-garbage", "no-audience", "two-audiences", "audience-self",
    "audience-untrusted", "no-connection", "deny-only", "approve", "resource-not-allowed",
    "link-suspended", "requested-type-unknown",
])
async def test_idp_side_refusals(http, broker, domains, case):
    d = domains
    expected = {"invalid_request": ("subject-type-access-token", "id-token-other-client",
                                    "id-token-other-tenant", "id-token-expired",
                                    "id-token-garbage", "no-audience", "two-audiences",
                                    "requested-type-unknown"),
                "invalid_target": ("audience-self", "audience-untrusted", "no-connection",
                                   "resource-not-allowed", "link-suspended"),
                "invalid_scope": ("deny-only", "approve")}
    error = next(k for k, v in expected.items() if case in v)
    kwargs: dict = {}
    if case == "subject-type-access-token":
        kwargs["subject_token_type"] = id_jag.ACCESS_TOKEN
    elif case == "id-token-other-client":
        kwargs["token"] = await id_token(broker, d, client_id="someone-else")
    elif case == "id-token-other-tenant":  # a tenant acme has no trust link with
        kwargs["token"] = await id_token(broker, d, tenant=await new_tenant(broker))
    elif case == "id-token-expired":
        kwargs["token"] = await id_token(broker, d, lifetime=-120)
    elif case == "id-token-garbage":
        kwargs["token"] = "e30.e30.e30"
    elif case == "no-audience":
        kwargs["audience"] = None
    elif case == "two-audiences":
        kwargs["audience"] = [d.pricing_issuer, "https://other.example"]
    elif case == "audience-self":
        kwargs["audience"] = d.acme_issuer
    elif case == "audience-untrusted":
        kwargs["audience"] = "https://stranger.example"
    elif case == "no-connection":
        other = await new_tenant(broker)
        await ops.add_trust_link(broker, d.acme, peer_tenant=other, send=True)
        kwargs["audience"] = broker.issuer(other)
    elif case == "deny-only":
        kwargs["scope"] = "admin"
    elif case == "approve":
        kwargs["scope"] = "read payments"
    elif case == "resource-not-allowed":
        kwargs["resource"] = "https://elsewhere.example"
    elif case == "link-suspended":
        await ops.set_trust_link_status(broker, d.acme, d.acme_link, "suspended")
    elif case == "requested-type-unknown":
        kwargs["requested_token_type"] = "urn:example:whatever"
    before = await counts(broker, d.acme)
    r = await exchange(http, broker, d, **kwargs)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error, r.text
    if case == "approve":
        assert "payments" in r.json()["error_description"]
    after = await counts(broker, d.acme)
    assert after["audit_events"] == before["audit_events"] + 1
    event = await last_event(broker, d.acme)
    assert event.action == "token.refused" and event.detail["error"] == error
    assert event.client_id == d.agent.client_id
    if case != "no-audience":  # the refusal names what was asked for
        assert event.detail["audience"]


# -- resource-side refusals: invalid_grant, nothing issued ----------------------------------

@pytest.mark.parametrize("case", [
    "typ", "untrusted-issuer", "link-suspended", "link-revoked", "link-expired",
    "wrong-aud", "wrong-client", "expired", "replay", "self-issued", "cnf-no-proof",
    "cnf-other-key", "tampered", "not-a-jwt", "peer-disabled",
])
async def test_resource_side_refusals(http, broker, clocked_broker, domains, case):
    d = domains
    key = new_key() if case.startswith("cnf") else None
    r = await exchange(http, broker, d, key=key, scope="read")
    assert r.status_code == 200, r.text
    jag = r.json()["access_token"]
    client, proof_key = d.remote, None
    if case == "typ":
        view = TenantView(d.acme, d.acme_issuer, TenantSettings())
        claims = jwt_parts(jag)[1]
        jag = await broker.keys.sign(view.id, {"typ": "JWT"}, claims)
    elif case == "untrusted-issuer":
        stranger = await new_tenant(broker)
        claims = {**jwt_parts(jag)[1], "iss": broker.issuer(stranger)}
        jag = await broker.keys.sign(stranger, {"typ": "oauth-id-jag+jwt"}, claims)
    elif case == "link-suspended":
        await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "suspended")
    elif case == "link-revoked":
        await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "revoked")
    elif case == "link-expired":
        await ops.set_trust_link_status(broker, d.pricing, d.pricing_link, "revoked")
        link = await ops.add_trust_link(broker, d.pricing, peer_tenant=d.acme, accept=True,
                                        expires_at=time.time() + 60)
        async with broker.sessions() as session, session.begin():  # time passes
            await session.execute(update(TrustLink).where(TrustLink.id == link["id"])
                                  .values(expires_at=time.time() - 1))
    elif case == "wrong-aud":
        other = await new_tenant(broker)
        await ops.add_trust_link(broker, other, peer_tenant=d.acme, accept=True)
        client = await new_client(broker, other, client_id=d.remote.client_id)
    elif case == "wrong-client":
        client = await new_client(broker, d.pricing)
    elif case == "expired":
        claims = {**jwt_parts(jag)[1], "iat": int(time.time()) - 400,
                  "exp": int(time.time()) - 100}
        jag = await broker.keys.sign(d.acme, {"typ": "oauth-id-jag+jwt"}, claims)
    elif case == "replay":
        assert (await redeem(http, d, jag)).status_code == 200
    elif case == "self-issued":
        claims = {**jwt_parts(jag)[1], "iss": d.pricing_issuer}
        jag = await broker.keys.sign(d.pricing, {"typ": "oauth-id-jag+jwt"}, claims)
    elif case == "cnf-other-key":
        proof_key = new_key()
    elif case == "tampered":
        head, body, sig = jag.split(".")
        jag = f"{head}.{body}.{sig[:-4]}AAAA"
    elif case == "not-a-jwt":
        jag = "not-a-jwt"
    elif case == "peer-disabled":
        await ops.set_tenant_status(broker, d.acme, "disabled")
    before = await counts(broker, client.tenant)
    r = await redeem(http, d, jag, key=proof_key, client=client)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_grant", r.text
    after = await counts(broker, client.tenant)
    assert after["audit_events"] == before["audit_events"] + 1
    assert after["replay_records"] == before["replay_records"]
    event = await last_event(broker, client.tenant)
    assert event.action == "token.refused" and event.outcome == "refused"


# -- on-behalf-of inside one tenant ---------------------------------------------------------

async def test_on_behalf_of_narrows_and_nests_actors(http, broker):
    tenant = await new_tenant(broker)
    agent = await new_client(broker, tenant, scopes=["read", "write"],
                             audiences=["https://agent-api.example"])
    # the tool may act for the agent's API (the subject token is meant for it) and call its own
    tool = await new_client(broker, tenant, scopes=["read", "write"],
                            audiences=["https://agent-api.example", "https://tool-api.example"])
    r = await http.post(agent.token_url, auth=agent.basic,
                        data={"grant_type": "client_credentials", "scope": "read write"})
    subject = r.json()["access_token"]
    form = {"grant_type": TX, "subject_token": subject,
            "subject_token_type": id_jag.ACCESS_TOKEN, "scope": "read",
            "resource": "https://tool-api.example"}
    r = await http.post(tool.token_url, auth=tool.basic, data=form)
    assert r.status_code == 200, r.text
    assert r.json()["issued_token_type"] == id_jag.ACCESS_TOKEN
    _, at = jwt_parts(r.json()["access_token"])
    assert at["sub"] == agent.client_id and at["client_id"] == tool.client_id
    assert at["scope"] == "read" and at["aud"] == "https://tool-api.example"
    assert at["act"] == {"sub": tool.client_id}
    # a second hop nests the chain: tool2 acting via tool for the agent
    tool2 = await new_client(broker, tenant, scopes=["read"],
                             audiences=["https://tool-api.example", "https://tool2-api.example"])
    r = await http.post(tool2.token_url, auth=tool2.basic, data={
        **form, "subject_token": r.json()["access_token"],
        "resource": "https://tool2-api.example"})
    assert r.status_code == 200, r.text
    _, at2 = jwt_parts(r.json()["access_token"])
    assert at2["act"] == {"sub": tool2.client_id, "act": {"sub": tool.client_id}}
    assert at2["exp"] <= at["exp"]


@pytest.mark.parametrize("case", ["broader", "revoked-subject", "foreign-audience", "id-jag-type",
                                  "not-meant-for-caller"])
async def test_on_behalf_of_refusals(http, broker, case):
    tenant = await new_tenant(broker)
    agent = await new_client(broker, tenant, scopes=["read", "write"], audiences=["https://a.example"])
    tool = await new_client(broker, tenant, scopes=["read", "write"],
                            audiences=["https://t.example"] if case == "not-meant-for-caller"
                            else ["https://a.example", "https://t.example"])
    r = await http.post(agent.token_url, auth=agent.basic,
                        data={"grant_type": "client_credentials", "scope": "read"})
    subject = r.json()["access_token"]
    form = {"grant_type": TX, "subject_token": subject,
            "subject_token_type": id_jag.ACCESS_TOKEN, "scope": "read"}
    error = "invalid_request"
    if case == "broader":
        form["scope"], error = "read write", "invalid_scope"
    elif case == "revoked-subject":
        await http.post(f"{agent.issuer}/revoke", data={"token": subject}, auth=agent.basic)
    elif case == "foreign-audience":
        form["resource"], error = "https://elsewhere.example", "invalid_target"
    else:
        form["subject_token_type"] = id_jag.ID_JAG
    before = await counts(broker, tenant)
    r = await http.post(tool.token_url, auth=tool.basic, data=form)
    assert r.status_code == 400 and r.json()["error"] == error, r.text
    after = await counts(broker, tenant)
    assert after["audit_events"] == before["audit_events"] + 1
    assert (await last_event(broker, tenant)).action == "token.refused"

"""The token endpoint: client credentials, RFC 9068 tokens, client authentication, DPoP."""

from __future__ import annotations

import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tests import admin_ops as ops
from tests.broker.helpers import assert_refused_wrote_only_audit, counts, jwt_parts, last_event
from tests.conftest import BASE_URL, new_client, new_tenant
from tests.dpop_client import make_proof, new_key, public_jwk

CC = {"grant_type": "client_credentials"}


async def test_client_credentials_issues_rfc9068_token(http, broker, client):
    r = await http.post(client.token_url, data={**CC, "scope": "read"}, auth=client.basic)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "read"
    assert body["expires_in"] == 300
    header, claims = jwt_parts(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"]
    assert claims["iss"] == client.issuer
    assert claims["sub"] == claims["client_id"] == client.client_id
    assert claims["aud"] == f"{client.issuer}/demo"  # the client's first audience
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] and "cnf" not in claims
    keys = KeySet.import_key_set(await broker.keys.jwks(client.tenant))
    jwt.decode(body["access_token"], keys)  # verifies against the published JWKS
    event = await last_event(broker, client.tenant)
    assert event.action == "token.issued" and event.detail["jti"] == claims["jti"]


async def test_scope_defaults_to_all_allowed_and_resource_sets_aud(http, client):
    r = await http.post(client.token_url, auth=client.basic,
                        data={**CC, "resource": ["https://api.example", f"{client.issuer}/demo"]})
    assert r.status_code == 200, r.text
    _, claims = jwt_parts(r.json()["access_token"])
    assert claims["scope"] == "read write"
    assert claims["aud"] == ["https://api.example", f"{client.issuer}/demo"]


async def test_client_secret_post(http, broker, tenant):
    c = await new_client(broker, tenant, auth_method="client_secret_post")
    r = await http.post(c.token_url, data={**CC, "client_id": c.client_id,
                                           "client_secret": c.secret})
    assert r.status_code == 200, r.text
    # the secret is the credential: Basic works too (issue 13: the SDKs choose the method)
    r = await http.post(c.token_url, data=CC, auth=c.basic)
    assert r.status_code == 200, r.text
    r = await http.post(c.token_url, data=CC, auth=(c.client_id, "wrong"))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_lifetime_capped_by_tenant(http, broker):
    tenant = await new_tenant(broker, max_token_lifetime=60)
    c = await new_client(broker, tenant, access_token_lifetime=900)
    r = await http.post(c.token_url, data=CC, auth=c.basic)
    assert r.json()["expires_in"] == 60


@pytest.mark.parametrize(
    ("data", "auth", "status", "error"),
    [
        ({**CC, "scope": "admin"}, "ok", 400, "invalid_scope"),
        ({**CC, "scope": "read admin"}, "ok", 400, "invalid_scope"),
        ({**CC, "resource": "https://evil.example"}, "ok", 400, "invalid_target"),
        ({"grant_type": "password", "username": "u", "password": "p"}, "ok", 400,
         "unsupported_grant_type"),
        ({"scope": "read"}, "ok", 400, "invalid_request"),
        (CC, "wrong", 401, "invalid_client"),
        (CC, "unknown", 401, "invalid_client"),
        (CC, None, 401, "invalid_client"),
    ],
    ids=["scope", "one-bad-scope", "resource", "grant", "no-grant", "secret", "client", "none"],
)
async def test_refusals_write_only_the_audit_event(http, broker, client, data, auth, status,
                                                   error):
    creds = {"ok": client.basic, "wrong": (client.client_id, "nope"),
             "unknown": ("nobody", client.secret), None: None}[auth]
    before = await counts(broker, client.tenant)
    r = await http.post(client.token_url, data=data, auth=creds)
    assert r.status_code == status, r.text
    assert r.json()["error"] == error and r.headers["cache-control"] == "no-store"
    if status == 401:
        assert r.headers["www-authenticate"].startswith("Basic")
    event = await assert_refused_wrote_only_audit(broker, client.tenant, before)
    assert event.detail["error"] == error
    assert client.secret not in str(event.detail)


async def test_two_authentication_methods_refused(http, client):
    r = await http.post(client.token_url, auth=client.basic,
                        data={**CC, "client_id": client.client_id, "client_secret": client.secret})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_disabled_client_and_tenant(http, broker):
    tenant = await new_tenant(broker)
    c = await new_client(broker, tenant)
    await ops.set_client_status(broker, tenant, c.client_id, "disabled")
    r = await http.post(c.token_url, data=CC, auth=c.basic)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    await ops.set_client_status(broker, tenant, c.client_id, "active")
    assert (await http.post(c.token_url, data=CC, auth=c.basic)).status_code == 200
    await ops.set_tenant_status(broker, tenant, "disabled")
    r = await http.post(c.token_url, data=CC, auth=c.basic)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    assert (await http.get(f"/t/{tenant}/jwks")).status_code == 404


# -- private_key_jwt (RFC 7523 client assertions) ----------------------------------------

def _assertion(key: ECKey, client_id: str, aud: str, **overrides) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
              "jti": f"a-{time.time_ns()}"}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "ES256", "kid": "k1"}, claims, key)


@pytest.fixture
async def pkjwt(broker, tenant):
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"})
    c = await new_client(broker, tenant, auth_method="private_key_jwt",
                         jwks={"keys": [key.as_dict(private=False)]})
    return c, key


def _pk_form(c, assertion):
    return {**CC, "client_id": c.client_id, "client_assertion": assertion,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}


async def test_private_key_jwt_and_replay(http, broker, pkjwt):
    c, key = pkjwt
    assertion = _assertion(key, c.client_id, c.token_url)
    r = await http.post(c.token_url, data=_pk_form(c, assertion))
    assert r.status_code == 200, r.text
    before = await counts(broker, c.tenant)
    r = await http.post(c.token_url, data=_pk_form(c, assertion))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert "replayed" in r.json()["error_description"]
    await assert_refused_wrote_only_audit(broker, c.tenant, before)
    # the issuer is an accepted audience too
    r = await http.post(c.token_url, data=_pk_form(c, _assertion(key, c.client_id, c.issuer)))
    assert r.status_code == 200


@pytest.mark.parametrize("defect", ["aud", "iss", "expired", "no-jti", "other-key", "too-long",
                                    "hs256"])
async def test_private_key_jwt_defects(http, broker, pkjwt, defect):
    c, key = pkjwt
    now = int(time.time())
    if defect == "aud":
        assertion = _assertion(key, c.client_id, "https://elsewhere.example/token")
    elif defect == "iss":
        assertion = _assertion(key, c.client_id, c.token_url, iss="someone-else")
    elif defect == "expired":
        assertion = _assertion(key, c.client_id, c.token_url, iat=now - 600, exp=now - 300)
    elif defect == "no-jti":
        assertion = _assertion(key, c.client_id, c.token_url, jti=None)
    elif defect == "too-long":
        assertion = _assertion(key, c.client_id, c.token_url, exp=now + 86_400)
    elif defect == "hs256":
        from joserfc.jwk import OctKey
        assertion = jwt.encode({"alg": "HS256", "kid": "k1"},
                               {"iss": c.client_id, "sub": c.client_id, "aud": c.token_url,
                                "exp": now + 60, "jti": "x"}, OctKey.generate_key(256))
    else:
        assertion = _assertion(ECKey.generate_key("P-256"), c.client_id, c.token_url)
    before = await counts(broker, c.tenant)
    r = await http.post(c.token_url, data=_pk_form(c, assertion))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
    await assert_refused_wrote_only_audit(broker, c.tenant, before)


# -- DPoP at the token endpoint (RFC 9449 §5) --------------------------------------------

async def test_dpop_bound_token(http, client):
    key = new_key()
    proof = make_proof(key, htm="POST", htu=client.token_url)
    r = await http.post(client.token_url, data=CC, auth=client.basic, headers={"DPoP": proof})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "DPoP"
    from adapters.dpop import jwk_thumbprint
    assert jwt_parts(body["access_token"])[1]["cnf"] == {"jkt": jwk_thumbprint(public_jwk(key))}


async def test_dpop_required_client_needs_proof(http, broker, tenant):
    c = await new_client(broker, tenant, dpop_bound_access_tokens=True)
    before = await counts(broker, tenant)
    r = await http.post(c.token_url, data=CC, auth=c.basic)
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    await assert_refused_wrote_only_audit(broker, tenant, before)
    proof = make_proof(new_key(), htm="POST", htu=c.token_url)
    r = await http.post(c.token_url, data=CC, auth=c.basic, headers={"DPoP": proof})
    assert r.status_code == 200 and r.json()["token_type"] == "DPoP"


async def test_replayed_proof_refused(http, broker, client):
    proof = make_proof(new_key(), htm="POST", htu=client.token_url)
    assert (await http.post(client.token_url, data=CC, auth=client.basic,
                            headers={"DPoP": proof})).status_code == 200
    before = await counts(broker, client.tenant)
    r = await http.post(client.token_url, data=CC, auth=client.basic, headers={"DPoP": proof})
    assert r.status_code == 400 and r.json() == {
        "error": "invalid_dpop_proof", "error_description": "DPoP proof replayed"}
    await assert_refused_wrote_only_audit(broker, client.tenant, before)


def _defective(defect: str, url: str) -> list[str]:
    key = new_key()
    hour = 3600
    cases = {
        "malformed": lambda: "not.a.jwt!",
        "wrong-typ": lambda: make_proof(key, htm="POST", htu=url, typ="JWT"),
        "no-typ": lambda: make_proof(key, htm="POST", htu=url, omit={"typ"}),
        "alg-none": lambda: make_proof(key, htm="POST", htu=url, alg="none"),
        "no-jwk": lambda: make_proof(key, htm="POST", htu=url, include_jwk=False),
        "private-jwk": lambda: make_proof(key, htm="POST", htu=url, private_jwk=True),
        "tampered": lambda: make_proof(key, htm="POST", htu=url)[:-4] + "AAAA",
        "no-jti": lambda: make_proof(key, htm="POST", htu=url, omit={"jti"}),
        "no-htm": lambda: make_proof(key, htm="POST", htu=url, omit={"htm"}),
        "no-htu": lambda: make_proof(key, htm="POST", htu=url, omit={"htu"}),
        "no-iat": lambda: make_proof(key, htm="POST", htu=url, omit={"iat"}),
        "htm-put": lambda: make_proof(key, htm="PUT", htu=url),
        "htu-other": lambda: make_proof(key, htm="POST", htu=f"{BASE_URL}/t/other/token"),
        "iat-future": lambda: make_proof(key, htm="POST", htu=url, iat=int(time.time()) + hour),
        "iat-past": lambda: make_proof(key, htm="POST", htu=url, iat=int(time.time()) - hour),
        "huge-jti": lambda: make_proof(key, htm="POST", htu=url, jti="j" * 1000),
        "other-key-signed": lambda: make_proof(new_key(), htm="POST", htu=url,
                                               jwk=public_jwk(key)),
    }
    if defect == "two-headers":
        return [make_proof(key, htm="POST", htu=url), make_proof(key, htm="POST", htu=url)]
    if defect == "hs256":
        from joserfc.jwk import OctKey
        oct_key = OctKey.generate_key(256)
        return [make_proof(oct_key, htm="POST", htu=url, alg="HS256",
                           jwk=oct_key.as_dict(private=True))]
    return [cases[defect]()]


DEFECTS = ["malformed", "wrong-typ", "no-typ", "alg-none", "no-jwk", "private-jwk", "tampered",
           "no-jti", "no-htm", "no-htu", "no-iat", "htm-put", "htu-other", "iat-future",
           "iat-past", "huge-jti", "other-key-signed", "two-headers", "hs256"]


@pytest.mark.parametrize("defect", DEFECTS)
async def test_defective_proof_refused(http, broker, client, defect):
    proofs = _defective(defect, client.token_url)
    headers = [("DPoP", p) for p in proofs]
    before = await counts(broker, client.tenant)
    r = await http.post(client.token_url, data=CC, auth=client.basic, headers=headers)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_dpop_proof"
    await assert_refused_wrote_only_audit(broker, client.tenant, before)


@pytest.mark.parametrize("variant", ["caps-header", "query", "fragment", "extra-claims",
                                     "default-port"])
async def test_acceptable_proof_variants(http, client, variant):
    url = client.token_url
    key = new_key()
    header_name = "DPoP"
    if variant == "caps-header":
        header_name, proof = "DPOP", make_proof(key, htm="POST", htu=url)
    elif variant == "query":
        proof = make_proof(key, htm="POST", htu=url + "?x=1")
    elif variant == "fragment":
        proof = make_proof(key, htm="POST", htu=url + "#frag")
    elif variant == "default-port":
        proof = make_proof(key, htm="POST", htu=url.replace("tessera.test", "TESSERA.test:80"))
    else:
        proof = make_proof(key, htm="POST", htu=url, extra_claims={"foo": "bar"},
                           extra_header={"x-unknown": 1})
    r = await http.post(url, data=CC, auth=client.basic, headers={header_name: proof})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"


async def test_server_nonce_flow(http, broker):
    tenant = await new_tenant(broker, dpop_nonce_required=True)
    c = await new_client(broker, tenant)
    key = new_key()
    before = await counts(broker, tenant)
    r = await http.post(c.token_url, data=CC, auth=c.basic,
                        headers={"DPoP": make_proof(key, htm="POST", htu=c.token_url)})
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
    nonce = r.headers["dpop-nonce"]
    assert nonce and all(c.isalnum() or c in "-_" for c in nonce)
    await assert_refused_wrote_only_audit(broker, tenant, before)
    r = await http.post(c.token_url, data=CC, auth=c.basic, headers={
        "DPoP": make_proof(key, htm="POST", htu=c.token_url, nonce=nonce)})
    assert r.status_code == 200, r.text
    assert r.headers["dpop-nonce"]  # a fresh nonce rides along
    r = await http.post(c.token_url, data=CC, auth=c.basic, headers={
        "DPoP": make_proof(key, htm="POST", htu=c.token_url, nonce="forged-nonce")})
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
    # a nonce of another tenant is not valid here
    other = broker.nonces.issue("another-tenant")
    r = await http.post(c.token_url, data=CC, auth=c.basic, headers={
        "DPoP": make_proof(key, htm="POST", htu=c.token_url, nonce=other)})
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"


async def test_cached_directory_never_outlives_a_change_on_another_replica(
    http, broker, clocked_broker
):
    """Each replica decides on its cached view of tenant and client; the journal refuses a
    decision whose view is stale, so a change made elsewhere counts on the next request."""
    import httpx

    from broker.app import create_app

    replica, _ = clocked_broker
    tenant = await new_tenant(broker)
    c = await new_client(broker, tenant)
    app = create_app(replica, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as other:
        assert (await other.post(c.token_url, data=CC, auth=c.basic)).status_code == 200
        assert (tenant, c.client_id) in replica._directory  # the replica cached the view
        await ops.set_client_status(broker, tenant, c.client_id, "disabled")
        before = await counts(broker, tenant)
        r = await other.post(c.token_url, data=CC, auth=c.basic)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
        after = await counts(broker, tenant)
        assert after["audit_events"] == before["audit_events"] + 1  # one refusal, no grant
        assert (await last_event(broker, tenant)).action == "token.refused"
        await ops.set_client_status(broker, tenant, c.client_id, "active")
        assert (await other.post(c.token_url, data=CC, auth=c.basic)).status_code == 200
        await ops.set_tenant_status(broker, tenant, "disabled")
        r = await other.post(c.token_url, data=CC, auth=c.basic)
        assert r.status_code == 404
        # a stale refusal is not recorded either: re-enabled elsewhere, served here
        await ops.set_tenant_status(broker, tenant, "active")
        await ops.set_client_status(broker, tenant, c.client_id, "disabled")
        assert (await other.post(c.token_url, data=CC, auth=c.basic)).status_code == 401
        await ops.set_client_status(broker, tenant, c.client_id, "active")
        assert (await other.post(c.token_url, data=CC, auth=c.basic)).status_code == 200
        # a DPoP proof of a request decided again is not burnt by the stale attempt
        await ops.set_client_status(broker, tenant, c.client_id, "active")
        proof = make_proof(new_key(), htm="POST", htu=c.token_url)
        r = await other.post(c.token_url, data=CC, auth=c.basic, headers={"DPoP": proof})
        assert r.status_code == 200 and r.json()["token_type"] == "DPoP"

"""Hostile JSON inside JWTs and request bodies, over HTTP against the real app: every surface
answers its own OAuth error (never 500), and writes nothing but the audit event it always
writes for a refusal.

The JWTs are built byte by byte (``jwt``) so their JSON can be what no encoder writes:
100 000-level ``[[[[``, ``NaN``/``Infinity``, duplicate members, lone surrogates, non-objects.
Where a defect hides behind a signature, the token is really signed: by the tenant's key
service (access tokens, ID tokens, ID-JAGs of a trusted tenant) or by the client's own key
(``private_key_jwt`` assertions), so only the defect can explain the refusal.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from joserfc.jwk import ECKey

from broker import id_jag
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.broker.helpers import assert_refused_wrote_only_audit, counts
from tests.conftest import ADMIN_TOKEN, TestClient, new_client, new_tenant
from tests.dpop_client import make_proof, new_key
from tests.hostile_jwt import ASSERTION_TYPE, Signer, deep, ec_signer, jwt, obj

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEEP = 100_000


# The defects, as (name, header members, claims members) over a valid header and claims set.
# A value of bytes is raw JSON; None drops the member.
def defects(sized: int) -> dict[str, tuple[dict[str, Any], dict[str, Any], bytes | None]]:
    """``sized``: how many levels of nesting fit the surface's size limit."""
    return {
        "header-deep-closed": ({"x": deep(sized // 2)}, {}, None),
        "header-deep-open": ({"x": deep(sized, closed=False)}, {}, None),
        "header-100k-deep": ({"x": deep(DEEP)}, {}, None),
        "header-duplicate-alg": ({}, {}, b"dup-alg"),
        "header-duplicate-kid": ({}, {}, b"dup-kid"),
        "header-not-object": ({}, {}, b"[1,2]"),
        "header-nan": ({"x": b"NaN"}, {}, None),
        "claims-deep-closed": ({}, {"x": deep(sized // 2)}, None),
        "claims-deep-open": ({}, {"x": deep(sized, closed=False)}, None),
        "claims-duplicate-member": ({}, {}, b"dup-claim"),
        "claims-not-object": ({}, {}, b'"just a string"'),
        "claims-lone-surrogate": ({}, {"jti": b'"\\ud800"'}, None),
        **{f"{claim}-{name}": ({}, {claim: raw}, None)
           for claim in ("exp", "iat", "nbf")
           for name, raw in (("NaN", b"NaN"), ("Infinity", b"Infinity"),
                             ("-Infinity", b"-Infinity"), ("1e400", b"1e400"),
                             ("true", b"true"), ("string", b'"tomorrow"'),
                             ("2^64", str(2**64).encode()), ("negative", b"-5"),
                             ("null", b"null"), ("object", b'{"t":1}'))},
    }


DEFECT_NAMES = list(defects(10))


def build(defect: str, header: dict[str, Any], claims: dict[str, Any], sign: Signer,
          sized: int) -> str:
    extra_header, extra_claims, special = defects(sized)[defect]
    head = obj({**header, **extra_header})
    body = obj({**claims, **extra_claims})
    if special == b"dup-alg":
        head = head[:-1] + b',"alg":"none"}'
    elif special == b"dup-kid":
        head = head[:-1] + b',"kid":"other"}'
    elif special == b"dup-claim":  # the subject if there is one: who is it, then?
        name = "sub" if "sub" in claims else "jti"
        body = body[:-1] + b',"' + name.encode() + b'":"someone-else"}'
    elif special is not None and defect.startswith("header"):
        head = special
    elif special is not None:
        body = special
    return jwt(head, body, sign)


@dataclass
class Site:
    broker: Broker
    tenant: str
    issuer: str
    client: TestClient  # client_secret_basic, audiences include the demo resource
    pk: TestClient  # private_key_jwt
    pk_key: ECKey
    kid: str
    tenant_sign: Signer

    def access_claims(self) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "sub": self.client.client_id, "aud": f"{self.issuer}/demo",
                "client_id": self.client.client_id, "iat": now, "exp": now + 300,
                "jti": secrets.token_urlsafe(12), "scope": "openid read"}


@pytest.fixture(scope="module")
async def site(broker: Broker) -> Site:
    tenant = await new_tenant(broker)
    client = await new_client(broker, tenant, scopes=["openid", "read"])
    key = ECKey.generate_key("P-256", parameters={"kid": "pk1"})
    pk = await new_client(broker, tenant, auth_method="private_key_jwt",
                          jwks={"keys": [key.as_dict(private=False)]})
    signer = await broker.keys.raw_signer(tenant)
    assert signer.alg == "ES256"
    return Site(broker, tenant, broker.issuer(tenant), client, pk, key, signer.kid, signer.sign)


def _json_error(r: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == error, body
    assert r.headers["cache-control"] == "no-store"
    return dict(body)


def _dpop_challenge(r: httpx.Response) -> str:
    """The DPoP challenge of RFC 9449 §7.1 (after the Bearer one)."""
    bearer, sep, dpop = r.headers["www-authenticate"].partition(", DPoP ")
    assert sep and "error=" not in bearer, r.headers["www-authenticate"]
    return dpop


def _over_form_limit(form: dict[str, str]) -> bool:
    """The form is refused by size (64 KiB) before anything in it is parsed."""
    return len(urlencode(form)) > 64 * 1024


async def _nothing_written(broker: Broker, tenant: str, before: dict[str, int]) -> None:
    assert await counts(broker, tenant) == before


# -- the protected resources: Bearer at the demo resource and userinfo ------------------------
# The Authorization header holds at most 8 KiB: about 5 000 levels of "[" fit, base64url'd.

@pytest.mark.parametrize("path", ["/demo/whoami", "/userinfo"])
@pytest.mark.parametrize("defect", DEFECT_NAMES)
async def test_bearer_token_with_hostile_json(http, site, path, defect):
    token = build(defect, {"typ": "at+jwt", "alg": "ES256", "kid": site.kid},
                  site.access_claims(), site.tenant_sign, sized=5_000)
    before = await counts(site.broker, site.tenant)
    r = await http.get(site.issuer + path, headers={"Authorization": f"Bearer {token}"})
    if len(token) > 8_192 - len("Bearer "):  # refused by size before any parsing
        _json_error(r, 400, "invalid_request")
    else:
        _json_error(r, 401, "invalid_token")
        challenge = r.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge
    await _nothing_written(site.broker, site.tenant, before)


@pytest.mark.parametrize("defect", ["header-deep-open", "claims-deep-open", "exp-NaN",
                                    "iat-Infinity", "header-duplicate-kid"])
async def test_dpop_scheme_token_with_hostile_json(http, site, defect):
    token = build(defect, {"typ": "at+jwt", "alg": "ES256", "kid": site.kid},
                  site.access_claims(), site.tenant_sign, sized=5_000)
    proof = make_proof(new_key(), htm="GET", htu=f"{site.issuer}/demo/whoami",
                       access_token=token)
    before = await counts(site.broker, site.tenant)
    r = await http.get(f"{site.issuer}/demo/whoami",
                       headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    _json_error(r, 401, "invalid_token")
    assert 'error="invalid_token"' in _dpop_challenge(r)
    await _nothing_written(site.broker, site.tenant, before)


@pytest.mark.parametrize("defect", ["header-deep-open", "header-deep-closed", "claims-deep-open",
                                    "header-duplicate-alg", "claims-duplicate-member",
                                    "claims-not-object", "iat-NaN", "iat-1e400", "iat-true",
                                    "claims-lone-surrogate"])
async def test_dpop_proof_with_hostile_json(http, site, defect):
    """A valid bearer of a DPoP-bound token, with a proof whose JSON is hostile."""
    key = new_key()
    r = await http.post(site.client.token_url, data={"grant_type": "client_credentials"},
                        auth=site.client.basic,
                        headers={"DPoP": make_proof(key, htm="POST", htu=site.client.token_url)})
    token = r.json()["access_token"]
    good = make_proof(key, htm="GET", htu=f"{site.issuer}/demo/whoami", access_token=token)
    head, claims = (json.loads(base64.urlsafe_b64decode(p + "==")) for p in good.split(".")[:2])
    proof = build(defect, head, claims, ec_signer(key), sized=5_000)
    before = await counts(site.broker, site.tenant)
    r = await http.get(f"{site.issuer}/demo/whoami",
                       headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    _json_error(r, 401, "invalid_dpop_proof")
    assert 'error="invalid_dpop_proof"' in _dpop_challenge(r)
    await _nothing_written(site.broker, site.tenant, before)
    r = await http.get(f"{site.issuer}/demo/whoami",  # the good proof still works
                       headers={"Authorization": f"DPoP {token}", "DPoP": good})
    assert r.status_code == 200, r.text


# -- the token endpoint: client assertions (private_key_jwt) ----------------------------------
# A form holds 64 KiB: about 45 000 levels fit in client_assertion.

def _assertion_claims(site: Site) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": site.pk.client_id, "sub": site.pk.client_id, "aud": site.pk.token_url,
            "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(12)}


@pytest.mark.parametrize("endpoint", ["token", "introspect"])
@pytest.mark.parametrize("defect", DEFECT_NAMES)
async def test_client_assertion_with_hostile_json(http, site, endpoint, defect):
    assertion = build(defect, {"alg": "ES256", "kid": "pk1"}, _assertion_claims(site),
                      ec_signer(site.pk_key), sized=45_000)
    form = {"client_id": site.pk.client_id, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion}
    form.update({"grant_type": "client_credentials"} if endpoint == "token"
                else {"token": "x"})
    if "duplicate-member" in defect or "surrogate" in defect:
        form.pop("client_id")  # the sub decides who is asking; let the assertion speak
    before = await counts(site.broker, site.tenant)
    r = await http.post(f"{site.issuer}/{endpoint}", data=form)
    if _over_form_limit(form):
        _json_error(r, 400, "invalid_request")  # the form is over 64 KiB: not even parsed
    else:
        _json_error(r, 401, "invalid_client")
    assert "access_token" not in r.text and "active" not in r.text
    action = "token.refused" if endpoint == "token" else "introspection.refused"
    await assert_refused_wrote_only_audit(site.broker, site.tenant, before, action=action)


async def test_client_assertion_still_works(http, site):
    """The control: the same construction without a defect is accepted."""
    assertion = jwt(obj({"alg": "ES256", "kid": "pk1"}), obj(_assertion_claims(site)),
                    ec_signer(site.pk_key))
    r = await http.post(site.pk.token_url, data={
        "grant_type": "client_credentials", "client_id": site.pk.client_id,
        "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
    assert r.status_code == 200, r.text


# -- the token endpoint: an ID-JAG at the jwt-bearer grant ------------------------------------

@dataclass
class Jag:
    acme: str
    pricing: str
    remote: TestClient  # the agent's client at pricing
    kid: str
    sign: Signer  # acme's key service


@pytest.fixture(scope="module")
async def jag(broker: Broker) -> Jag:
    acme, pricing = await new_tenant(broker), await new_tenant(broker)
    remote = await new_client(broker, pricing, scopes=["read"], audiences=["https://api.x"])
    await ops.add_trust_link(broker, acme, peer_tenant=pricing, send=True)
    await ops.add_trust_link(broker, pricing, peer_tenant=acme, scope_ceiling=["read"],
                             accept=True)
    signer = await broker.keys.raw_signer(acme)
    return Jag(acme, pricing, remote, signer.kid, signer.sign)


def _jag_claims(broker: Broker, j: Jag) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": broker.issuer(j.acme), "sub": "alice", "aud": broker.issuer(j.pricing),
            "client_id": j.remote.client_id, "jti": secrets.token_urlsafe(12), "iat": now,
            "exp": now + 120, "scope": "read", "tenant": j.acme}


@pytest.mark.parametrize("defect", [*DEFECT_NAMES, "auth_time-NaN", "auth_time-string"])
async def test_id_jag_with_hostile_json(http, broker, jag, defect):
    header = {"typ": id_jag.ID_JAG_TYP, "alg": "ES256", "kid": jag.kid}
    claims = _jag_claims(broker, jag)
    if defect.startswith("auth_time"):
        claims["auth_time"] = float("nan") if defect.endswith("NaN") else "yesterday"
        assertion = jwt(obj(header), json.dumps(claims).encode(), jag.sign)
    else:
        assertion = build(defect, header, claims, jag.sign, sized=45_000)
    before = await counts(broker, jag.pricing)
    form = {"grant_type": id_jag.JWT_BEARER, "assertion": assertion}
    r = await http.post(jag.remote.token_url, auth=jag.remote.basic, data=form)
    _json_error(r, 400, "invalid_request" if _over_form_limit(form) else "invalid_grant")
    assert "access_token" not in r.text
    await assert_refused_wrote_only_audit(broker, jag.pricing, before)


async def test_id_jag_control_is_redeemed(http, broker, jag):
    header = {"typ": id_jag.ID_JAG_TYP, "alg": "ES256", "kid": jag.kid}
    assertion = jwt(obj(header), obj(_jag_claims(broker, jag)), jag.sign)
    r = await http.post(jag.remote.token_url, auth=jag.remote.basic,
                        data={"grant_type": id_jag.JWT_BEARER, "assertion": assertion})
    assert r.status_code == 200, r.text


# -- introspection of a hostile token: simply not active --------------------------------------

@pytest.mark.parametrize("defect", DEFECT_NAMES)
async def test_introspected_hostile_token_is_inactive(http, site, defect):
    token = build(defect, {"typ": "at+jwt", "alg": "ES256", "kid": site.kid},
                  site.access_claims(), site.tenant_sign, sized=45_000)
    before = await counts(site.broker, site.tenant)
    r = await http.post(f"{site.issuer}/introspect", data={"token": token},
                        auth=site.client.basic)
    if _over_form_limit({"token": token}):
        _json_error(r, 400, "invalid_request")
        await assert_refused_wrote_only_audit(site.broker, site.tenant, before,
                                              action="introspection.refused")
        return
    assert r.status_code == 200, r.text
    assert r.json() == {"active": False}
    await _nothing_written(site.broker, site.tenant, before)


# -- logout: id_token_hint ---------------------------------------------------------------------

@pytest.mark.parametrize("defect", ["header-deep-open", "header-deep-closed", "claims-deep-open",
                                    "claims-deep-closed", "header-duplicate-kid",
                                    "claims-duplicate-member", "claims-not-object", "exp-NaN",
                                    "iat-Infinity", "nbf-1e400", "claims-lone-surrogate"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_logout_with_hostile_id_token_hint(http, site, defect, method):
    now = int(time.time())
    claims = {"iss": site.issuer, "sub": "u1", "aud": site.client.client_id, "iat": now,
              "exp": now + 300, "sid": "s1"}
    hint = build(defect, {"typ": "JWT", "alg": "ES256", "kid": site.kid}, claims,
                 site.tenant_sign, sized=1_500 if method == "GET" else 45_000)
    before = await counts(site.broker, site.tenant)
    if method == "GET":
        r = await http.get(f"{site.issuer}/logout", params={"id_token_hint": hint})
    else:
        r = await http.post(f"{site.issuer}/logout", data={"id_token_hint": hint})
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"].startswith("text/html")
    assert "invalid_request" in r.text
    await _nothing_written(site.broker, site.tenant, before)  # no logout event, no session ended


# -- the admin API and the approvals API: JSON bodies ------------------------------------------

BODIES: dict[str, bytes] = {
    "deep-100k-closed": b'{"name":' + deep(DEEP) + b"}",
    "deep-60k-open": b'{"name":' + deep(60_000, closed=False),
    "deep-2k": b'{"name":"a","settings":' + deep(2_000) + b"}",
    "deep-objects": b'{"name":"a","settings":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
    "nan": b'{"name":"a","settings":{"token_lifetime":NaN}}',
    "infinity": b'{"name":"a","display_name":Infinity}',
    "minus-infinity": b'{"name":-Infinity}',
    "1e400": b'{"name":"a","access_token_lifetime":1e400}',
    "huge-int": b'{"name":"a","access_token_lifetime":' + b"9" * 5_000 + b"}",
    "duplicate-name": b'{"name":"a","name":"b"}',
    "lone-surrogate": b'{"name":"\\udc00"}',
    "encoded-surrogate": b'{"name":"\xed\xa0\x80"}',
    "not-utf8": b'{"name":"caf\xe9"}',
    "bom": b'\xef\xbb\xbf{"name":"a"}',
    "array": b"[1,2,3]",
    "string": b'"name"',
    "number": b"42",
    "trailing-garbage": b'{"name":"a"} x',
    "two-values": b'{"name":"a"}{"name":"b"}',
    "truncated": b'{"name":"a"',
    "over-64KiB": b'{"name":"' + b"n" * 70_000 + b'"}',
}


async def _tenants(http: httpx.AsyncClient) -> list[Any]:
    r = await http.get("/admin/v1/tenants", headers=ADMIN)
    assert r.status_code == 200
    return list(r.json())


@pytest.mark.parametrize("path", ["/admin/v1/tenants", "/admin/v1/tenants/{t}/clients",
                                  "/admin/v1/partners", "/admin/v1/tenants/{t}/trust-links",
                                  "/admin/v1/tenants/{t}/authorization-details-types"])
@pytest.mark.parametrize("body", list(BODIES))
async def test_admin_api_refuses_hostile_json(http, broker, site, path, body):
    before_tenants = await _tenants(http)
    before = await counts(broker, site.tenant)
    r = await http.post(path.format(t=site.tenant), content=BODIES[body],
                        headers={**ADMIN, "Content-Type": "application/json"})
    _json_error(r, 400, "invalid_request")
    assert await _tenants(http) == before_tenants
    await _nothing_written(broker, site.tenant, before)


@pytest.mark.parametrize("body", list(BODIES))
async def test_approvals_api_refuses_hostile_json(http, broker, site, body):
    before = await counts(broker, site.tenant)
    r = await http.post(f"{site.issuer}/approvals.json", content=BODIES[body],
                        headers={**ADMIN, "Content-Type": "application/json"})
    _json_error(r, 400, "invalid_request")
    await _nothing_written(broker, site.tenant, before)


# -- authorization_details (RFC 9396) in a pushed authorization request ------------------------

@pytest.mark.parametrize("raw", [deep(5_000), deep(15_000, closed=False),
                                 b'[{"type":"t","amount":NaN}]', b'[{"type":"a","type":"b"}]',
                                 b'[{"type":"t","x":1e400}]', b'[{"type":"\\ud800"}]'])
async def test_par_refuses_hostile_authorization_details(http, broker, site, raw):
    app = await new_client(broker, site.tenant, redirect_uris=["https://app.example/cb"],
                           scopes=["openid"])
    before = await counts(broker, site.tenant)
    r = await http.post(f"{site.issuer}/par", auth=app.basic, data={
        "response_type": "code", "client_id": app.client_id,
        "redirect_uri": "https://app.example/cb", "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuHJQ8xgWrY",
        "code_challenge_method": "S256", "authorization_details": raw.decode("ascii")})
    _json_error(r, 400, "invalid_authorization_details")
    assert "request_uri" not in r.text
    after = await counts(broker, site.tenant)
    assert after["replay_records"] == before["replay_records"]

"""Property: whatever JSON a JWT carries and whatever a form or admin body holds, the real app
answers 2xx or 4xx, never 5xx (Hypothesis, over ASGI).

Generated JWTs start from a valid header and claims set, then members are replaced by random
JSON (nested arrays and objects, ``NaN``/``Infinity``, huge and negative numbers, booleans,
strings, ``null``), dropped, duplicated or added, or a whole segment is replaced by hostile raw
JSON. They are signed by the key the endpoint trusts (the tenant's key service, the client's
own key, the trusted peer tenant's key), so the JSON reaches every check after the signature.

Bounded in time: ``EXAMPLES`` per test (``TESSERA_PROPERTY_EXAMPLES`` overrides it for a
longer hunt), no deadline.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey
from starlette.routing import Route

from broker import id_jag
from broker.admin import http as admin
from broker.app import create_app
from broker.runtime import Broker
from tests import admin_ops as ops
from tests.conftest import ADMIN_TOKEN, TestClient, new_client, new_tenant
from tests.dpop_client import make_proof, new_key
from tests.hostile_jwt import ASSERTION_TYPE, Signer, b64, ec_signer

EXAMPLES = int(os.environ.get("TESSERA_PROPERTY_EXAMPLES", "150"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

# -- JSON, raw -----------------------------------------------------------------------------------

SPECIAL_RAW = [
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "9" * 5_000, "-" + "9" * 40,
    str(2**41), str(2**63), str(-(2**63)), "0", "-0", "0.5", "1.7976931348623157e308",
    "true", "false", "null", '""', '"\\ud800"', '"\\udc00\\ud800"', '"\\u0000"',
    "[" * 3_000, "[" * 40 + "]" * 40, '{"a":' * 40 + "1" + "}" * 40, "{}", "[]",
    '{"a":1,"a":2}', "[1,", '"unterminated', "tru", "01", "1.", ".5", "+1", "0x10",
]

scalars = (st.none() | st.booleans()
           | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=24))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=10)
raw_json = values.map(lambda v: json.dumps(v, allow_nan=True)) | st.sampled_from(SPECIAL_RAW)


def join_object(members: list[tuple[str, str]]) -> str:
    """A JSON object of raw member values; repeated names stay repeated."""
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members) + "}"


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], names: list[str]) -> bytes:
    """``base`` with some members replaced, dropped, duplicated or added; or a hostile value
    in place of the whole object."""
    if draw(st.integers(0, 9)) == 0:
        return draw(raw_json).encode("utf-8", "surrogatepass")
    members = [(k, json.dumps(v)) for k, v in base.items()]
    for name in draw(st.lists(st.sampled_from(names), max_size=4)):
        action = draw(st.sampled_from(["replace", "drop", "duplicate", "add"]))
        if action == "drop":
            members = [(k, v) for k, v in members if k != name]
        elif action == "replace":
            members = [(k, v) for k, v in members if k != name] + [(name, draw(raw_json))]
        else:
            members.append((name, draw(raw_json)))
    return join_object(members).encode("utf-8", "surrogatepass")


def compact(header: bytes, claims: bytes, sign: Signer) -> str:
    data = f"{b64(header)}.{b64(claims)}".encode("ascii")
    return f"{data.decode()}.{b64(sign(data))}"


HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64", "jwk", "x5c", "x5u", "jku", "cty", "zip",
                "enc", "x5t", "x5t#S256", "nonce"]
CLAIM_NAMES = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "cnf",
               "act", "may_act", "sub_id", "auth_time", "acr", "amr", "authorization_details",
               "resource", "tenant", "email", "azp", "nonce", "sid", "htm", "htu", "ath"]


@st.composite
def signed_jwt(draw: st.DrawFn, header: dict[str, Any], claims: dict[str, Any],
               sign: Signer) -> str:
    return compact(draw(mutated(header, HEADER_NAMES)), draw(mutated(claims, CLAIM_NAMES)), sign)


def assert_not_5xx(r: httpx.Response, *, redirects: bool = False) -> None:
    """2xx or 4xx (3xx too where browsers are sent on, with ``redirects``); an error is a JSON
    OAuth error unless it is a page. (``--hypothesis-show-statistics`` shows the mix.)"""
    event(f"HTTP {r.status_code}")
    ok = 200 <= r.status_code < 300 or 400 <= r.status_code < 500
    assert ok or (redirects and 300 <= r.status_code < 400), (r.status_code, r.text[:300])
    if r.status_code >= 400 and r.headers.get("content-type", "").startswith("application/json"):
        assert isinstance(r.json().get("error"), str), r.text


# -- the site ------------------------------------------------------------------------------------

@dataclass(repr=False)
class Site:
    broker: Broker
    tenant: str
    issuer: str
    client: TestClient  # client_secret_basic
    pk: TestClient  # private_key_jwt
    pk_key: ECKey
    kid: str
    sign: Signer  # the tenant's key service
    acme: str  # a peer tenant the site's tenant accepts ID-JAGs from
    acme_kid: str
    acme_sign: Signer
    agent: TestClient  # the agent at acme, with a managed connection to the site's tenant
    fuzz: str  # a tenant of its own for the admin API
    fuzz_client: str

    def __repr__(self) -> str:
        return f"Site(tenant={self.tenant!r}, acme={self.acme!r}, fuzz={self.fuzz!r})"

    def at_claims(self) -> dict[str, Any]:
        now = int(time.time())
        return {"iss": self.issuer, "sub": self.client.client_id, "aud": f"{self.issuer}/demo",
                "client_id": self.client.client_id, "iat": now, "exp": now + 300,
                "jti": secrets.token_urlsafe(12), "scope": "openid read"}


@pytest.fixture(scope="module")
async def site(broker: Broker) -> Site:
    tenant, acme, fuzz = [await new_tenant(broker) for _ in range(3)]
    client = await new_client(broker, tenant, scopes=["openid", "read"])
    key = ECKey.generate_key("P-256", parameters={"kid": "pk1"})
    pk = await new_client(broker, tenant, auth_method="private_key_jwt",
                          jwks={"keys": [key.as_dict(private=False)]})
    agent = await new_client(broker, acme, scopes=[], audiences=[])
    await ops.add_trust_link(broker, acme, peer_tenant=tenant, send=True)
    await ops.add_trust_link(broker, tenant, peer_tenant=acme, scope_ceiling=["read"],
                             accept=True)
    await ops.put_managed_connection(
        broker, acme, client_id=agent.client_id, audience=broker.issuer(tenant),
        rules={"read": "grant"}, remote_client_id=client.client_id, resources=[],
        max_lifetime=120)
    fuzz_client = await new_client(broker, fuzz)
    signer, acme_signer = await broker.keys.raw_signer(tenant), await broker.keys.raw_signer(acme)
    return Site(broker, tenant, broker.issuer(tenant), client, pk, key, signer.kid, signer.sign,
                acme, acme_signer.kid, acme_signer.sign, agent, fuzz, fuzz_client.client_id)


def _at_header(site: Site) -> dict[str, Any]:
    return {"typ": "at+jwt", "alg": "ES256", "kid": site.kid}


# -- resources: the demo resource and userinfo ---------------------------------------------------

@PROPERTY
@given(data=st.data(), path=st.sampled_from(["/demo/whoami", "/userinfo"]),
       scheme=st.sampled_from(["Bearer", "DPoP", "bearer"]))
async def test_resources_answer_4xx_to_any_token(http, site, data, path, scheme):
    token = data.draw(signed_jwt(_at_header(site), site.at_claims(), site.sign))
    headers = {"Authorization": f"{scheme} {token}"}
    if scheme == "DPoP":
        headers["DPoP"] = make_proof(new_key(), htm="GET", htu=site.issuer + path,
                                     access_token=token)
    assert_not_5xx(await http.get(site.issuer + path, headers=headers))


@PROPERTY
@given(data=st.data(), scheme=st.sampled_from(["Bearer", "DPoP"]))
async def test_resource_toolkit_answers_4xx_to_any_token(http, site, data, scheme):
    """The resource-server toolkit (broker.resource_server) in front of an app: any signed
    token, valid or mutated, is a 2xx or a 4xx, never an exception."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from broker.resource_server import RemoteJWKS, ResourceConfig, TokenVerifier
    from broker.resource_server.asgi import TesseraAuthMiddleware

    async def ok(_request: Any) -> JSONResponse:
        return JSONResponse({})

    verifier = TokenVerifier(ResourceConfig(f"{site.issuer}/demo", site.issuer),
                             RemoteJWKS(f"{site.issuer}/jwks", http), None)
    app = TesseraAuthMiddleware(Starlette(routes=[Route("/demo", ok)]), verifier)
    token = data.draw(signed_jwt(_at_header(site), site.at_claims(), site.sign))
    headers = {"Authorization": f"{scheme} {token}"}
    if scheme == "DPoP":
        headers["DPoP"] = make_proof(new_key(), htm="GET", htu="http://rs.test/demo",
                                     access_token=token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://rs.test") as rs:
        assert_not_5xx(await rs.get("/demo", headers=headers))


# -- introspection ---------------------------------------------------------------------------------

@PROPERTY
@given(data=st.data())
async def test_introspection_answers_any_token(http, site, data):
    token = data.draw(signed_jwt(_at_header(site), site.at_claims(), site.sign))
    r = await http.post(f"{site.issuer}/introspect", data={"token": token}, auth=site.client.basic)
    assert_not_5xx(r)
    assert r.status_code == 200 or len(token) > 60_000


# -- the token endpoint: client assertions, ID-JAGs, subject tokens, any form ---------------------

@PROPERTY
@given(data=st.data(), endpoint=st.sampled_from(["token", "introspect", "revoke"]))
async def test_token_endpoints_answer_any_client_assertion(http, site, data, endpoint):
    now = int(time.time())
    claims = {"iss": site.pk.client_id, "sub": site.pk.client_id, "aud": site.pk.token_url,
              "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(12)}
    assertion = data.draw(signed_jwt({"alg": "ES256", "kid": "pk1"}, claims,
                                     ec_signer(site.pk_key)))
    form = {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
            **({"grant_type": "client_credentials"} if endpoint == "token" else {"token": "x"})}
    assert_not_5xx(await http.post(f"{site.issuer}/{endpoint}", data=form))


@PROPERTY
@given(data=st.data(), dpop=st.booleans())
async def test_jwt_bearer_answers_any_id_jag(http, site, data, dpop):
    now = int(time.time())
    claims = {"iss": site.broker.issuer(site.acme), "sub": "alice", "aud": site.issuer,
              "client_id": site.client.client_id, "jti": secrets.token_urlsafe(12), "iat": now,
              "exp": now + 120, "scope": "read", "tenant": site.acme}
    header = {"typ": id_jag.ID_JAG_TYP, "alg": "ES256", "kid": site.acme_kid}
    assertion = data.draw(signed_jwt(header, claims, site.acme_sign))
    headers = {"DPoP": make_proof(new_key(), htm="POST", htu=site.client.token_url)} if dpop else {}
    r = await http.post(site.client.token_url, auth=site.client.basic, headers=headers,
                        data={"grant_type": id_jag.JWT_BEARER, "assertion": assertion})
    assert_not_5xx(r)


@PROPERTY
@given(data=st.data(), kind=st.sampled_from(["id_token", "access_token"]))
async def test_token_exchange_answers_any_subject_token(http, site, data, kind):
    now = int(time.time())
    if kind == "id_token":  # at acme: an ID token of acme's user for the agent -> an ID-JAG
        url, auth = site.agent.token_url, site.agent.basic
        header = {"typ": "JWT", "alg": "ES256", "kid": site.acme_kid}
        claims = {"iss": site.broker.issuer(site.acme), "sub": "alice",
                  "aud": site.agent.client_id, "iat": now, "exp": now + 300, "auth_time": now}
        token = data.draw(signed_jwt(header, claims, site.acme_sign))
        form = {"requested_token_type": id_jag.ID_JAG, "audience": site.issuer,
                "subject_token_type": id_jag.ID_TOKEN, "scope": "read"}
    else:  # on behalf of, inside the site's tenant
        url, auth = site.client.token_url, site.client.basic
        token = data.draw(signed_jwt(_at_header(site), site.at_claims(), site.sign))
        form = {"subject_token_type": id_jag.ACCESS_TOKEN, "audience": "https://api.example"}
    r = await http.post(url, auth=auth, data={"grant_type": id_jag.TOKEN_EXCHANGE,
                                              "subject_token": token, **form})
    assert_not_5xx(r)


QUERY_PARAMS = ["response_type", "state", "nonce", "prompt", "max_age", "code_challenge",
                "code_challenge_method", "request_uri", "request", "login_hint", "id_token_hint",
                "post_logout_redirect_uri", "flow", "SAMLRequest", "SAMLResponse", "RelayState",
                "SigAlg", "Signature", "sp", "sub", "csrf", "decision", "id", "upstream",
                "binding_message", "login_hint_token", "requested_expiry", "acr_values",
                "ui_locales", "claims", "response_mode", "iss", "error"]
COOKIES = ["tessera_session=x", "tessera_flow=" + "a" * 40, "tessera_session=%ff%00",
           "tessera_flow=;tessera_flow=b", "x=" + "[" * 500]
PARAMS = ["grant_type", "scope", "resource", "audience", "assertion", "subject_token",
          "subject_token_type", "actor_token", "actor_token_type", "requested_token_type",
          "authorization_details", "code", "code_verifier", "redirect_uri", "refresh_token",
          "auth_req_id", "client_id", "token", "token_type_hint", "dpop_jkt"]
GRANTS = ["client_credentials", id_jag.JWT_BEARER, id_jag.TOKEN_EXCHANGE, "authorization_code",
          "refresh_token", "urn:ietf:params:oauth:grant-type:saml2-bearer",
          "urn:openid:params:grant-type:ciba", "password", ""]
TYPES = [id_jag.ID_JAG, id_jag.ID_TOKEN, id_jag.ACCESS_TOKEN, id_jag.REFRESH_TOKEN, id_jag.SAML2,
         "urn:ietf:params:oauth:token-type:jwt", "urn:tessera:api-key"]
param_values = (st.text(max_size=40) | st.sampled_from(GRANTS + TYPES + SPECIAL_RAW)
                | raw_json | st.sampled_from(["read", "openid read", "https://api.example"]))


@PROPERTY
@given(grant=st.sampled_from(GRANTS),
       pairs=st.lists(st.tuples(st.sampled_from(PARAMS) | st.text(min_size=1, max_size=12),
                                param_values), max_size=8),
       endpoint=st.sampled_from(["token", "introspect", "revoke", "par", "bc-authorize"]))
async def test_client_endpoints_answer_any_form(http, site, grant, pairs, endpoint):
    body = urlencode([("grant_type", grant), *pairs], quote_via=quote).encode("ascii")
    r = await http.post(f"{site.issuer}/{endpoint}", content=body, auth=site.client.basic,
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_not_5xx(r)


# -- the admin API --------------------------------------------------------------------------------

ADMIN_FIELDS = [
    "access_token_lifetime", "acs_url", "approver", "audience", "audiences",
    "authorization_details_types", "by", "client_id", "client_secret", "contact", "default_rule",
    "description", "display_name", "domains", "dpop_bound_access_tokens", "entity_id",
    "expires_at", "first_party", "id", "issuer", "jwks", "jwks_uri", "kind", "mapping",
    "max_lifetime", "metadata", "name", "oidc", "partner", "post_logout_redirect_uris", "reason",
    "redirect_uri", "redirect_uris", "remote_client_id", "require_pushed_authorization_requests",
    "resources", "rules", "saml", "schema", "scope_ceiling", "scopes", "settings",
    "sp_entity_id", "sp_metadata_url", "tenant", "tls_client_certificate_bound_access_tokens",
    "token_endpoint_auth_method", "type", "value", "purpose", "owner", "rule", "threshold",
]
# Rotating the admin token would replace the bearer every later test of the session sends
# (the old one lasts only for its overlap): its hostile bodies are tested on a database of its
# own (tests/admin/test_admin_token_rotation.py) and by Schemathesis on its own server.
SHARED_BEARER = "/admin/v1/admin-token/rotate"
WRITES = [(method, route.path) for route in admin.routes() if route.path != SHARED_BEARER
          for method in sorted((route.methods or set()) & {"POST", "PUT", "PATCH"})]


@st.composite
def admin_body(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 5)) == 0:
        return draw(raw_json).encode("utf-8", "surrogatepass")
    members = draw(st.lists(st.tuples(st.sampled_from(ADMIN_FIELDS), raw_json), max_size=6))
    return join_object(members).encode("utf-8", "surrogatepass")


@PROPERTY
@given(write=st.sampled_from(WRITES), body=admin_body(), data=st.data())
async def test_admin_api_answers_any_body(http, site, write, body, data):
    method, template = write
    names = {"tenant": site.fuzz, "client_id": site.fuzz_client,
             "partner": "fuzz-" + site.fuzz, "sub": "nobody"}
    path = template
    for name in ("tenant", "client_id", "partner", "link", "upstream", "key_id", "sub",
                 "audience:uri", "entity_id:uri"):
        value = names.get(name) or data.draw(st.text("abcdef0123456789-_", min_size=1,
                                                     max_size=12))
        path = path.replace("{" + name + "}", value)
    r = await http.request(method, path, content=body, headers={
        "Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"})
    assert_not_5xx(r)


def test_the_admin_api_is_covered():
    """Every admin write route is drawn from (and there are some)."""
    assert len(WRITES) > 20
    assert ("POST", "/admin/v1/tenants") in WRITES
    assert not any(path == SHARED_BEARER for _, path in WRITES)



# -- every route: any query, any form ------------------------------------------------------------

@pytest.fixture(scope="module")
def every_route(broker: Broker) -> list[tuple[str, str]]:
    """(method, path template) of every route of the real app."""
    app = create_app(broker, background=False, migrate=False)
    return [(method, route.path) for route in app.routes
            if isinstance(route, Route) and route.path not in ("/healthz", SHARED_BEARER)
            for method in sorted((route.methods or set()) - {"HEAD"})]


@PROPERTY
@given(data=st.data(),
       query=st.lists(st.tuples(st.sampled_from(PARAMS + QUERY_PARAMS) | st.text(max_size=8),
                                param_values), max_size=6),
       form=st.lists(st.tuples(st.sampled_from(PARAMS + QUERY_PARAMS) | st.text(max_size=8),
                               param_values), max_size=6),
       cookie=st.booleans(), auth=st.sampled_from(["none", "client", "admin"]))
async def test_every_route_answers_any_request(http, site, every_route, data, query, form,
                                               cookie, auth):
    method, template = data.draw(st.sampled_from(every_route))
    path = template
    for name in re.findall(r"{(\w+)}", template):
        value = site.tenant if name == "tenant" else data.draw(
            st.text("abcdefghij0123456789-_.", min_size=1, max_size=12))
        path = path.replace("{" + name + "}", value)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = data.draw(st.sampled_from(COOKIES))
    if auth == "admin":
        headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
    elif auth == "client":
        headers["Authorization"] = "Basic " + base64.b64encode(
            ":".join(site.client.basic).encode()).decode()
    r = await http.request(method, path, params=query, headers=headers,
                           content=urlencode(form, quote_via=quote) if method == "POST" else None)
    assert_not_5xx(r, redirects=True)

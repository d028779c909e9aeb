"""The demo resource (RFC 6750 / RFC 9449 §7), introspection (RFC 7662), revocation (RFC 7009)."""

from __future__ import annotations

import httpx
import pytest

from broker.app import create_app
from tests import admin_ops as ops
from tests.broker.helpers import counts, jwt_parts
from tests.conftest import BASE_URL, new_client, new_tenant
from tests.dpop_client import make_proof, new_key

CC = {"grant_type": "client_credentials"}


async def _token(http, client, key=None, **data):
    headers = {"DPoP": make_proof(key, htm="POST", htu=client.token_url)} if key else {}
    r = await http.post(client.token_url, data={**CC, **data}, auth=client.basic, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _whoami(client):
    return f"{client.issuer}/demo/whoami"


def _dpop_headers(client, token, key, **kw):
    kw.setdefault("htm", "GET")
    kw.setdefault("htu", _whoami(client))
    return {"Authorization": f"DPoP {token}",
            "DPoP": make_proof(key, access_token=token, **kw)}


# -- demo resource -----------------------------------------------------------------------

async def test_bearer_token_at_resource(http, client):
    token = await _token(http, client)
    r = await http.get(_whoami(client), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["sub"] == client.client_id and r.json()["token_type"] == "Bearer"


async def test_dpop_token_at_resource(http, client):
    key = new_key()
    token = await _token(http, client, key)
    r = await http.get(_whoami(client), headers=_dpop_headers(client, token, key))
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP" and r.json()["cnf"]["jkt"]


async def test_missing_credentials_challenge(http, client):
    r = await http.get(_whoami(client))
    assert r.status_code == 401
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith("Bearer realm=") and "DPoP algs=" in challenge
    assert "error=" not in challenge


@pytest.mark.parametrize("defect", ["as-bearer", "no-proof", "wrong-ath", "no-ath", "other-key",
                                    "htm", "htu", "replay", "unbound-as-dpop"])
async def test_dpop_resource_refusals(http, client, defect):
    key = new_key()
    token = await _token(http, client, key)
    url = _whoami(client)
    if defect == "as-bearer":
        headers = {"Authorization": f"Bearer {token}"}
    elif defect == "no-proof":
        headers = {"Authorization": f"DPoP {token}"}
    elif defect == "wrong-ath":
        headers = {"Authorization": f"DPoP {token}",
                   "DPoP": make_proof(key, htm="GET", htu=url, access_token=token + "x")}
    elif defect == "no-ath":
        headers = {"Authorization": f"DPoP {token}", "DPoP": make_proof(key, htm="GET", htu=url)}
    elif defect == "other-key":
        headers = _dpop_headers(client, token, new_key())
    elif defect == "htm":
        headers = _dpop_headers(client, token, key, htm="POST")
    elif defect == "htu":
        headers = _dpop_headers(client, token, key, htu=f"{client.issuer}/token")
    elif defect == "replay":
        headers = _dpop_headers(client, token, key)
        assert (await http.get(url, headers=headers)).status_code == 200
    else:
        token = await _token(http, client)
        headers = _dpop_headers(client, token, key)
    r = await http.get(url, headers=headers)
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    expected = "invalid_token" if defect in ("as-bearer", "unbound-as-dpop") else \
        "invalid_dpop_proof"
    assert error == expected
    challenge = r.headers["www-authenticate"]
    assert f'error="{expected}"' in challenge
    assert 'algs="' in challenge


async def test_resource_refuses_wrong_audience_tampered_and_revoked(http, broker, client):
    token = await _token(http, client, resource="https://api.example")
    r = await http.get(_whoami(client), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]

    token = await _token(http, client)
    head, body, sig = token.split(".")
    tampered = f"{head}.{body}.{sig[:-3]}AAA"
    r = await http.get(_whoami(client), headers={"Authorization": f"Bearer {tampered}"})
    assert r.status_code == 401

    assert (await http.post(f"{client.issuer}/revoke", data={"token": token},
                            auth=client.basic)).status_code == 200
    r = await http.get(_whoami(client), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "revoked" in r.json()["error_description"]


async def test_expired_token_refused_everywhere(clocked_broker, client):
    broker, clock = clocked_broker
    app = create_app(broker, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        token = await _token(http, client)
        clock.advance(301)
        r = await http.get(_whoami(client), headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and "expired" in r.json()["error_description"]
        r = await http.post(f"{client.issuer}/introspect", data={"token": token},
                            auth=client.basic)
        assert r.json() == {"active": False}


async def test_two_credentials_is_invalid_request(http, client):
    token = await _token(http, client)
    r = await http.get(_whoami(client) + f"?access_token={token}",
                       headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


# -- introspection -----------------------------------------------------------------------

async def test_introspection_of_dpop_token(http, client):
    key = new_key()
    token = await _token(http, client, key, scope="read")
    r = await http.post(f"{client.issuer}/introspect",
                        data={"token": token, "token_type_hint": "refresh_token"},
                        auth=client.basic)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    claims = jwt_parts(token)[1]
    assert body["active"] is True and body["token_type"] == "DPoP"
    for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf"):
        assert body[name] == claims[name]


async def test_introspection_requires_client_authentication(http, broker, client):
    token = await _token(http, client)
    before = await counts(broker, client.tenant)
    r = await http.post(f"{client.issuer}/introspect", data={"token": token})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = await http.post(f"{client.issuer}/introspect", data={"token": token},
                        auth=(client.client_id, "wrong"))
    assert r.status_code == 401
    after = await counts(broker, client.tenant)
    assert after["audit_events"] == before["audit_events"] + 2


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
async def test_introspection_of_junk(http, client, token):
    r = await http.post(f"{client.issuer}/introspect", data={"token": token}, auth=client.basic)
    if token:
        assert r.status_code == 200 and r.json() == {"active": False}
    else:
        assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_other_tenants_token_is_inactive(http, broker, client):
    other = await new_client(broker, await new_tenant(broker))
    token = await _token(http, other)
    r = await http.post(f"{client.issuer}/introspect", data={"token": token}, auth=client.basic)
    assert r.json() == {"active": False}


async def test_disabled_client_tokens_go_inactive(http, broker, tenant):
    c = await new_client(broker, tenant)
    token = await _token(http, c)
    await ops.set_client_status(broker, tenant, c.client_id, "disabled")
    probe = await new_client(broker, tenant)
    r = await http.post(f"{c.issuer}/introspect", data={"token": token}, auth=probe.basic)
    assert r.json() == {"active": False}


# -- revocation --------------------------------------------------------------------------

async def test_revocation_is_immediate_on_another_replica(http, broker, clocked_broker, client):
    replica, _ = clocked_broker
    app = create_app(replica, background=False, migrate=False)
    token = await _token(http, client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as other:
        r = await other.post(f"{client.issuer}/introspect", data={"token": token},
                             auth=client.basic)
        assert r.json()["active"] is True
        r = await http.post(f"{client.issuer}/revoke", data={"token": token}, auth=client.basic)
        assert r.status_code == 200 and r.content == b""
        r = await other.post(f"{client.issuer}/introspect", data={"token": token},
                             auth=client.basic)
        assert r.json() == {"active": False}
    events = await ops.export_audit(broker, client.tenant)
    assert events[-1]["action"] == "token.revoked"
    assert events[-1]["detail"]["jti"] == jwt_parts(token)[1]["jti"]


async def test_only_the_owning_client_revokes(http, broker, client):
    other = await new_client(broker, client.tenant)
    token = await _token(http, client)
    before = await counts(broker, client.tenant)
    r = await http.post(f"{client.issuer}/revoke", data={"token": token}, auth=other.basic)
    assert r.status_code == 400 and r.json()["error"] == "unauthorized_client"
    after = await counts(broker, client.tenant)
    assert after["revoked_tokens"] == before["revoked_tokens"]
    r = await http.post(f"{client.issuer}/introspect", data={"token": token}, auth=client.basic)
    assert r.json()["active"] is True


async def test_revoking_unknown_token_is_ok_and_needs_auth(http, client):
    r = await http.post(f"{client.issuer}/revoke", data={"token": "never-issued"},
                        auth=client.basic)
    assert r.status_code == 200
    r = await http.post(f"{client.issuer}/revoke", data={"token": "never-issued"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"

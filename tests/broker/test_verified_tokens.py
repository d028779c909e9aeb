"""The cache of access tokens whose signature this process has checked
(``broker.verified_tokens``): a repeat skips only the signature check; expiry, revocation,
compromise, the client's state and the tenant still count on every request."""

from __future__ import annotations

import httpx

from broker.app import create_app
from broker.verified_tokens import VerifiedTokens
from tests import admin_ops as ops
from tests.conftest import BASE_URL, new_client, new_tenant

CC = {"grant_type": "client_credentials"}


async def _token(http: httpx.AsyncClient, client) -> str:
    r = await http.post(client.token_url, data=CC, auth=client.basic)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


async def _introspect(http: httpx.AsyncClient, client, token: str, by=None) -> dict:
    r = await http.post(f"{client.issuer}/introspect", data={"token": token},
                        auth=(by or client).basic)
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_verified_token_is_remembered_and_still_checked_for_revocation(
        http, broker, client):
    token = await _token(http, client)
    before = len(broker.verified)
    assert (await _introspect(http, client, token))["active"] is True
    assert len(broker.verified) == before + 1
    assert broker.verified.get(client.tenant, token) is not None
    assert (await _introspect(http, client, token))["active"] is True  # the hit
    assert len(broker.verified) == before + 1
    r = await http.post(f"{client.issuer}/revoke", data={"token": token}, auth=client.basic)
    assert r.status_code == 200
    assert await _introspect(http, client, token) == {"active": False}


async def test_a_remembered_token_expires(clocked_broker, client):
    broker, clock = clocked_broker
    app = create_app(broker, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        token = await _token(http, client)
        assert (await _introspect(http, client, token))["active"] is True
        assert broker.verified.get(client.tenant, token) is not None
        clock.advance(301)
        assert await _introspect(http, client, token) == {"active": False}


async def test_a_remembered_token_of_a_disabled_client_is_inactive(http, broker, tenant):
    c = await new_client(broker, tenant)
    probe = await new_client(broker, tenant)
    token = await _token(http, c)
    assert (await _introspect(http, c, token, by=probe))["active"] is True
    await ops.set_client_status(broker, tenant, c.client_id, "disabled")
    assert await _introspect(http, c, token, by=probe) == {"active": False}


async def test_a_token_remembered_at_one_tenant_is_nothing_at_another(http, broker, client):
    other = await new_client(broker, await new_tenant(broker))
    token = await _token(http, other)
    assert (await _introspect(http, other, token))["active"] is True
    assert broker.verified.get(other.tenant, token) is not None
    assert broker.verified.get(client.tenant, token) is None
    assert await _introspect(http, client, token) == {"active": False}
    assert broker.verified.get(client.tenant, token) is None


async def test_tokens_that_do_not_verify_are_not_remembered(http, broker, client):
    token = await _token(http, client)
    head, body, sig = token.split(".")
    before = len(broker.verified)
    for forged in (f"{head}.{body}.{sig[:-4]}AAAA", f"{head}.{body[:-2]}xx.{sig}", "a.b.c"):
        assert await _introspect(http, client, forged) == {"active": False}
    assert len(broker.verified) == before


async def test_a_key_the_service_no_longer_holds_is_a_miss(http, broker, client):
    """The entry names the key object that verified it: once the key service holds another
    (reloaded, rotated, compromised), the token is verified again, not trusted from memory."""
    token = await _token(http, client)
    assert (await _introspect(http, client, token))["active"] is True
    kid, key, claims = broker.verified.get(client.tenant, token)
    broker.verified.put(client.tenant, token, kid, object(), claims)  # a key no longer held
    assert (await _introspect(http, client, token))["active"] is True  # verified again
    assert broker.verified.get(client.tenant, token)[1] is key


def test_the_cache_is_bounded_and_hands_out_copies():
    cache = VerifiedTokens(size=3)
    for i in range(5):
        cache.put("t", f"token{i}", "k", None, {"n": i})
    assert len(cache) == 3
    assert cache.get("t", "token0") is None and cache.get("t", "token1") is None
    _, _, claims = cache.get("t", "token4")
    claims["n"] = "changed"
    assert cache.get("t", "token4")[2] == {"n": 4}

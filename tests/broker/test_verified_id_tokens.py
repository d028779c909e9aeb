"""ID tokens presented as subject tokens whose signature this process has checked
(``broker.verified_id_tokens``): a repeat skips only parsing and the signature check. Expiry,
audience, the user's revocation and a compromised key still count on every exchange; a token
remembered at one tenant is nothing at another, and a token that passed as an ID token is never
taken for an access token (each kind has its own cache and its own ``typ`` check)."""

from __future__ import annotations

import httpx
import pytest

from adapters.errors import InvalidRequest, InvalidToken
from broker import id_jag
from broker.app import create_app
from broker.tokens import verify_access_token
from tests import admin_ops as ops
from tests.conftest import BASE_URL, new_client, new_tenant

USER = "user-verified-1"


async def _id_token(broker, tenant: str, client_id: str, **extra) -> str:
    view = await broker.tenant(tenant)
    return await id_jag.mint_id_token(broker, view, subject=USER, client_id=client_id, **extra)


async def _verify(broker, tenant: str, token: str, client_id: str) -> dict:
    return await id_jag.verify_id_token(broker, await broker.tenant(tenant), token, client_id)


async def test_a_verified_id_token_is_remembered_and_still_checked(broker, client):
    token = await _id_token(broker, client.tenant, client.client_id)
    before = len(broker.verified_id_tokens)
    assert (await _verify(broker, client.tenant, token, client.client_id))["sub"] == USER
    assert len(broker.verified_id_tokens) == before + 1
    assert broker.verified_id_tokens.get(client.tenant, token) is not None
    assert broker.verified.get(client.tenant, token) is None  # not an access token's entry
    claims = await _verify(broker, client.tenant, token, client.client_id)  # the hit
    assert claims["sub"] == USER and len(broker.verified_id_tokens) == before + 1
    claims["sub"] = "someone-else"  # a caller's copy: the remembered claims are unchanged
    assert (await _verify(broker, client.tenant, token, client.client_id))["sub"] == USER

    other = await new_client(broker, client.tenant)  # audience: checked on the hit too
    with pytest.raises(InvalidRequest, match="not issued to this client"):
        await _verify(broker, client.tenant, token, other.client_id)

    await ops.revoke(broker, client.tenant, "user", USER, "test")  # the user, on the hit
    with pytest.raises(InvalidRequest, match="disabled or was revoked"):
        await _verify(broker, client.tenant, token, client.client_id)


async def test_a_remembered_id_token_expires(clocked_broker, client):
    broker, clock = clocked_broker
    token = await _id_token(broker, client.tenant, client.client_id, lifetime=60)
    await _verify(broker, client.tenant, token, client.client_id)
    assert broker.verified_id_tokens.get(client.tenant, token) is not None
    clock.advance(60 + 31)  # past exp and the 30 s leeway
    with pytest.raises(InvalidRequest, match="expired"):
        await _verify(broker, client.tenant, token, client.client_id)


async def test_a_compromised_key_refuses_a_remembered_id_token(broker, client):
    token = await _id_token(broker, client.tenant, client.client_id)
    await _verify(broker, client.tenant, token, client.client_id)
    assert broker.verified_id_tokens.get(client.tenant, token) is not None
    active = next(k for k in await ops.list_keys(broker, client.tenant)
                  if k["state"] == "active")
    await ops.compromise_key(broker, client.tenant, active["kid"], reason="test")
    with pytest.raises(InvalidRequest, match="not a valid ID token"):
        await _verify(broker, client.tenant, token, client.client_id)
    assert broker.verified_id_tokens.get(client.tenant, token) is None  # and forgotten


async def test_a_remembered_id_token_is_nothing_at_another_tenant(broker, client):
    token = await _id_token(broker, client.tenant, client.client_id)
    await _verify(broker, client.tenant, token, client.client_id)
    other = await new_client(broker, await new_tenant(broker))
    with pytest.raises(InvalidRequest, match="issued by this tenant"):
        await _verify(broker, other.tenant, token, client.client_id)
    assert broker.verified_id_tokens.get(other.tenant, token) is None


async def test_an_id_token_is_never_an_access_token_nor_the_reverse(broker, client):
    id_token = await _id_token(broker, client.tenant, client.client_id)
    await _verify(broker, client.tenant, id_token, client.client_id)
    view = await broker.tenant(client.tenant)
    with pytest.raises(InvalidToken):  # remembered as an ID token: still not an access token
        await verify_access_token(broker, view, id_token)

    app = create_app(broker, background=False, migrate=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url=BASE_URL) as http:
        r = await http.post(client.token_url, data={"grant_type": "client_credentials"},
                            auth=client.basic)
        access_token = r.json()["access_token"]
        r = await http.post(f"{client.issuer}/introspect", data={"token": access_token},
                            auth=client.basic)
        assert r.json()["active"] is True  # remembered as an access token
    assert broker.verified.get(client.tenant, access_token) is not None
    with pytest.raises(InvalidRequest, match="typ of an ID token"):
        await _verify(broker, client.tenant, access_token, client.client_id)
    assert broker.verified_id_tokens.get(client.tenant, access_token) is None


async def test_forged_id_tokens_are_not_remembered(broker, client):
    token = await _id_token(broker, client.tenant, client.client_id)
    head, body, sig = token.split(".")
    before = len(broker.verified_id_tokens)
    for forged in (f"{head}.{body}.{sig[:-4]}AAAA", f"{head}.{body[:-2]}xx.{sig}"):
        with pytest.raises(InvalidRequest):
            await _verify(broker, client.tenant, forged, client.client_id)
    assert len(broker.verified_id_tokens) == before

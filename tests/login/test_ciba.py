"""CIBA (OpenID CIBA Core 1.0) end to end: /bc-authorize, the approver at /approvals (logged
in through the real OIDC IdP), poll / ping / push delivery (a real notification receiver on
loopback), denial, expiry, slow_down, and a managed connection's ``approve`` scopes."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.errors import InvalidRequest
from broker import id_jag, webhooks
from tests import admin_ops as ops
from tests.broker.helpers import jwt_parts
from tests.conftest import ADMIN_TOKEN, TestClient, new_client, new_tenant
from tests.login.ciba_helpers import (
    CIBA,
    Receiver,
    approver_browser,
    decide_on_page,
    pending_ids,
)
from tests.login.conftest import Login
from tests.login.flow import APP_REDIRECT, login_tokens, request_for

pytestmark = pytest.mark.interop

ALICE = "alice@corp.example"


@pytest.fixture(scope="module")
async def approver(login: Login) -> AsyncIterator[httpx.AsyncClient]:
    browser = await approver_browser(login)
    yield browser
    await browser.aclose()


@pytest.fixture(scope="module")
def receiver() -> Any:
    r = Receiver()
    yield r
    r.stop()


async def ciba_client(login: Login, mode: str | None = None, endpoint: str | None = None,
                      **kwargs: Any) -> TestClient:
    return await new_client(login.broker, login.tenant, backchannel_token_delivery_mode=mode,
                            backchannel_client_notification_endpoint=endpoint, **kwargs)


async def bc(http: httpx.AsyncClient, client: TestClient, **params: str) -> httpx.Response:
    data = {"scope": "openid email", "login_hint": ALICE, **params}
    return await http.post(f"{client.issuer}/bc-authorize", data=data, auth=client.basic)


async def started(http: httpx.AsyncClient, client: TestClient, **params: str) -> dict[str, Any]:
    r = await bc(http, client, **params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    assert len(body["auth_req_id"]) >= 22  # ≥ 128 bits, base64url
    return body


def handle(auth_req_id: str) -> str:
    return hashlib.sha256(auth_req_id.encode()).hexdigest()


async def poll(http: httpx.AsyncClient, client: TestClient, auth_req_id: str) -> httpx.Response:
    return await http.post(client.token_url, auth=client.basic,
                           data={"grant_type": CIBA, "auth_req_id": auth_req_id})


def error(r: httpx.Response) -> str:
    assert r.status_code == 400, (r.status_code, r.text)
    return str(r.json()["error"])


async def test_metadata(login: Login) -> None:
    async with login.browser() as http:
        meta = (await http.get(f"/t/{login.tenant}/.well-known/openid-configuration")).json()
    assert meta["backchannel_authentication_endpoint"].endswith("/bc-authorize")
    assert meta["backchannel_token_delivery_modes_supported"] == ["poll", "ping", "push"]
    assert meta["backchannel_user_code_parameter_supported"] is False
    assert CIBA in meta["grant_types_supported"]


async def test_poll_approve_tokens_once(login: Login, approver: httpx.AsyncClient) -> None:
    client = await ciba_client(login)
    async with login.browser() as http:
        ack = await started(http, client, binding_message="W4SCT", requested_expiry="120")
        assert ack["expires_in"] == 120 and ack["interval"] == 5
        assert error(await poll(http, client, ack["auth_req_id"])) == "authorization_pending"
        assert handle(ack["auth_req_id"]) in await pending_ids(approver, login.tenant)
        page = await approver.get(f"/t/{login.tenant}/approvals")
        assert "W4SCT" in page.text and "see your e-mail address" in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        decided = await decide_on_page(login, approver, handle(ack["auth_req_id"]))
        assert decided.status_code == 303
        r = await poll(http, client, ack["auth_req_id"])
        assert r.status_code == 200, r.text
        body = r.json()
        _, id_claims = jwt_parts(body["id_token"])
        assert id_claims["email"] == ALICE and id_claims["aud"] == client.client_id
        assert body["refresh_token"] and body["token_type"] == "Bearer"
        assert error(await poll(http, client, ack["auth_req_id"])) == "invalid_grant"
        other = await ciba_client(login)
        assert error(await poll(http, other, ack["auth_req_id"])) == "invalid_grant"
    events = await ops.export_audit(login.broker, login.tenant)
    approved = [e for e in events if e["action"] == "ciba.approved"
                and e["detail"]["shown"]["id"] == handle(ack["auth_req_id"])]
    assert approved and approved[0]["detail"]["shown"]["binding_message"] == "W4SCT"
    assert approved[0]["detail"]["decided_by_email"] == ALICE


async def test_deny_expiry_slow_down(login: Login, approver: httpx.AsyncClient) -> None:
    client = await ciba_client(login)
    async with login.browser() as http:
        denied = await started(http, client)
        await decide_on_page(login, approver, handle(denied["auth_req_id"]), "deny")
        assert error(await poll(http, client, denied["auth_req_id"])) == "access_denied"

        slow = await started(http, client)
        assert error(await poll(http, client, slow["auth_req_id"])) == "authorization_pending"
        assert error(await poll(http, client, slow["auth_req_id"])) == "slow_down"
        login.broker.clock.advance(11)  # type: ignore[attr-defined]
        try:
            assert error(await poll(http, client, slow["auth_req_id"])) == \
                "authorization_pending"
        finally:
            login.broker.clock.advance(-11)  # type: ignore[attr-defined]

        old = await started(http, client, requested_expiry="30")
        login.broker.clock.advance(31)  # type: ignore[attr-defined]
        try:
            assert error(await poll(http, client, old["auth_req_id"])) == "expired_token"
            assert handle(old["auth_req_id"]) not in await pending_ids(approver, login.tenant)
        finally:
            login.broker.clock.advance(-31)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("params", "code"), [
    ({"login_hint": "nobody@corp.example"}, "unknown_user_id"),
    ({"scope": "email"}, "invalid_scope"),
    ({"binding_message": "x" * 65}, "invalid_binding_message"),
    ({"binding_message": "bad\nline"}, "invalid_binding_message"),
    ({"login_hint_token": "eyJ"}, "invalid_request"),
    ({"requested_expiry": "-5"}, "invalid_request"),
    ({"authorization_details": "[{\"type\": \"nope\"}]"}, "invalid_authorization_details"),
])
async def test_endpoint_errors(login: Login, approver: httpx.AsyncClient,
                               params: dict[str, str], code: str) -> None:
    client = await ciba_client(login)
    async with login.browser() as http:
        assert error(await bc(http, client, **params)) == code
        r = await http.post(f"{client.issuer}/bc-authorize", data={"scope": "openid",
                            "login_hint": ALICE}, auth=(client.client_id, "wrong"))
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"


async def test_id_token_hint(login: Login, approver: httpx.AsyncClient) -> None:
    client = await ciba_client(login, redirect_uris=[APP_REDIRECT])
    tokens = await login_tokens(login, client, request_for(client), approver)
    async with login.browser() as http:
        params = {"id_token_hint": tokens["id_token"], "login_hint": ALICE}
        r = await http.post(f"{client.issuer}/bc-authorize", auth=client.basic,
                            data={"scope": "openid", "id_token_hint": tokens["id_token"]})
        assert r.status_code == 200, r.text
        assert error(await bc(http, client, **params)) == "invalid_request"  # two hints


async def test_ping(login: Login, approver: httpx.AsyncClient, receiver: Receiver) -> None:
    client = await ciba_client(login, "ping", receiver.url)
    seen = len(receiver.received)
    async with login.browser() as http:
        assert error(await bc(http, client)) == "invalid_request"  # no notification token
        ack = await started(http, client, client_notification_token="cnt-ping-1")
        await decide_on_page(login, approver, handle(ack["auth_req_id"]))
        headers, _ = await receiver.next(seen + 1)
        assert headers["authorization"] == "Bearer cnt-ping-1"
        assert receiver.json(seen + 1) == {"auth_req_id": ack["auth_req_id"]}
        r = await poll(http, client, ack["auth_req_id"])
        assert r.status_code == 200 and "id_token" in r.json()


async def test_push(login: Login, approver: httpx.AsyncClient, receiver: Receiver) -> None:
    client = await ciba_client(login, "push", receiver.url)
    seen = len(receiver.received)
    async with login.browser() as http:
        ack = await started(http, client, client_notification_token="cnt-push-1")
        await decide_on_page(login, approver, handle(ack["auth_req_id"]))
        headers, _ = await receiver.next(seen + 1)
        assert headers["authorization"] == "Bearer cnt-push-1"
        body = receiver.json(seen + 1)
        assert body["auth_req_id"] == ack["auth_req_id"] and body["access_token"]
        _, claims = jwt_parts(body["id_token"])
        assert claims["urn:openid:params:jwt:claim:auth_req_id"] == ack["auth_req_id"]
        assert claims["at_hash"] and claims["rt_hash"]
        assert error(await poll(http, client, ack["auth_req_id"])) == "invalid_grant"

        no = await started(http, client, client_notification_token="cnt-push-2")
        await decide_on_page(login, approver, handle(no["auth_req_id"]), "deny")
        await receiver.next(seen + 2)
        assert receiver.json(seen + 2) == {
            "auth_req_id": no["auth_req_id"], "error": "access_denied",
            "error_description": "the user denied the request"}


async def test_webhook_and_json_api(login: Login, approver: httpx.AsyncClient,
                                    receiver: Receiver) -> None:
    from tenants.models import Tenant

    async def set_webhook(url: str | None) -> None:
        async with login.broker.sessions() as session, session.begin():
            row = await session.get(Tenant, login.tenant)
            assert row is not None
            row.settings = {**(row.settings or {}), "webhook_url": url}

    client = await ciba_client(login)
    seen = len(receiver.received)
    await set_webhook(receiver.url)
    try:
        async with login.browser() as http:
            ack = await started(http, client, binding_message="API-1")
            headers, raw = await receiver.next(seen + 1)
            secret, = await webhooks.signing_secrets(login.broker, login.tenant)
            assert webhooks.verify(secret, headers["tessera-signature"], raw,
                                   now=login.broker.clock.now())
            event = receiver.json(seen + 1)
            assert event["type"] == "approval.pending"
            assert event["data"]["id"] == handle(ack["auth_req_id"])
            # the admin sees every pending request; a stranger's session sees nothing
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            listed = await http.get(f"/t/{login.tenant}/approvals.json", headers=admin)
            assert handle(ack["auth_req_id"]) in [p["id"] for p in listed.json()["pending"]]
            anonymous = await http.get(f"/t/{login.tenant}/approvals.json")
            assert anonymous.status_code == 401
            r = await approver.post(f"/t/{login.tenant}/approvals.json", data={
                "id": handle(ack["auth_req_id"]), "decision": "approve"})
            assert r.status_code == 400  # a form post (CSRF): JSON only
            r = await approver.post(f"/t/{login.tenant}/approvals.json", json={
                "id": handle(ack["auth_req_id"]), "decision": "approve"})
            assert r.status_code == 200 and r.json()["status"] == "approved"
            assert (await poll(http, client, ack["auth_req_id"])).status_code == 200
    finally:
        await set_webhook(None)


async def test_not_addressed_to_bob(login: Login, approver: httpx.AsyncClient) -> None:
    bob = await approver_browser(login, "bob")
    try:
        client = await ciba_client(login)
        async with login.browser() as http:
            ack = await started(http, client)
        assert handle(ack["auth_req_id"]) not in await pending_ids(bob, login.tenant)
        r = await bob.post(f"/t/{login.tenant}/approvals.json", json={
            "id": handle(ack["auth_req_id"]), "decision": "approve"})
        assert r.status_code == 403
    finally:
        await bob.aclose()


async def test_managed_connection_approve(login: Login, approver: httpx.AsyncClient) -> None:
    b = login.broker
    resource_tenant = await new_tenant(b)
    api = "https://api.approvals.example"
    agent = await new_client(b, login.tenant, scopes=[], audiences=[],
                             redirect_uris=[APP_REDIRECT])
    remote = await new_client(b, resource_tenant, scopes=["read", "pay"], audiences=[api])
    await ops.add_trust_link(b, login.tenant, peer_tenant=resource_tenant, send=True)
    await ops.add_trust_link(b, resource_tenant, peer_tenant=login.tenant,
                             scope_ceiling=["read", "pay"], accept=True)
    await ops.put_managed_connection(
        b, login.tenant, client_id=agent.client_id, audience=b.issuer(resource_tenant),
        rules={"read": "grant", "pay": "approve"}, remote_client_id=remote.client_id,
        resources=[api], max_lifetime=120)
    tokens = await login_tokens(login, agent, request_for(agent), approver)
    async with login.browser() as http:
        exchange = {"grant_type": id_jag.TOKEN_EXCHANGE, "requested_token_type": id_jag.ID_JAG,
                    "audience": remote.issuer, "subject_token": tokens["id_token"],
                    "subject_token_type": id_jag.ID_TOKEN, "scope": "read pay"}
        r = await http.post(agent.token_url, auth=agent.basic, data=exchange)
        assert r.status_code == 400 and r.json()["error"] == "authorization_pending", r.text
        ack = r.json()
        assert ack["auth_req_id"] and ack["expires_in"] > 0 and ack["interval"] == 5
        assert error(await poll(http, agent, ack["auth_req_id"])) == "authorization_pending"
        page = await approver.get(f"/t/{login.tenant}/approvals")
        assert "use pay" in page.text and remote.issuer in page.text
        await decide_on_page(login, approver, handle(ack["auth_req_id"]))
        r = await poll(http, agent, ack["auth_req_id"])
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["issued_token_type"] == id_jag.ID_JAG and body["token_type"] == "N_A"
        _, jag = jwt_parts(body["access_token"])
        assert jag["scope"] == "read pay" and jag["aud"] == remote.issuer
        r = await http.post(remote.token_url, auth=remote.basic, data={
            "grant_type": id_jag.JWT_BEARER, "assertion": body["access_token"]})
        assert r.status_code == 200, r.text
        # without the approve scope the exchange is immediate, as before
        r = await http.post(agent.token_url, auth=agent.basic, data={**exchange,
                                                                     "scope": "read"})
        assert r.status_code == 200, r.text


async def test_managed_connection_approver_group(login: Login, approver: httpx.AsyncClient
                                                 ) -> None:
    """The connection names ``group:ops``: bob (in ops) decides alice's agent request; alice
    herself (not in ops) does not even see it."""
    b = login.broker
    resource_tenant = await new_tenant(b)
    api = "https://api.group-approvals.example"
    agent = await new_client(b, login.tenant, scopes=[], audiences=[],
                             redirect_uris=[APP_REDIRECT])
    remote = await new_client(b, resource_tenant, scopes=["read", "pay"], audiences=[api])
    await ops.add_trust_link(b, login.tenant, peer_tenant=resource_tenant, send=True)
    await ops.add_trust_link(b, resource_tenant, peer_tenant=login.tenant,
                             scope_ceiling=["read", "pay"], accept=True)
    with pytest.raises(InvalidRequest):
        await ops.put_managed_connection(
            b, login.tenant, client_id=agent.client_id, audience=b.issuer(resource_tenant),
            rules={"pay": "approve"}, remote_client_id=remote.client_id, approver="ops")
    connection = await ops.put_managed_connection(
        b, login.tenant, client_id=agent.client_id, audience=b.issuer(resource_tenant),
        rules={"read": "grant", "pay": "approve"}, remote_client_id=remote.client_id,
        resources=[api], max_lifetime=120, approver="group:ops")
    assert connection["approver"] == "group:ops"
    tokens = await login_tokens(login, agent, request_for(agent), approver)  # alice
    bob = await approver_browser(login, "bob")
    try:
        async with login.browser() as http:
            r = await http.post(agent.token_url, auth=agent.basic, data={
                "grant_type": id_jag.TOKEN_EXCHANGE, "requested_token_type": id_jag.ID_JAG,
                "audience": remote.issuer, "subject_token": tokens["id_token"],
                "subject_token_type": id_jag.ID_TOKEN, "scope": "read pay"})
            assert r.status_code == 400 and r.json()["error"] == "authorization_pending"
            request_id = handle(r.json()["auth_req_id"])
            assert request_id not in await pending_ids(approver, login.tenant)  # alice
            assert request_id in await pending_ids(bob, login.tenant)
            await decide_on_page(login, bob, request_id)
            r = await poll(http, agent, r.json()["auth_req_id"])
            assert r.status_code == 200 and r.json()["issued_token_type"] == id_jag.ID_JAG
    finally:
        await bob.aclose()

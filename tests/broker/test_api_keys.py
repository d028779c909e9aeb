"""API keys: issued by the admin API, exchanged for access tokens (RFC 8693 with
``subject_token_type=urn:tessera:params:oauth:token-type:api-key``), accepted by the demo
resource, rotated with an overlap window, revoked; never stored, logged or audited."""

from __future__ import annotations

import json
import sqlite3

import pytest
from sqlalchemy import select

from adapters import api_keys
from broker import id_jag
from broker.grants.exchange_api_key import API_KEY
from broker.runtime import Broker
from tenants.models import ApiKey, AuditEvent
from tests.broker.helpers import jwt_parts, last_event
from tests.conftest import ADMIN_TOKEN, TestClient, new_client, new_tenant
from tests.dpop_client import make_proof, new_key

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TX = id_jag.TOKEN_EXCHANGE


async def create_key(http, client: TestClient, **body) -> dict:
    body.setdefault("name", "ci agent")
    body.setdefault("client_id", client.client_id)
    r = await http.post(f"/admin/v1/tenants/{client.tenant}/api-keys", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


async def exchange(http, client: TestClient, key: str, headers=None, **form):
    data = {"grant_type": TX, "subject_token": key, "subject_token_type": API_KEY, **form}
    return await http.post(client.token_url, data=data, auth=client.basic, headers=headers)


def refused(r, key: str, error: str = "invalid_request") -> str:
    assert r.status_code == 400, r.text
    assert r.json()["error"] == error
    assert api_keys.parse(key).secret not in r.text
    return str(r.json()["error_description"])


async def whoami(http, client: TestClient, key: str):
    return await http.get(f"{client.issuer}/demo/whoami",
                          headers={"Authorization": f"ApiKey {key}"})


async def stored(broker: Broker, tenant: str, key_id: str) -> ApiKey:
    async with broker.sessions() as session:
        return (await session.execute(select(ApiKey).where(
            ApiKey.tenant_id == tenant, ApiKey.key_id == key_id))).scalar_one()


async def audit_text(broker: Broker, tenant: str) -> str:
    async with broker.sessions() as session:
        rows = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == tenant))).scalars().all()
    return json.dumps([[r.action, r.outcome, r.client_id, r.subject, r.detail] for r in rows])


# -- issuing ---------------------------------------------------------------------------------

async def test_key_is_shown_once_and_stored_as_a_hash(http, broker, client):
    created = await create_key(http, client, scopes=["read"], expires_in=3600)
    key = created["api_key"]
    parsed = api_keys.parse(key)
    assert parsed.tenant == client.tenant and parsed.key_id == created["key_id"]
    assert created["redacted"] == f"tsk_{client.tenant}_{created['key_id']}_…"
    assert created["scopes"] == ["read"] and created["status"] == "active"
    assert created["client_id"] == client.client_id and created["last_used_at"] is None
    listed = (await http.get(f"/admin/v1/tenants/{client.tenant}/api-keys",
                             headers=ADMIN)).json()
    assert [k["key_id"] for k in listed] == [created["key_id"]]
    assert "api_key" not in listed[0] and parsed.secret not in json.dumps(listed)
    one = await http.get(f"/admin/v1/tenants/{client.tenant}/api-keys/{created['key_id']}",
                         headers=ADMIN)
    assert one.status_code == 200 and "api_key" not in one.json()
    row = await stored(broker, client.tenant, created["key_id"])
    for column in ApiKey.__table__.columns:
        value = str(getattr(row, column.key))
        assert parsed.secret not in value and key not in value
    assert row.secret_hash.startswith("hs256$")
    event = await last_event(broker, client.tenant)
    assert event.action == "api_key.created" and event.detail["key_id"] == created["key_id"]


@pytest.mark.parametrize("body, status, words", [
    ({"client_id": "ghost"}, 400, "no client"),
    ({"scopes": ["admin"]}, 400, "scope not allowed"),
    ({"expires_in": 0}, 400, "expires_in"),
    ({"expires_in": "soon"}, 400, "integer"),
    ({"name": ""}, 400, "name"),
    ({"scopes": "read"}, 400, "list"),
])
async def test_create_refusals(http, client, body, status, words):
    payload = {"name": "k", "client_id": client.client_id, **body}
    r = await http.post(f"/admin/v1/tenants/{client.tenant}/api-keys", json=payload,
                        headers=ADMIN)
    assert r.status_code == status and words in r.json()["error_description"], r.text


async def test_admin_unknowns_and_auth(http, client):
    t = f"/admin/v1/tenants/{client.tenant}/api-keys"
    assert (await http.get(t)).status_code == 401
    assert (await http.get("/admin/v1/tenants/no-such/api-keys", headers=ADMIN)).status_code \
        == 404
    for path in ("/abcdefghijklmnop/rotate", "/abcdefghijklmnop/revoke", "/x/rotate"):
        assert (await http.post(t + path, headers=ADMIN)).status_code == 404
    key_id = (await create_key(http, client))["key_id"]
    r = await http.post(f"{t}/{key_id}/rotate", json={"overlap_seconds": -1}, headers=ADMIN)
    assert r.status_code == 400
    assert (await http.post(f"{t}/{key_id}/revoke", headers=ADMIN)).json()["status"] == \
        "revoked"
    r = await http.post(f"{t}/{key_id}/rotate", headers=ADMIN)
    assert r.status_code == 400 and "revoked" in r.json()["error_description"]


# -- exchange --------------------------------------------------------------------------------

async def test_exchange_issues_a_short_lived_access_token(http, broker, client):
    created = await create_key(http, client, scopes=["read", "write"])
    r = await exchange(http, client, created["api_key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["issued_token_type"] == id_jag.ACCESS_TOKEN and body["token_type"] == "Bearer"
    assert body["expires_in"] == 300 and body["scope"] == "read write"
    _, claims = jwt_parts(body["access_token"])
    assert claims["akid"] == created["key_id"] and claims["sub"] == client.client_id
    r = await http.post(f"{client.issuer}/introspect", data={"token": body["access_token"]},
                        auth=client.basic)
    info = r.json()
    assert info["active"] is True and info["sub"] == info["client_id"] == client.client_id
    assert info["scope"] == "read write"
    event = await last_event(broker, client.tenant)
    assert event.action == "token.issued" and event.detail["akid"] == created["key_id"]
    assert event.detail["subject_token_type"] == API_KEY


async def test_scope_narrows_and_never_widens(http, client):
    key = (await create_key(http, client, scopes=["read"]))["api_key"]
    r = await exchange(http, client, key, scope="read")
    assert r.status_code == 200 and r.json()["scope"] == "read"
    assert "write" in refused(await exchange(http, client, key, scope="read write"), key,
                              "invalid_scope")
    wide = (await create_key(http, client, scopes=["read", "write"]))["api_key"]
    r = await exchange(http, client, wide, scope="write")
    assert r.status_code == 200 and r.json()["scope"] == "write"


async def test_dpop_bound_and_lifetime_within_the_key(http, client):
    key = (await create_key(http, client, expires_in=100))["api_key"]
    proof = make_proof(new_key(), htm="POST", htu=client.token_url)
    r = await exchange(http, client, key, headers={"DPoP": proof})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP" and r.json()["expires_in"] <= 100
    assert jwt_parts(r.json()["access_token"])[1]["cnf"]["jkt"]


@pytest.mark.parametrize("case", ["unknown", "wrong-secret", "malformed", "revoked", "expired",
                                  "other-tenant", "other-client", "id-jag", "actor"])
async def test_exchange_refusals(http, broker, client, case):
    created = await create_key(http, client, expires_in=60)
    key, presenter, form = created["api_key"], client, {}
    parsed = api_keys.parse(key)
    if case == "unknown":
        key = api_keys.new_key(client.tenant)[2]
    elif case == "wrong-secret":
        key = api_keys.ParsedKey(client.tenant, parsed.key_id,
                                 api_keys.new_key("x")[1]).value
    elif case == "malformed":
        key = key[:-1]
    elif case == "revoked":
        await http.post(f"/admin/v1/tenants/{client.tenant}/api-keys/{parsed.key_id}/revoke",
                        headers=ADMIN)
    elif case == "other-tenant":
        presenter = await new_client(broker, await new_tenant(broker))
    elif case == "other-client":
        presenter = await new_client(broker, client.tenant)
    elif case == "id-jag":
        form = {"requested_token_type": id_jag.ID_JAG}
    elif case == "actor":
        form = {"actor_token": "x", "actor_token_type": id_jag.ACCESS_TOKEN}
    if case == "expired":
        broker.clock.advance(61)
    try:
        r = await exchange(http, presenter, key, **form)
    finally:
        if case == "expired":
            broker.clock.advance(-61)
    description = refused(r, created["api_key"])
    expected = {"unknown": "unknown API key", "wrong-secret": "unknown API key",
                "malformed": "malformed secret", "revoked": "revoked", "expired": "expired",
                "other-tenant": "another tenant", "other-client": "another client",
                "id-jag": "access token only", "actor": "actor_token"}[case]
    assert expected in description
    if case not in ("id-jag", "actor"):
        assert description.startswith("subject_token refused")
    event = await last_event(broker, presenter.tenant)
    assert event.action == "token.refused" and parsed.secret not in json.dumps(event.detail)
    assert (await stored(broker, client.tenant, parsed.key_id)).last_used_at is None


async def test_rotation_with_overlap(http, broker, client):
    created = await create_key(http, client)
    old, key_id = created["api_key"], created["key_id"]
    r = await http.post(f"/admin/v1/tenants/{client.tenant}/api-keys/{key_id}/rotate",
                        json={"overlap_seconds": 60}, headers=ADMIN)
    assert r.status_code == 200, r.text
    new = r.json()["api_key"]
    assert new != old and api_keys.parse(new).key_id == key_id
    assert r.json()["previous_valid_until"] and r.json()["rotated_at"]
    for key in (old, new):
        assert (await exchange(http, client, key)).status_code == 200
        assert (await whoami(http, client, key)).status_code == 200
    broker.clock.advance(61)
    try:
        assert "unknown API key" in refused(await exchange(http, client, old), old)
        assert (await whoami(http, client, old)).status_code == 401
        assert (await exchange(http, client, new)).status_code == 200
    finally:
        broker.clock.advance(-61)
    # no overlap: the old key stops at once
    r = await http.post(f"/admin/v1/tenants/{client.tenant}/api-keys/{key_id}/rotate",
                        json={"overlap_seconds": 0}, headers=ADMIN)
    newest = r.json()["api_key"]
    refused(await exchange(http, client, new), new)
    assert (await exchange(http, client, newest)).status_code == 200
    audit = await audit_text(broker, client.tenant)
    for key in (old, new, newest):
        assert api_keys.parse(key).secret not in audit


async def test_last_used_at_is_written_at_most_once_a_minute(http, broker, client):
    created = await create_key(http, client)
    key, key_id = created["api_key"], created["key_id"]
    assert (await exchange(http, client, key)).status_code == 200
    first = (await stored(broker, client.tenant, key_id)).last_used_at
    assert first is not None and abs(first - broker.clock.now()) < 5
    assert (await whoami(http, client, key)).status_code == 200
    assert (await stored(broker, client.tenant, key_id)).last_used_at == first
    broker.clock.advance(61)
    try:
        assert (await exchange(http, client, key)).status_code == 200
        later = (await stored(broker, client.tenant, key_id)).last_used_at
    finally:
        broker.clock.advance(-61)
    assert later is not None and later >= first + 60
    listed = (await http.get(f"/admin/v1/tenants/{client.tenant}/api-keys/{key_id}",
                             headers=ADMIN)).json()
    assert listed["last_used_at"] == int(later)


# -- the demo resource -----------------------------------------------------------------------

async def test_demo_resource_accepts_the_key(http, client):
    created = await create_key(http, client, scopes=["read"])
    r = await whoami(http, client, created["api_key"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "ApiKey" and body["sub"] == body["client_id"] == \
        client.client_id
    assert body["scope"] == "read" and body["akid"] == created["key_id"]
    assert body["aud"] == f"{client.issuer}/demo" and r.headers["cache-control"] == "no-store"
    r = await http.get(f"{client.issuer}/demo/whoami")
    assert r.status_code == 401 and "ApiKey realm=" in r.headers["www-authenticate"]


@pytest.mark.parametrize("case", ["unknown", "revoked", "other-tenant", "disabled-client",
                                  "no-demo-audience", "malformed"])
async def test_demo_resource_refuses_bad_keys(http, broker, client, case):
    owner = client
    if case == "other-tenant":
        owner = await new_client(broker, await new_tenant(broker))
    if case == "no-demo-audience":
        owner = await new_client(broker, client.tenant, audiences=["https://api.example"])
    created = await create_key(http, owner)
    key = created["api_key"]
    base = f"/admin/v1/tenants/{owner.tenant}"
    if case == "unknown":
        key = api_keys.new_key(client.tenant)[2]
    elif case == "revoked":
        await http.post(f"{base}/api-keys/{created['key_id']}/revoke", headers=ADMIN)
    elif case == "disabled-client":
        await http.post(f"{base}/clients/{owner.client_id}/disable", headers=ADMIN)
    elif case == "malformed":
        key = "tsk_" + "x" * 10
    r = await whoami(http, client, key)
    assert r.status_code == 401, r.text
    assert r.json()["error"] == "invalid_token"
    challenge = r.headers["www-authenticate"]
    assert 'ApiKey realm="' in challenge and 'error="invalid_token"' in challenge
    assert challenge.startswith("Bearer realm=")
    assert api_keys.parse(created["api_key"]).secret not in r.text + challenge


@pytest.mark.parametrize("header", ["ApiKey", "ApiKey  ", "ApiKey a b"])
async def test_demo_resource_malformed_api_key_header(http, client, header):
    r = await http.get(f"{client.issuer}/demo/whoami", headers={"Authorization": header})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


async def test_audit_events_never_hold_the_key(http, broker, client):
    created = await create_key(http, client)
    t, key_id = f"/admin/v1/tenants/{client.tenant}/api-keys", created["key_id"]
    rotated = (await http.post(f"{t}/{key_id}/rotate", headers=ADMIN)).json()["api_key"]
    await exchange(http, client, rotated)
    await exchange(http, client, rotated[:-2] + "AA")
    await http.post(f"{t}/{key_id}/revoke", headers=ADMIN)
    await exchange(http, client, rotated)
    audit = await audit_text(broker, client.tenant)
    for key in (created["api_key"], rotated):
        assert api_keys.parse(key).secret not in audit
    for action in ("api_key.created", "api_key.rotated", "api_key.revoked"):
        assert action in audit
    r = await http.get(f"/admin/v1/tenants/{client.tenant}/audit/verify", headers=ADMIN)
    assert r.json()["intact"] is True


# -- the command line ------------------------------------------------------------------------


def test_cli_create_list_rotate_revoke(cli):
    cli("tenant", "create", "acme", "--json")
    client = json.loads(cli("client", "create", "--tenant", "acme", "--name", "agent",
                            "--scope", "read", "--scope", "write", "--json").stdout)["client_id"]
    created = json.loads(cli("api-key", "create", "--tenant", "acme", "--client", client,
                             "--scope", "read", "--expires-in", "3600", "--name", "ci",
                             "--json").stdout)
    key, key_id = created["api_key"], created["key_id"]
    secret = api_keys.parse(key).secret
    assert created["scopes"] == ["read"] and created["expires_at"]
    with sqlite3.connect(cli.db) as db:
        row = db.execute("select * from api_keys").fetchone()
    assert all(secret not in str(v) for v in row)
    listed = cli("api-key", "list", "--tenant", "acme", "--json").stdout
    assert [k["key_id"] for k in json.loads(listed)] == [key_id] and secret not in listed
    plain = cli("api-key", "list", "--tenant", "acme", "--client", client).stdout
    assert key_id in plain and secret not in plain
    rotated = json.loads(cli("api-key", "rotate", "--tenant", "acme", key_id, "--overlap", "60",
                             "--json").stdout)
    assert rotated["api_key"] != key and rotated["previous_valid_until"]
    revoked = json.loads(cli("api-key", "revoke", "--tenant", "acme", key_id, "--json").stdout)
    assert revoked["status"] == "revoked" and "api_key" not in revoked
    export = cli("audit", "export", "--tenant", "acme").stdout
    actions = [json.loads(line)["action"] for line in export.splitlines()]
    assert actions[-3:] == ["api_key.created", "api_key.rotated", "api_key.revoked"]
    assert secret not in export and api_keys.parse(rotated["api_key"]).secret not in export
    proc = cli("api-key", "create", "--tenant", "acme", "--client", "ghost", "--name", "x",
               check=False)
    assert proc.returncode == 5 and "no client" in proc.stderr
    proc = cli("api-key", "rotate", "--tenant", "acme", "abcdefghijklmnop", check=False)
    assert proc.returncode == 4 and "no API key" in proc.stderr

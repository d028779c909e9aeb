"""NUL (U+0000) anywhere a caller can put it is refused with a 4xx before it reaches the
database (PostgreSQL cannot store or compare it: it used to be a 500 there), and nothing is
written. Runs on every backend of the suite (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from adapters import json_reader
from tests.conftest import ADMIN_TOKEN, new_client
from tests.dpop_client import make_proof, new_key

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CC = {"grant_type": "client_credentials", "scope": "read"}


def test_json_reader_refuses_nul_in_values_and_names():
    for text in ('{"a":"x\\u0000y"}', '{"a\\u0000":1}', '[["\\u0000"]]', '{"a":{"b":["\\u0000"]}}'):
        with pytest.raises(json_reader.JSONInputError, match="NUL"):
            json_reader.loads(text)
    # an escaped backslash followed by "u0000" is six ordinary characters, not a NUL
    assert json_reader.loads('{"a":"\\\\u0000"}') == {"a": "\\u0000"}


@pytest.mark.parametrize("path", [
    "/t/%00/.well-known/openid-federation", "/t/%00/jwks", "/t/%00/token",
    "/admin/v1/tenants/%00", "/registry/%00"])
async def test_nul_in_a_path_is_not_found(http, path):
    r = await http.get(path, headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "not_found", r.text


async def test_nul_in_a_query_is_refused(http, tenant):
    for url in (f"/t/{tenant}/authorize?client_id=%00&response_type=code",
                "/registry/fetch?sub=%00", "/admin/v1/tenants?after=%00"):
        r = await http.get(url, headers=ADMIN)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (url, r.text)


async def test_nul_in_a_form_parameter_is_refused(http, broker, tenant):
    client = await new_client(broker, tenant)
    for name in ("client_id", "scope", "grant_type"):
        data = {**CC, "client_id": client.client_id, "client_secret": client.secret or ""}
        data[name] = data[name] + "\x00"
        r = await http.post(client.token_url, data=data)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", (name, r.text)
        assert "NUL" in r.json()["error_description"]


async def test_nul_in_a_dpop_proof_claim_is_refused(http, broker, tenant):
    client = await new_client(broker, tenant)
    key = new_key()
    for claims in ({"jti": "\x00"}, {"jti": "a\x00b"}):
        proof = make_proof(key, htm="POST", htu=client.token_url, jti=claims["jti"])
        r = await http.post(client.token_url, data=CC, auth=client.basic, headers={"DPoP": proof})
        assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof", r.text
    # the same client and key work with a proper proof: nothing was left half-written
    proof = make_proof(key, htm="POST", htu=client.token_url)
    r = await http.post(client.token_url, data=CC, auth=client.basic, headers={"DPoP": proof})
    assert r.status_code == 200, r.text


async def test_nul_in_an_admin_body_is_refused_and_writes_nothing(http, tenant):
    before = (await http.get(f"/admin/v1/tenants/{tenant}/clients", headers=ADMIN)).json()
    for body in ({"name": "x\x00", "scopes": ["read"]},
                 {"name": "ok", "scopes": ["read\x00"]},
                 {"name": "ok", "redirect_uris": ["https://app.example/cb\x00"]}):
        r = await http.post(f"/admin/v1/tenants/{tenant}/clients", headers={
            **ADMIN, "Content-Type": "application/json"}, content=json.dumps(body))
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    r = await http.post("/admin/v1/tenants", headers={**ADMIN, "Content-Type": "application/json"},
                        content=json.dumps({"name": "nul-tenant", "display_name": "a\x00"}))
    assert r.status_code == 400, r.text
    after = (await http.get(f"/admin/v1/tenants/{tenant}/clients", headers=ADMIN)).json()
    assert after == before
    assert (await http.get("/admin/v1/tenants/nul-tenant", headers=ADMIN)).status_code == 404


async def test_nul_in_a_registration_document_is_refused(http):
    r = await http.post("/registry/register", headers={"Content-Type": "application/json"},
                        content=json.dumps({"entity_id": "https://p.example\x00"}))
    assert 400 <= r.status_code < 500, r.text
    assert quote("\x00") == "%00"  # what the path and query tests above send

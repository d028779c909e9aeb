"""Partner self-registration end to end, with two ``tessera serve`` processes on loopback:
``registry`` runs the trust registry and the resource tenant ``pricing``; ``partner`` is a
second tessera whose tenant ``acme`` joins the registry from its own OpenID Federation Entity
Configuration. From the invitation (CLI over the admin API) through registration, status,
approval, the Subordinate Statement, an ID-JAG acme issues and pricing redeems, to a
federation key rotation picked up through key continuity."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from joserfc.jwk import KeySet

from adapters import jose
from adapters.entity_statement import verify_entity_configuration
from broker import id_jag
from registry import federation
from tests.broker.helpers import jwt_parts
from tests.conftest import published_long_ago
from tests.flows.test_two_brokers import _id_token, servers
from tests.server_process import Server, clean_env


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, ...]]:
    yield from servers(tmp_path_factory, "self-registration", "registry", "partner")


def cli(p: Server, *args: str) -> dict:
    """``tessera --url`` against the server's admin API (the remote transport)."""
    done = subprocess.run([sys.executable, "-m", "broker.cli", "--url", p.base_url, *args,
                           "--json"], env=clean_env(TESSERA_ADMIN_TOKEN=p.admin_token),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def signed_request(p: Server, tenant: str, registry_id: str) -> str:
    """``tessera federation request`` on the partner's deployment (its federation keys)."""
    env = clean_env(TESSERA_DATABASE_URL=p.database_url, TESSERA_MASTER_KEY=p.master_key,
                    TESSERA_ADMIN_TOKEN=p.admin_token, TESSERA_BASE_URL=p.base_url)
    done = subprocess.run([sys.executable, "-m", "broker.cli", "federation", "request",
                           "--tenant", tenant, "--registry", registry_id], env=env,
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().strip()


async def rotate_federation_keys(p: Server, tenant: str) -> None:
    """The partner's own key service (its database and master key) rotates acme's keys."""
    broker = p.broker()
    try:
        # as if the next key had been published long enough (the partner's own JWKS wait)
        await published_long_ago(broker, federation.tenant_keys(tenant))
        await broker.keys.rotate(federation.tenant_keys(tenant), reason="test")
    finally:
        await broker.close()


async def published_keys_change(http: httpx.AsyncClient, entity: str, before: dict) -> None:
    """Wait (at most 30 s) until ``entity``'s Entity Configuration publishes other keys."""
    deadline = time.monotonic() + 30
    while True:
        ec = (await http.get(f"{entity}/.well-known/openid-federation")).text
        if jwt_parts(ec)[1]["jwks"] != before:
            return
        assert time.monotonic() < deadline, "the rotated keys were never published"
        await asyncio.sleep(0.5)


def count_partners(p: Server) -> int:
    r = httpx.get(f"{p.base_url}/admin/v1/partners", headers=p.headers, timeout=10)
    return len(r.json())


async def test_a_partner_registers_itself_and_its_id_jag_is_redeemed(pair):
    reg, par = pair
    registry_id = f"{reg.base_url}/registry"
    acme, pricing = f"{par.base_url}/t/acme", f"{reg.base_url}/t/pricing"
    par.admin_post("/tenants", {"name": "acme"})
    reg.admin_post("/tenants", {"name": "pricing"})
    remote = reg.admin_post("/tenants/pricing/clients", {
        "name": "agent at pricing", "scopes": ["quotes:read"]})

    async with httpx.AsyncClient(timeout=15) as http:
        # the partner publishes its Entity Configuration, self-signed with federation keys
        r = await http.get(f"{acme}/.well-known/openid-federation")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/entity-statement+jwt")
        header, _ = jwt_parts(r.text)
        assert header["typ"] == "entity-statement+jwt"
        ec = verify_entity_configuration(r.text, entity_id=acme, now=jwt_parts(r.text)[1]["iat"])
        token_jwks = (await http.get(f"{acme}/jwks")).json()
        assert {k["kid"] for k in ec.jwks["keys"]}.isdisjoint(
            {k["kid"] for k in token_jwks["keys"]}), "federation keys are not token keys"
        assert ec.metadata["oauth_authorization_server"]["jwks_uri"] == f"{acme}/jwks"

        # a registry admin invites acme (the CLI over the admin API); the code is shown once
        invitation = cli(reg, "registry", "invite", "--entity-id", acme, "--note", "acme")
        code = invitation["code"]
        assert code.startswith("tri_") and invitation["state"] == "open"
        listed = cli(reg, "registry", "invitations")
        assert all(i["code"] is None for i in listed)

        # wrong codes and wrong entities are refused before anything is fetched or written
        before = count_partners(reg)
        for body in ({"entity_id": acme, "invitation_code": code + "x"},
                     {"entity_id": f"{par.base_url}/t/other", "invitation_code": code}):
            r = await http.post(f"{reg.base_url}/registry/register", json=body)
            assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert count_partners(reg) == before

        # acme registers itself with the code
        r = await http.post(f"{reg.base_url}/registry/register",
                            json={"entity_id": acme, "invitation_code": code})
        assert r.status_code == 201, r.text
        registered = r.json()
        partner_id = registered["partner_id"]
        assert registered["status"] == "pending" and registered["entity_id"] == acme
        assert registered["jwks_uri"] == f"{acme}/jwks"
        assert set(registered["federation_kids"]) == {k["kid"] for k in ec.jwks["keys"]}

        # the code was single-use: a replay is refused and writes nothing
        before = count_partners(reg)
        r = await http.post(f"{reg.base_url}/registry/register",
                            json={"entity_id": acme, "invitation_code": code})
        assert r.status_code == 400 and "invitation" in r.json()["error_description"], r.text
        assert count_partners(reg) == before

        # the partner sees its own status, proving it holds its federation keys
        status = await http.post(f"{reg.base_url}/registry/status", data={
            "request": signed_request(par, "acme", registry_id)})
        assert status.status_code == 200 and status.json()["status"] == "pending", status.text
        # its public Entity Configuration is not a credential
        public_ec = (await http.get(f"{acme}/.well-known/openid-federation")).text
        r = await http.post(f"{reg.base_url}/registry/status", data={"request": public_ec})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text

        # not vouched for while pending
        r = await http.get(f"{reg.base_url}/registry/fetch", params={"sub": acme})
        assert r.status_code == 404

        # the registry admin sees it pending and approves it
        pending = cli(reg, "registry", "pending")
        assert [p["id"] for p in pending] == [partner_id]
        approved = cli(reg, "registry", "approve", partner_id, "--reason", "known partner")
        assert approved["status"] == "active"
        status = await http.post(f"{reg.base_url}/registry/status", data={
            "request": signed_request(par, "acme", registry_id)})
        assert status.json()["status"] == "active"

        # the registry issues a Subordinate Statement carrying acme's federation keys
        r = await http.get(f"{reg.base_url}/registry/fetch", params={"sub": acme})
        assert r.status_code == 200, r.text
        anchor = (await http.get(f"{reg.base_url}/registry/.well-known/openid-federation")).text
        anchor_keys = KeySet.import_key_set(jwt_parts(anchor)[1]["jwks"])
        sub = jose.verify_jws(r.text, lambda h: anchor_keys.get_by_kid(h["kid"]),
                              typ="entity-statement+jwt").claims
        assert sub["iss"] == registry_id and sub["sub"] == acme
        assert sub["jwks"] == ec.jwks

        # pricing trusts the partner; acme's broker sends to pricing
        reg.admin_post("/tenants/pricing/trust-links", {
            "partner": partner_id, "directions": ["accept"], "scope_ceiling": ["quotes:read"]})
        par.admin_post("/partners", {"id": "pricing", "issuer": pricing,
                                     "display_name": "Pricing", "jwks_uri": f"{pricing}/jwks"})
        par.admin_post("/partners/pricing/activate")
        par.admin_post("/tenants/acme/trust-links", {"partner": "pricing",
                                                     "directions": ["send"]})
        agent = par.admin_post("/tenants/acme/clients", {"name": "agent"})
        par.admin_post("/tenants/acme/managed-connections", {
            "client_id": agent["client_id"], "audience": pricing,
            "remote_client_id": remote["client_id"], "rules": {"quotes:read": "grant"}},
            method="PUT")

        # an ID-JAG issued by the partner is redeemed at the tenant that trusts it
        r = await http.post(f"{acme}/token", auth=(agent["client_id"], agent["client_secret"]),
                            data={"grant_type": id_jag.TOKEN_EXCHANGE,
                                  "requested_token_type": id_jag.ID_JAG, "audience": pricing,
                                  "scope": "quotes:read", "subject_token_type": id_jag.ID_TOKEN,
                                  "subject_token": await _id_token(par, "acme",
                                                                   agent["client_id"], "alice")})
        assert r.status_code == 200, r.text
        r = await http.post(f"{pricing}/token",
                            auth=(remote["client_id"], remote["client_secret"]),
                            data={"grant_type": id_jag.JWT_BEARER,
                                  "assertion": r.json()["access_token"]})
        assert r.status_code == 200, r.text
        claims = jwt_parts(r.json()["access_token"])[1]
        assert claims["sub_id"] == {"format": "iss_sub", "iss": acme, "sub": "alice"}
        assert claims["scope"] == "quotes:read"

        # the partner rotates its federation keys; the registry follows through continuity
        await rotate_federation_keys(par, "acme")
        # the partner's serving process publishes the new key set once its key cache (10 s)
        # expires: the registry can only follow what is published
        await published_keys_change(http, acme, ec.jwks)
        refreshed = cli(reg, "registry", "refresh", partner_id)
        assert "federation_jwks" in refreshed["changed"], refreshed
        r = await http.post(f"{reg.base_url}/registry/refresh", data={
            "request": signed_request(par, "acme", registry_id)})
        assert r.status_code == 200 and r.json()["changed"] == [], r.text
        r = await http.post(f"{reg.base_url}/registry/refresh", data={
            "request": signed_request(par, "acme", registry_id)})
        assert r.status_code == 400 and "at most every" in r.json()["error_description"]

"""The command line's remote transport as a tenant's admin client (no operator token): a token
by client credentials + DPoP at the tenant's token endpoint, a proof per request, the nonce
dance where the tenant wants one; another tenant is not found; a client without a role, or
with a wrong secret, is denied."""

from __future__ import annotations

import httpx
import pytest

from broker.admin import roles
from broker.app import create_app
from broker.cli.admin_client import DPoPAdminAuth, from_environment
from broker.cli.exits import DENIED, NOT_FOUND, CliError
from broker.cli.transport import Remote, op
from broker.runtime import Broker
from tests.admin.role_clients import assign
from tests.conftest import BASE_URL, new_client, new_tenant


async def _remote_as(broker: Broker, auth: DPoPAdminAuth, job_op: str, **params: str):
    transport = httpx.ASGITransport(app=create_app(broker, background=False, migrate=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL, auth=auth) as client:
        return await op(job_op, **params).run(Remote(BASE_URL, client))


async def _admin_client(broker: Broker, tenant: str, *held: str) -> DPoPAdminAuth:
    c = await new_client(broker, tenant, audiences=[f"{broker.issuer(tenant)}/admin"],
                         dpop_bound_access_tokens=True)
    for role in held:
        await assign(broker, tenant, "client", c.client_id, role)
    assert c.secret is not None
    return DPoPAdminAuth(BASE_URL, tenant, c.client_id, c.secret, clock=broker.clock.now)


@pytest.mark.parametrize("nonces", [False, True])
async def test_the_cli_administers_its_tenant_as_an_admin_client(broker: Broker,
                                                                 nonces: bool) -> None:
    t = await new_tenant(broker, **({"dpop_nonce_required": True} if nonces else {}))
    auth = await _admin_client(broker, t, roles.TENANT_ADMIN)
    listed = await _remote_as(broker, auth, "list_clients", tenant=t)
    assert auth.client_id in {c["client_id"] for c in listed}
    held = await _remote_as(broker, auth, "list_role_assignments", tenant=t)
    assert held[0]["subject"] == auth.client_id
    other = await new_tenant(broker)
    with pytest.raises(CliError) as refused:
        await _remote_as(broker, auth, "list_clients", tenant=other)
    assert refused.value.code == NOT_FOUND


async def test_a_client_without_a_role_or_secret_is_denied(broker: Broker) -> None:
    t = await new_tenant(broker)
    nobody = await _admin_client(broker, t)
    with pytest.raises(CliError) as refused:
        await _remote_as(broker, nobody, "list_clients", tenant=t)
    assert refused.value.code == DENIED
    wrong = await _admin_client(broker, t, roles.TENANT_ADMIN)
    wrong.secret = "not-the-secret"
    with pytest.raises(CliError) as refused:
        await _remote_as(broker, wrong, "list_clients", tenant=t)
    assert refused.value.code == DENIED and "could not get a token" in refused.value.message


def test_the_environment_names_the_admin_client() -> None:
    assert from_environment(BASE_URL, {}) is None
    auth = from_environment(BASE_URL, {"TESSERA_ADMIN_CLIENT": "acme/robot",
                                       "TESSERA_ADMIN_CLIENT_SECRET": "s"})
    assert auth is not None and auth.issuer == f"{BASE_URL}/t/acme"
    for bad in ({"TESSERA_ADMIN_CLIENT": "acme"},
                {"TESSERA_ADMIN_CLIENT": "acme/robot"},
                {"TESSERA_ADMIN_CLIENT": "/robot", "TESSERA_ADMIN_CLIENT_SECRET": "s"}):
        with pytest.raises(CliError):
            from_environment(BASE_URL, bad)

"""Admin principals for tests: an admin client of a tenant holding roles, which gets a DPoP-bound
token at its tenant's own token endpoint (audience ``{issuer}/admin``) and calls the admin API
with a fresh proof each time, exactly as automation would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from joserfc.jwk import Key

from broker.admin import dispatch, roles
from broker.runtime import Broker
from tests.conftest import BASE_URL, new_client
from tests.dpop_client import make_proof, new_key


async def assign(broker: Broker, tenant: str, kind: str, subject: str, role: str) -> None:
    await dispatch.run(broker, "assign_role", {"tenant": tenant}, principal=roles.OPERATOR,
                       body={"kind": kind, "subject": subject, "role": role})


@dataclass
class AdminClient:
    tenant: str
    client_id: str
    secret: str
    issuer: str
    key: Key
    token: str = ""

    async def login(self, http: httpx.AsyncClient) -> None:
        url = f"{self.issuer}/token"
        r = await http.post(url, data={"grant_type": "client_credentials",
                                       "resource": f"{self.issuer}/admin"},
                            auth=(self.client_id, self.secret),
                            headers={"DPoP": make_proof(self.key, htm="POST", htu=url)})
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        self.token = r.json()["access_token"]

    def headers(self, method: str, path: str) -> dict[str, str]:
        url = BASE_URL + path.split("?")[0]
        return {"Authorization": f"DPoP {self.token}",
                "DPoP": make_proof(self.key, htm=method, htu=url, access_token=self.token)}

    async def call(self, http: httpx.AsyncClient, method: str, path: str,
                   json: Any = None) -> httpx.Response:
        return await http.request(method, path, json=json, headers=self.headers(method, path))


async def admin_client(broker: Broker, http: httpx.AsyncClient, tenant: str,
                       *held: str) -> AdminClient:
    """A new client of ``tenant`` that may get admin tokens, holding ``held`` roles."""
    issuer = broker.issuer(tenant)
    c = await new_client(broker, tenant, audiences=[f"{issuer}/admin"],
                         dpop_bound_access_tokens=True)
    for role in held:
        await assign(broker, tenant, "client", c.client_id, role)
    assert c.secret is not None
    found = AdminClient(tenant, c.client_id, c.secret, issuer, new_key())
    await found.login(http)
    return found


def path_of(template: str, **values: str) -> str:
    out = template
    for name, value in values.items():
        out = out.replace("{" + name + "}", quote(value, safe="")).replace(
            "{" + name + ":uri}", quote(value, safe=""))
    return out

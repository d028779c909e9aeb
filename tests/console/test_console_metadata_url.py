"""Issue 14: the console adds a SAML upstream "by metadata URL": tessera fetches the IdP's
metadata through its SSRF-guarded fetcher from a real SAML IdP (the pysaml2 peer on
127.0.0.1, reachable from a broker replica that allows loopback, as a development deployment
does), keeps that IdP's entity ID and sends test logins to the SSO URL the metadata names; a URL
that gives no metadata is refused on the form and writes nothing."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from sqlalchemy import func, select

from broker.admin import roles
from broker.app import create_app
from broker.runtime import Broker
from tenants.models import AuditEvent, Upstream
from tests.admin.admin_helpers import loopback_replica
from tests.admin.role_clients import assign
from tests.conftest import ADMIN_TOKEN, BASE_URL, new_tenant
from tests.console.console_helpers import Browser, sign_in
from tests.peers.saml_idp import SamlIdp, start_saml_idp

ADMINS = "tessera-admins"


@pytest.fixture(scope="module")
def saml_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamlIdp]:
    idp = start_saml_idp(tmp_path_factory.mktemp("console-saml-idp"), users={})
    yield idp
    idp.stop()


@pytest.fixture(scope="module")
async def replica(broker: Broker) -> AsyncIterator[Broker]:
    """The session broker's database, with http to loopback allowed (development setting)."""
    found, _clock = loopback_replica(broker)
    yield found
    await found.close()


@pytest.fixture
async def admin(replica: Broker) -> AsyncIterator[Browser]:
    tenant = await new_tenant(replica)
    await assign(replica, tenant, "group", ADMINS, roles.TENANT_ADMIN)
    transport = httpx.ASGITransport(app=create_app(replica, background=False, migrate=False))
    b = await sign_in(replica, transport, tenant, "ada", (ADMINS,))
    yield b
    await b.http.aclose()


async def _rows(broker: Broker, tenant: str) -> tuple[int, int]:
    """The tenant's upstreams and audit events."""
    async with broker.sessions() as session:
        upstreams, events = [int((await session.execute(select(func.count()).select_from(m).where(
            m.tenant_id == tenant))).scalar_one()) for m in (Upstream, AuditEvent)]
    return upstreams, events


async def test_add_saml_upstream_by_metadata_url(admin: Browser, saml_idp: SamlIdp) -> None:
    r = await admin.submit("/upstreams/add-saml", "/upstreams", name="corp-saml",
                           display_name="Corp SAML", metadata_url=saml_idp.metadata_url,
                           domains="saml.example")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/upstreams")).text
    row = page.split("Corp SAML")[1].split("</tr>")[0]
    assert f"IdP <code>{saml_idp.entity_id}</code>" in row, row
    r = await admin.http.get(f"{BASE_URL}/admin/v1/tenants/{admin.tenant}/upstreams/corp-saml",
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text
    saml = r.json()["saml"]
    assert (saml["idp_entity_id"], saml["metadata_url"]) == (saml_idp.entity_id,
                                                             saml_idp.metadata_url)
    assert r.json()["domains"] == ["saml.example"]
    # the SSO URL is only in the fetched document: a test login is sent there
    r = await admin.submit("/upstreams/corp-saml/test", "/upstreams")
    assert r.status_code == 303, r.text
    r = await admin.http.get(r.headers["location"])
    assert r.status_code in (302, 303), r.text
    assert r.headers["location"].startswith(f"{saml_idp.base_url}/sso/redirect?SAMLRequest=")


async def test_a_metadata_url_without_metadata_is_refused_on_the_form(
        replica: Broker, admin: Browser, saml_idp: SamlIdp) -> None:
    before = await _rows(replica, admin.tenant)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}/metadata"
        for url, why in ((unreachable, "failed: ConnectError"),
                         # a page of that IdP, not its metadata
                         (f"{saml_idp.base_url}/sso/redirect", "answered HTTP 400")):
            r = await admin.submit("/upstreams/add-saml", "/upstreams", name="corp-saml",
                                   metadata_url=url)
            assert r.status_code == 400 and 'id="error"' in r.text, r.text
            assert "cannot fetch the IdP metadata" in r.text and why in r.text, r.text
    assert await _rows(replica, admin.tenant) == before
    assert "No upstream IdP yet." in (await admin.http.get(admin.base + "/upstreams")).text

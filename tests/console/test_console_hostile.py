"""Every console form (generated from ``broker.console.actions.ACTIONS``) under hostile input
and the wrong roles: never a 500; an auditor's or a registry-only administrator's submission
writes nothing; the registry view is the registry administrator's only."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from broker.console.actions import ACTIONS
from broker.runtime import Broker
from tenants.models import AuditEvent
from tests.admin.admin_helpers import ADMIN
from tests.conftest import unique
from tests.console.console_helpers import Browser, count_rows, role_holders, sign_out_all

JUNK = ["", "\x00", "x" * 5000, "<script>alert(1)</script>", "../../etc/passwd",
        "ünïcödé ☃", "%ff%fe", "1e309", "group:", " "]
FIELDS = ("name", "client_id", "audience", "remote_client_id", "scope_0", "rule_0", "kind",
          "subject", "role", "discovery_url", "metadata_url", "metadata_xml", "reason",
          "default_rule", "approver", "owner", "purpose", "scopes", "audiences", "domains",
          "entity_id", "days", "note", "id", "display_name", "accept", "send",
          "scope_ceiling", "acs_urls", "attribute_mapping", "assertion_lifetime",
          "name_id_format", "want_authn_requests_signed")
PARAMS = {"name": "nosuch", "verb": "disable", "client_id": "nosuch", "id": "nosuch",
          "key_id": "nosuch", "partner": "nosuch", "link": "nosuch", "kid": "nosuch",
          "invitation": "nosuch"}


def _path(section: str, template: str) -> str:
    return f"/{section}/" + re.sub(r"\{(\w+)\}", lambda m: PARAMS[m[1]], template)


@pytest.fixture(scope="module")
async def people(broker: Broker, transport: httpx.ASGITransport
                 ) -> AsyncIterator[dict[str, Browser]]:
    found = await role_holders(broker, transport)
    yield found
    await sign_out_all(found)


async def _events(broker: Broker) -> int:
    return (await count_rows(broker, AuditEvent))[0]


@pytest.mark.parametrize(("section", "template"), list(ACTIONS), ids=[
    f"{s}/{t}" for s, t in ACTIONS])
async def test_every_form_survives_junk_and_refuses_the_wrong_role(
        broker: Broker, people: dict[str, Browser], section: str, template: str) -> None:
    path = _path(section, template)
    admin = people["registry" if section == "partners" else "admin"]  # who may use the form
    for i, junk in enumerate(JUNK):
        data = {"csrf": admin.valid_csrf(), **{f: junk for f in FIELDS[i % 3::3]}}
        r = await admin.http.post(admin.base + path, data=data)
        assert r.status_code < 500, (path, junk[:20], r.text[:300])
    for who in ("auditor", "registry") if section != "partners" else ("auditor", "admin"):
        b = people[who]
        before = await _events(broker)
        full = {"csrf": b.valid_csrf(), **{f: "x" for f in FIELDS}, "kind": "group",
                "role": "tenant_admin", "rule_0": "grant", "default_rule": "deny"}
        r = await b.http.post(b.base + path, data=full)
        assert r.status_code in (400, 403), (who, path, r.status_code)
        assert await _events(broker) == before, (who, path)


async def test_oversized_and_malformed_forms(people: dict[str, Browser]) -> None:
    admin = people["admin"]
    r = await admin.http.post(admin.base + "/clients/create",
                              content=b"csrf=" + b"a" * (700 * 1024),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = await admin.http.post(admin.base + "/clients/create", content=b"name=a&name=b",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    r = await admin.http.post(admin.base + "/clients/create", content=b"\xff\xfe=\x00",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400
    for q in ("?q=" + "x" * 5000, "?verify=%ff"):
        assert (await admin.http.get(admin.base + "/audit" + q)).status_code == 200
    # a NUL in the query is refused before any route (broker.request_context)
    assert (await admin.http.get(admin.base + "/audit?q=%00")).status_code == 400


async def test_the_registry_view_is_the_registry_admins(broker: Broker,
                                                        http: httpx.AsyncClient,
                                                        people: dict[str, Browser]) -> None:
    partner = unique("p")
    r = await http.post("/admin/v1/partners", headers=ADMIN, json={
        "id": partner, "issuer": f"https://{partner}.example", "display_name": "Partner Co",
        "jwks_uri": f"https://{partner}.example/jwks"})
    assert r.status_code == 201, r.text
    rita = people["registry"]
    assert "its partners" in (await rita.http.get(rita.base)).text
    page = await rita.http.get(rita.base + "/partners")
    assert page.status_code == 200 and "Partner Co" in page.text
    assert "Clients and agents" not in page.text  # no tenant role: no tenant pages offered
    assert (await rita.http.get(rita.base + "/clients")).status_code == 403
    r = await rita.submit(f"/partners/{partner}/activate", "/partners")
    assert r.status_code == 303, r.text
    assert "status-active" in (await rita.http.get(rita.base + "/partners")).text
    ada = people["admin"]
    assert "Registry partners" not in (await ada.http.get(ada.base)).text
    assert (await ada.http.get(ada.base + "/partners")).status_code == 403

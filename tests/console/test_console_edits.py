"""The console's edits of existing rows and the keys page: a trust link's directions and
scope ceiling, a legacy SAML app's settings (each an admin PATCH through the service layer),
each key's custody and "Mark compromised" (emergency rotation) — the forms filled with the
current values; bad input a 400 page naming the field; an auditor, a registry-only
administrator or a form without the CSRF token refused; another tenant's rows not found
from that tenant's console; nothing written by a refusal."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from broker.runtime import Broker
from tenants.models import AuditEvent
from tests.conftest import new_tenant
from tests.console.console_helpers import Browser, count_rows, role_holders, sign_out_all

APP = "https://payroll.example/sp"


@pytest.fixture
async def people(broker: Broker, transport: httpx.ASGITransport
                 ) -> AsyncIterator[dict[str, Browser]]:
    """Admin, auditor and registry-only administrator of one tenant; an admin of another."""
    found = await role_holders(broker, transport, stranger=True)
    yield found
    await sign_out_all(found)


async def _events(broker: Broker) -> int:
    return (await count_rows(broker, AuditEvent))[0]


async def _refused_everywhere(broker: Broker, people: dict[str, Browser], path: str,
                              **fields: str) -> None:
    """``path`` with ``fields``: 400 without the token, 403 for the auditor and the
    registry-only administrator, 404 from another tenant's console; nothing written."""
    before = await _events(broker)
    admin = people["admin"]
    r = await admin.http.post(admin.base + path, data=fields)
    assert r.status_code == 400 and "reload the page" in r.text, path
    for who in ("auditor", "registry"):
        b = people[who]
        r = await b.http.post(b.base + path, data={"csrf": b.valid_csrf(), **fields})
        assert r.status_code == 403, (who, path)
    stranger = people["stranger"]
    r = await stranger.http.post(stranger.base + path,
                                 data={"csrf": stranger.valid_csrf(), **fields})
    assert r.status_code == 404 and 'id="error"' in r.text, (path, r.text)
    assert await _events(broker) == before, path


async def test_keys_show_custody_and_mark_one_compromised(
        broker: Broker, people: dict[str, Browser]) -> None:
    admin = people["admin"]
    page = (await admin.http.get(admin.base + "/keys")).text
    active = page.split('<td class="state">active</td>')[0].rsplit('data-kid="', 1)[1] \
        .split('"')[0]
    row = page.split(f'data-kid="{active}"')[1].split("</tr>")[0]
    assert '<td class="custody">software</td>' in row
    # issue 12's custody dates: when each key was published (every key has one) and demoted
    assert re.search(r'<td class="published">\d{4}-\d\d-\d\d [\d:]+ UTC</td>', row), row
    assert '<td class="demoted">—</td>' in row  # the active key was never demoted
    assert "data-confirm=" in row and "Mark compromised" in row
    auditor_page = (await people["auditor"].http.get(people["auditor"].base + "/keys")).text
    assert "custody" in auditor_page and "Mark compromised" not in auditor_page

    await _refused_everywhere(broker, people, f"/keys/{active}/compromise", reason="leak")
    r = await admin.submit(f"/keys/{active}/compromise", "/keys", reason="laptop stolen")
    assert r.status_code == 303 and r.headers["location"].endswith("notice=compromised")
    page = (await admin.http.get(r.headers["location"])).text
    assert "out of service" in page
    row = page.split(f'data-kid="{active}"')[1].split("</tr>")[0]
    assert '<td class="state">compromised</td>' in row and "Mark compromised" not in row
    assert re.search(r'<td class="demoted">\d{4}-\d\d-\d\d [\d:]+ UTC</td>', row), row
    assert '<td class="state">active</td>' in page  # another key signs
    async with broker.sessions() as session:
        event = (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == admin.tenant, AuditEvent.action == "key.compromised"))
            ).scalar_one()
    assert event.detail["reason"] == "laptop stolen"
    assert event.detail["actor"] == f"user:{admin.tenant}/{admin.sub}"
    # twice: a conflict; an unknown key: not found; both shown on the page
    r = await admin.submit(f"/keys/{active}/compromise", "/keys")
    assert r.status_code == 409 and "already compromised" in r.text
    r = await admin.submit("/keys/nosuch/compromise", "/keys")
    assert r.status_code == 404 and 'id="error"' in r.text


async def test_edit_a_trust_link(broker: Broker, people: dict[str, Browser]) -> None:
    admin = people["admin"]
    peer = await new_tenant(broker)
    r = await admin.submit("/trust-links/add", "/trust-links", peer=f"tenant:{peer}",
                           accept="on", scope_ceiling="read")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/trust-links")).text
    link = page.split(f"{admin.base}/trust-links/")[1].split("/")[0]
    form = page.split(f'action="{admin.base}/trust-links/{link}/edit"')[1].split("</form>")[0]
    assert 'name="accept" checked' in form and 'name="send">' in form
    assert 'value="read"' in form

    await _refused_everywhere(broker, people, f"/trust-links/{link}/edit", send="on")
    r = await admin.submit(f"/trust-links/{link}/edit", "/trust-links", send="on",
                           accept="on", scope_ceiling="read write")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/trust-links")).text
    assert "<td>accept, send</td><td>read write</td>" in page
    r = await admin.submit(f"/trust-links/{link}/edit", "/trust-links", send="on")
    assert r.status_code == 303
    assert "<td>send</td><td>any</td>" in (await admin.http.get(admin.base + "/trust-links")).text
    before = await _events(broker)
    for fields in ({}, {"send": "on", "scope_ceiling": 'bad"scope'}):
        r = await admin.submit(f"/trust-links/{link}/edit", "/trust-links", **fields)
        assert r.status_code == 400 and 'id="error"' in r.text, fields
    assert await _events(broker) == before


async def test_edit_a_legacy_app(broker: Broker, people: dict[str, Browser]) -> None:
    admin = people["admin"]
    r = await admin.submit("/legacy-apps/add", "/legacy-apps", entity_id=APP,
                           acs_url="https://payroll.example/acs", name="Payroll")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/legacy-apps")).text
    assert "https://payroll.example/acs</textarea>" in page and 'value="Payroll"' in page

    await _refused_everywhere(broker, people, "/legacy-apps/edit", entity_id=APP,
                              acs_urls="https://payroll.example/acs")
    r = await admin.submit("/legacy-apps/edit", "/legacy-apps", entity_id=APP,
                           name="Payroll (EU)", name_id_format="emailAddress",
                           acs_urls="https://payroll.example/acs\r\nhttps://eu.payroll.example/acs",
                           assertion_lifetime="120",
                           attribute_mapping="mail = email\r\n\r\ndisplayName = name\r\n")
    assert r.status_code == 303, r.text
    page = (await admin.http.get(admin.base + "/legacy-apps")).text
    assert "Payroll (EU)" in page and "<code>https://eu.payroll.example/acs</code>" in page
    assert 'value="120"' in page and "mail = email\ndisplayName = name\n" in page
    assert '<option value="emailAddress" selected>' in page
    before = await _events(broker)
    for fields, words in (({"acs_urls": ""}, "acs_urls"),
                          ({"acs_urls": "http://payroll.example/acs"}, "acs_urls"),
                          ({"acs_urls": "https://a.example", "assertion_lifetime": "5"},
                           "assertion_lifetime"),
                          ({"acs_urls": "https://a.example", "assertion_lifetime": "-1"},
                           "whole number"),
                          ({"acs_urls": "https://a.example", "attribute_mapping": "mail"},
                           "line 1"),
                          ({"acs_urls": "https://a.example", "name_id_format": "x"},
                           "name_id_format")):
        r = await admin.submit("/legacy-apps/edit", "/legacy-apps", entity_id=APP, **fields)
        assert r.status_code == 400 and words in r.text, (fields, r.text[-600:])
    r = await admin.submit("/legacy-apps/edit", "/legacy-apps", entity_id="urn:nosuch:app",
                           acs_urls="https://a.example")
    assert r.status_code == 404
    assert await _events(broker) == before

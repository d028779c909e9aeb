"""The registry administrators' console: ``/registry/console`` (which organisation to sign in
with, then that tenant's partners section; a bad or unknown name is the page again with the
reason), and the partners page's self-registration forms: register an entity (fetched from a
stand-in web), approve or reject what is pending, refresh a self-registered partner's keys,
invitations (the code on the answering page only: never listed, audited or logged again) —
refused without the CSRF token, to a tenant admin or auditor without the registry role, and
writing nothing when refused."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from broker.runtime import Broker
from tenants.models import AuditEvent, Partner, RegistryInvitation
from tests.conftest import BASE_URL
from tests.console.console_helpers import Browser, count_rows, role_holders, sign_out_all
from tests.registry.test_self_registration import Web, web  # noqa: F401 (the fixture)


@pytest.fixture(scope="module")
async def people(broker: Broker, transport: httpx.ASGITransport
                 ) -> AsyncIterator[dict[str, Browser]]:
    found = await role_holders(broker, transport)
    yield found
    await sign_out_all(found)


async def _counts(broker: Broker) -> tuple[int, ...]:
    return await count_rows(broker, Partner, RegistryInvitation, AuditEvent)


def _row(page: str, attribute: str, value: str) -> str:
    return page.split(f'{attribute}="{value}"')[1].split("</tr>")[0]


async def test_registry_console_asks_for_the_organisation(
        broker: Broker, transport: httpx.ASGITransport,
        people: dict[str, Browser]) -> None:
    tenant = people["registry"].tenant
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        r = await http.get("/registry/console")
        assert r.status_code == 200 and '<label for="rc-tenant">' in r.text
        assert 'id="error"' not in r.text
        assert "unsafe-inline" not in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        r = await http.get("/registry/console", params={"tenant": f" {tenant.upper()} "})
        assert r.status_code == 303
        assert r.headers["location"] == f"/t/{tenant}/console/partners"
        # there, the console's own machinery: no session, so the tenant's login first
        r = await http.get(r.headers["location"])
        assert r.status_code == 303 and urlsplit(r.headers["location"]).path == \
            f"/t/{tenant}/login"
        for query, status, words in (
                ("tenant=no-such-org", 404, "no organisation"),
                ("tenant=", 400, "Enter the name"),
                ("tenant=Bad%20Name", 400, "1 to 64"),
                ("tenant=-x", 400, "1 to 64"),
                ("tenant=" + "a" * 65, 400, "1 to 64"),
                ("tenant=%3Cscript%3Ealert(1)%3C/script%3E", 400, "1 to 64"),
                ("tenant=%ff", 400, "UTF-8"),
                ("tenant=%zz", 400, "percent-encoding"),
                ("tenant=a&tenant=b", 400, "more than once"),
                ("tenant=" + "x" * 5000, 400, "too large")):
            r = await http.get("/registry/console?" + query)
            assert r.status_code == status, (query, r.status_code)
            assert 'id="error"' in r.text and words in r.text, (query, r.text)
            assert "<script>alert" not in r.text
    # a registry admin signed in at their tenant lands on the partners page
    rita = people["registry"]
    r = await rita.http.get(f"/registry/console?tenant={tenant}", follow_redirects=True)
    assert r.status_code == 200 and 'id="pending"' in r.text


async def test_register_approve_reject_and_refresh(
        broker: Broker, web: Web, people: dict[str, Browser]) -> None:  # noqa: F811
    rita = people["registry"]
    first, second = web.entity(), web.entity()
    r = await rita.submit("/partners/register-entity", "/partners",
                          entity_id=first.id + "/.well-known/openid-federation", id="first-co")
    assert r.status_code == 303 and r.headers["location"].endswith("notice=registered"), r.text
    r = await rita.submit("/partners/register-entity", "/partners", entity_id=second.id,
                          display_name="Second Co")
    assert r.status_code == 303, r.text
    page = (await rita.http.get(rita.base + "/partners")).text
    assert 'id="notice"' not in page
    pending = _row(page, "data-pending", "first-co")
    assert first.id in pending and first.fed.kid in pending
    assert "Second Co" in page.split('id="pending"')[1].split("</table>")[0]
    second_id = page.split("Second Co<br><code>")[1].split("<")[0]
    # a pending self-registered partner is approved (not merely activated)
    assert "/partners/first-co/activate" not in page
    assert f'for="approve-reason-{second_id}"' in page

    # the same entity again: the operation's refusal on the page; nothing written
    before = await _counts(broker)
    r = await rita.submit("/partners/register-entity", "/partners", entity_id=first.id)
    assert r.status_code == 409 and "registered already" in r.text
    r = await rita.submit("/partners/register-entity", "/partners", entity_id="http://x.example")
    assert r.status_code == 400 and 'id="error"' in r.text
    assert await _counts(broker) == before

    r = await rita.submit("/partners/first-co/approve", "/partners", reason="contract 14")
    assert r.status_code == 303, r.text
    r = await rita.submit(f"/partners/{second_id}/reject", "/partners", reason="unknown org")
    assert r.status_code == 303, r.text
    page = (await rita.http.get(rita.base + "/partners")).text
    # neither waits any more (the registry is deployment-wide: other tests' registrations may)
    pending = page.split('id="pending"')[1].split("</table>")[0]
    assert "first-co" not in pending and second_id not in pending
    assert 'class="status-active"' in _row(page, "data-partner", "first-co")
    assert 'class="status-revoked"' in _row(page, "data-partner", second_id)
    # deciding twice is refused (only a pending one is decided)
    r = await rita.submit("/partners/first-co/reject", "/partners")
    assert r.status_code == 400 and "only a pending" in r.text

    # refresh keys: nothing changed, then a rotation the partner published
    assert "/partners/first-co/refresh" in page
    r = await rita.submit("/partners/first-co/refresh", "/partners")
    assert r.status_code == 303 and r.headers["location"].endswith("notice=unchanged")
    first.extra_fed.append(ECKey.generate_key("P-256", parameters={"kid": "fed-next"}))
    r = await rita.submit("/partners/first-co/refresh", "/partners")
    assert r.status_code == 303 and r.headers["location"].endswith("notice=refreshed")
    page = (await rita.http.get(r.headers["location"])).text
    assert "they changed" in page
    r = await rita.submit("/partners/nosuch/refresh", "/partners")
    assert r.status_code == 404


async def test_invitation_code_is_shown_once(broker: Broker, people: dict[str, Browser],
                                             caplog: pytest.LogCaptureFixture) -> None:
    rita = people["registry"]
    caplog.set_level(logging.DEBUG)
    r = await rita.submit("/partners/invite", "/partners",
                          entity_id="https://idp.acme.example/.well-known/openid-federation",
                          days="3", note="Acme onboarding")
    assert r.status_code == 200 and 'id="secret"' in r.text, r.text
    code = r.text.split('id="secret">')[1].split("<")[0]
    assert code.startswith("tri_")
    invitation = code.split("_")[1]
    page = (await rita.http.get(rita.base + "/partners")).text
    assert code not in page
    row = _row(page, "data-invitation", invitation)
    assert "https://idp.acme.example" in row and "Acme onboarding" in row
    assert code not in caplog.text
    async with broker.sessions() as session:
        details = [str(e.detail) for e in (await session.execute(select(AuditEvent).where(
            AuditEvent.tenant_id == "_registry"))).scalars()]
    assert not any(code in d for d in details)
    r = await rita.submit(f"/partners/invitations/{invitation}/revoke", "/partners")
    assert r.status_code == 303
    page = (await rita.http.get(rita.base + "/partners")).text
    assert f'data-invitation="{invitation}"' not in page and "used, revoked or expired" in page
    # bad values: the form's or the model's refusal, nothing issued
    before = await _counts(broker)
    for fields in ({"days": "0"}, {"days": "31"}, {"days": "three"}, {"days": "1e3"},
                   {"entity_id": "not a url"}, {"note": "x" * 201}):
        r = await rita.submit("/partners/invite", "/partners", **fields)
        assert r.status_code == 400 and 'id="error"' in r.text, fields
    r = await rita.submit("/partners/invitations/nosuch/revoke", "/partners")
    assert r.status_code == 404
    assert await _counts(broker) == before


async def test_registry_forms_refuse_without_csrf_or_the_role(
        broker: Broker, people: dict[str, Browser]) -> None:
    rita = people["registry"]
    page = await rita.http.get(rita.base + "/partners")
    assert "unsafe-inline" not in page.headers["content-security-policy"]
    assert "<script>" not in page.text and " style=" not in page.text
    assert page.text.count('name="csrf"') == page.text.count('method="post"') > 0
    before = await _counts(broker)
    for path in ("/partners/invite", "/partners/nosuch/approve",
                 "/partners/register-entity"):
        r = await rita.http.post(rita.base + path, data={"entity_id": "https://a.example"})
        assert r.status_code == 400 and "reload the page" in r.text
        r = await rita.http.post(rita.base + path, data={"csrf": rita.valid_csrf()},
                                 headers={"Origin": "https://evil.example"})
        assert r.status_code == 400
        for who in ("admin", "auditor"):
            b = people[who]
            r = await b.http.post(b.base + path, data={"csrf": b.valid_csrf(), "days": "7"})
            assert r.status_code == 403, (who, path)
    for who in ("admin", "auditor"):
        b = people[who]
        page = (await b.http.get(b.base + "/partners"))
        assert page.status_code == 403 and "Issue invitation" not in page.text
    assert await _counts(broker) == before

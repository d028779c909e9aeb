"""Rotating the admin bearer token (``POST /admin/v1/admin-token/rotate``, ``tessera
admin-token rotate``): the new token counts on every replica from the next request, the
previous one only for its overlap; on a database of its own (the session's admin token must
not change under the other tests)."""

from __future__ import annotations

import json

import httpx
import pytest

from broker.app import create_app
from broker.runtime import Broker
from tenants import admin_credentials
from tenants.migrate import upgrade
from tests.admin.admin_helpers import events
from tests.conftest import ADMIN_TOKEN, BASE_URL, OffsetClock, make_settings


@pytest.fixture
async def replicas(tmp_path):
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path}/tessera.db")
    a, b = (Broker.build(settings, clock=OffsetClock()) for _ in range(2))
    await upgrade(a.engine)
    clients = [httpx.AsyncClient(transport=httpx.ASGITransport(
        app=create_app(x, background=False, migrate=False)), base_url=BASE_URL) for x in (a, b)]
    yield (a, clients[0]), (b, clients[1])
    for c in clients:
        await c.aclose()
    await a.close()
    await b.close()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _works(http: httpx.AsyncClient, token: str) -> bool:
    r = await http.get("/admin/v1/tenants", headers=_auth(token))
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


async def test_rotation_counts_on_every_replica_with_an_overlap(replicas):
    (a, http_a), (b, http_b) = replicas
    assert await _works(http_a, ADMIN_TOKEN) and await _works(http_b, ADMIN_TOKEN)
    r = await http_a.post("/admin/v1/admin-token/rotate", headers=_auth(ADMIN_TOKEN),
                          json={"overlap_seconds": 60})
    assert r.status_code == 200, r.text
    new = r.json()["admin_token"]
    assert len(new) >= 40 and new != ADMIN_TOKEN
    assert r.json()["previous_valid_until"] == pytest.approx(a.clock.now() + 60, abs=5)
    for http in (http_a, http_b):  # the next request, at each replica
        assert await _works(http, new) and await _works(http, ADMIN_TOKEN)
    b.clock.advance(61)  # type: ignore[attr-defined]
    assert not await _works(http_b, ADMIN_TOKEN) and await _works(http_b, new)
    # stored as hashes only; the audit chain says who rotated, never the token
    stored = await admin_credentials.stored(a.sessions)
    assert new not in json.dumps(stored) and ADMIN_TOKEN not in json.dumps(stored)
    event = (await events(a, admin_credentials.AUDIT_CHAIN, "admin_token.rotated"))[-1]
    assert event.detail["actor"] == "operator" and new not in json.dumps(event.detail)

    # overlap 0: the previous token stops at once
    r = await http_b.post("/admin/v1/admin-token/rotate", headers=_auth(new),
                          json={"overlap_seconds": 0})
    newer = r.json()["admin_token"]
    assert r.json()["previous_valid_until"] is None
    assert not await _works(http_a, new) and await _works(http_a, newer)
    assert not await _works(http_a, ADMIN_TOKEN)


@pytest.mark.parametrize("body", [{"overlap_seconds": -1}, {"overlap_seconds": 10**9},
                                  {"overlap_seconds": "60"}, {"overlap_seconds": 1.5},
                                  {"extra": 1}, [], "x"])
async def test_bad_bodies_are_400(replicas, body):
    (_, http), _ = replicas
    r = await http.post("/admin/v1/admin-token/rotate", headers=_auth(ADMIN_TOKEN), json=body)
    assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
    assert await _works(http, ADMIN_TOKEN)


async def test_only_the_admin_may_rotate(replicas):
    (_, http), _ = replicas
    for headers in ({}, _auth("wrong"), _auth(""), {"Authorization": "Basic eDp5"}):
        r = await http.post("/admin/v1/admin-token/rotate", headers=headers, json={})
        assert r.status_code == 401 and r.json()["error"] == "invalid_token"
    assert await _works(http, ADMIN_TOKEN)


def test_cli_rotate_replaces_the_token_file(cli):
    before = cli("admin-token").stdout.strip()
    out = json.loads(cli("admin-token", "rotate", "--overlap", "0", "--json").stdout)
    assert out["admin_token"] != before
    assert cli("admin-token").stdout.strip() == out["admin_token"]
    token_file = cli.tmp / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    bad = cli("admin-token", "rotate", "--overlap", "-5", check=False)
    assert bad.returncode in (2, 5) and "Traceback" not in bad.stderr

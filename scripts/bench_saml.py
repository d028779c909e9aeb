"""SAML assertion issuance per second, in process: what the token exchange to ``saml2`` and the
IdP's SSO answer cost in CPU, beside a JWT access token signed by the same key service.

It builds a broker on a temporary SQLite file (or ``--database-url``), creates an ES256 and an
RS256 tenant, a user and a legacy app in each, and then, for ``--duration`` seconds per
measurement on one event loop (one core):

* ``assertion``: ``broker.legacy_saml.assertion_for`` (NameID, attributes, Assertion XML,
  exclusive c14n, SHA-256 digest, SignedInfo signed by ``KeyService.raw_signer``, KeyInfo) and
  its serialization and base64url: the token exchange's ``access_token``;
* ``sso response``: the same Assertion inside a signed Response (two signatures), serialized:
  what ``/saml/idp/sso`` posts to the app;
* ``jwt``: an RFC 9068 access token by ``KeyService.sign`` (JWS), for comparison.

Nothing is sent over HTTP and the database is not touched while measuring (the key service
caches the tenant's keys). ``--json`` prints one JSON object; otherwise one line per figure::

    python scripts/bench_saml.py --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters import jose
from adapters.saml_issue import assertion_bytes, issue_response
from broker import legacy_saml
from broker.admin.models.legacy_apps import LegacyAppCreate
from broker.admin.models.tenants import TenantCreate
from broker.admin.services.legacy_apps import create_legacy_app
from broker.admin.services.tenants import create_tenant
from broker.config import Settings
from broker.runtime import Broker, TenantView
from broker.tokens import access_token_claims, mint_access_token
from tenants import legacy_apps, users
from tenants.migrate import upgrade
from tenants.models import User
from tenants.scope import tenant_scope

MAPPING = {"mail": "email", "displayName": "name", "memberOf": "groups", "uid": "sub"}


async def _rate(fn: Callable[[], Awaitable[Any]], duration: float) -> dict[str, float]:
    for _ in range(20):  # warm caches (keys, certificate, unwrapped private key)
        await fn()
    count, start = 0, time.perf_counter()
    deadline = start + duration
    while (now := time.perf_counter()) < deadline:
        for _ in range(10):
            await fn()
        count += 10
    elapsed = now - start
    return {"per_s": count / elapsed, "us_each": elapsed / count * 1e6, "count": count}


async def _setup(broker: Broker, alg: str) -> tuple[TenantView, legacy_apps.LegacyAppView, User]:
    name = f"bench-{alg.lower()}-{secrets.token_hex(3)}"
    await create_tenant(broker, TenantCreate(name=name, settings={"key_alg": alg}))
    entity = f"https://legacy.example/{name}"
    await create_legacy_app(broker, name, LegacyAppCreate(
        entity_id=entity, acs_urls=["https://legacy.example/acs"], attribute_mapping=MAPPING))
    async with tenant_scope(broker.sessions, name) as scope:
        user = await users.link(scope, "corp", users.Profile(
            subject="alice", email="alice@corp.example", name="Alice Liddell",
            groups=("eng", "admins")), broker.clock.now())
        app = await legacy_apps.get(scope, entity)
    assert app is not None
    return await broker.tenant(name), app, user


async def bench(broker: Broker, alg: str, duration: float) -> dict[str, Any]:
    tenant, app, user = await _setup(broker, alg)
    auth = {"auth_time": int(broker.clock.now()), "acr": None}
    acs = app.acs_urls[0]

    async def assertion() -> str:
        element = await legacy_saml.assertion_for(broker, tenant, app, user, auth,
                                                  recipient=acs, now=broker.clock.now())
        return jose.b64url(assertion_bytes(element))

    async def sso_response() -> str:
        now = broker.clock.now()
        key = await legacy_saml.idp_key(broker, tenant)
        element = await legacy_saml.assertion_for(
            broker, tenant, app, user, auth, recipient=acs, now=now,
            in_response_to="id-request", session_index="sid", key=key)
        xml = issue_response(key, element, issuer=legacy_saml.idp_entity_id(tenant),
                             destination=acs, now=now, in_response_to="id-request")
        return base64.b64encode(xml).decode()

    async def jwt() -> str:
        claims = access_token_claims(issuer=tenant.issuer, subject=user.id, client_id="bench",
                                     audience=[tenant.issuer], scope=("read",),
                                     now=broker.clock.now(), lifetime=300)
        return (await mint_access_token(broker, tenant, claims)).token

    size = len(await assertion())
    return {"alg": alg, "assertion_b64url_bytes": size,
            "assertion": await _rate(assertion, duration),
            "sso_response": await _rate(sso_response, duration),
            "jwt": await _rate(jwt, duration)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        master = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        broker = Broker.build(Settings(database_url=url, base_url="http://127.0.0.1:8000",
                                       master_key=master, admin_token="x" * 32, demo=False))
        try:
            await upgrade(broker.engine)
            results = [await bench(broker, alg, args.duration) for alg in args.alg]
        finally:
            await broker.close()
    return {"duration_s": args.duration, "python": sys.version.split()[0], "results": results}


def _print(report: dict[str, Any]) -> None:
    print(f"in process, one core, {report['duration_s']:.0f} s per figure "
          f"(Python {report['python']})")
    for r in report["results"]:
        for label, key in (("SAML assertion (exchange output)", "assertion"),
                           ("SAML SSO Response (2 signatures)", "sso_response"),
                           ("JWT access token", "jwt")):
            m = r[key]
            print(f"{r['alg']}  {label:34} {m['per_s']:8.0f}/s  {m['us_each']:7.0f} us each")
        print(f"{r['alg']}  assertion size (base64url): {r['assertion_b64url_bytes']} bytes")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per figure")
    parser.add_argument("--alg", action="append", choices=["ES256", "RS256"],
                        help="tenant key algorithm (default: both)")
    parser.add_argument("--database-url", help="default: a temporary SQLite file")
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    arguments = parser.parse_args()
    arguments.alg = arguments.alg or ["ES256", "RS256"]
    report = asyncio.run(main(arguments))
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        _print(report)

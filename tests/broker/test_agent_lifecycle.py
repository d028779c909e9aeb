"""Agent lifecycle: suspend, resume, retire, ephemeral expiry; each counts on the next request
at the token endpoint, introspection and the demo resource, on every replica; and a
revocation while requests are in flight lets no request that started after it succeed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from tests import admin_ops as ops
from tests.broker.runtime_helpers import (
    access_token,
    active,
    admin,
    replica_http,
    token,
    whoami,
)
from tests.conftest import new_client, new_tenant


async def _setup(broker):
    tenant = await new_tenant(broker)
    return await new_client(broker, tenant), await new_client(broker, tenant)


async def test_suspend_and_resume_count_at_once_on_every_replica(http, broker, clocked_broker):
    agent, probe = await _setup(broker)
    replica, _ = clocked_broker
    held = await access_token(http, agent)
    path = f"/tenants/{agent.tenant}/agents/{agent.client_id}"
    async with replica_http(replica) as other:
        assert (await token(other, agent)).status_code == 200  # the replica caches the view
        assert await active(other, probe, held)
        r = await admin(http, "POST", f"{path}/suspend", {"reason": "incident 42"})
        assert r.status_code == 200 and r.json()["status"] == "suspended", r.text
        for server in (http, other):
            r = await token(server, agent)
            assert r.status_code == 401 and r.json()["error"] == "invalid_client"
            assert not await active(server, probe, held)
            assert await whoami(server, agent, held) == 401
        r = await admin(http, "POST", f"{path}/resume")
        assert r.status_code == 200 and r.json()["status"] == "active"
        # suspension is not revocation: the held token counts again, new ones are issued
        assert await active(other, probe, held)
        assert await whoami(other, agent, await access_token(other, agent)) == 200
    actions = [e["action"] for e in await ops.export_audit(broker, agent.tenant)]
    assert "agent.suspended" in actions and "agent.resumed" in actions
    suspended = next(e for e in await ops.export_audit(broker, agent.tenant)
                     if e["action"] == "agent.suspended")
    assert suspended["detail"]["reason"] == "incident 42"
    assert (await ops.verify_audit(broker, agent.tenant))["intact"]


async def test_retire_is_final(http, broker):
    agent, probe = await _setup(broker)
    held = await access_token(http, agent)
    path = f"/tenants/{agent.tenant}/agents/{agent.client_id}"
    assert (await admin(http, "POST", f"{path}/retire")).json()["status"] == "retired"
    assert (await token(http, agent)).json()["error"] == "invalid_client"
    assert not await active(http, probe, held)
    for verb in ("resume", "suspend"):
        r = await admin(http, "POST", f"{path}/{verb}")
        assert r.status_code == 400 and "retired" in r.json()["error_description"]
    assert (await admin(http, "GET", path)).json()["status"] == "retired"
    r = await admin(http, "POST", f"/tenants/{agent.tenant}/agents/nobody/retire")
    assert r.status_code == 404


async def test_ephemeral_agent_expires(http, broker):
    agent, probe = await _setup(broker)
    path = f"/tenants/{agent.tenant}/agents/{agent.client_id}"
    expires = broker.clock.now() + 60
    r = await admin(http, "PUT", path, {"owner": "alice@acme.example",
                                        "purpose": "nightly report", "expires_at": expires})
    assert r.status_code == 200, r.text
    assert r.json()["owner"] == "alice@acme.example" and r.json()["expires_at"] == expires
    held = await access_token(http, agent)
    assert await active(http, probe, held)
    broker.clock.advance(61)
    try:
        assert (await token(http, agent)).json()["error"] == "invalid_client"
        assert not await active(http, probe, held)
        assert await whoami(http, agent, held) == 401
    finally:
        broker.clock.advance(-61)
    r = await admin(http, "PUT", path, {"expires_at": broker.clock.now() - 1})
    assert r.status_code == 400
    r = await admin(http, "PUT", path, {"expires_at": None})
    assert r.status_code == 200 and r.json()["expires_at"] is None
    events = [e for e in await ops.export_audit(broker, agent.tenant)
              if e["action"] == "agent.updated"]
    assert events[0]["detail"]["purpose"] == "nightly report"


async def test_no_request_after_the_revocation_succeeds(http, broker):
    """Sixteen workers send token and introspection requests one after another while the agent is
    suspended: every request that started after the suspension committed is refused (or
    reads inactive), and every token issued before reads inactive afterwards."""
    agent, probe = await _setup(broker)
    held = await access_token(http, agent)
    loop = asyncio.get_running_loop()
    marks: dict[str, float] = {}
    results: list[tuple[float, float, bool, str | None]] = []
    enough = asyncio.Event()
    deadline = loop.time() + 30

    def settled() -> bool:
        """The suspension committed and enough requests started after it, however slow each is."""
        committed = marks.get("committed")
        return committed is not None and loop.time() > committed + 0.1 and sum(
            1 for r in results if r[0] > committed) >= 8

    async def worker(i: int) -> None:
        await asyncio.sleep(i * 0.001)
        while loop.time() < deadline and not settled():
            start = loop.time()
            if i % 2:
                r = await token(http, agent)
                ok, issued = r.status_code == 200, r.json().get("access_token")
            else:
                ok, issued = await active(http, probe, held), None
            results.append((start, loop.time(), ok, issued))
            if len(results) >= 8:
                enough.set()
            await asyncio.sleep(0.003)  # leave SQLite's single writer room for the admin

    async def suspend() -> None:
        # enough requests finish before, however loaded the machine is
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), 5)
        marks["before"] = loop.time()
        r = await admin(http, "POST", f"/tenants/{agent.tenant}/agents/{agent.client_id}/suspend")
        assert r.status_code == 200
        marks["committed"] = loop.time()
        print(f"suspension took {marks['committed'] - marks['before']:.3f} s")

    await asyncio.gather(suspend(), *[worker(i) for i in range(16)])
    after = [r for r in results if r[0] > marks["committed"]]
    before = [r for r in results if r[1] < marks["before"]]
    assert len(after) >= 5 and len(before) >= 5, (len(after), len(before))
    assert not [r for r in after if r[2]], "a request that started after the revocation succeeded"
    assert all(r[2] for r in before)
    for _, _, ok, issued in results:
        if ok and issued:
            assert not await active(http, probe, issued)
    assert not await active(http, probe, held)


def test_cli_runtime_control(tmp_path):
    env = {**os.environ, "TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
           "TESSERA_MASTER_KEY_FILE": str(tmp_path / "master.key"),
           "TESSERA_ADMIN_TOKEN_FILE": str(tmp_path / "admin.token"),
           # this checkout, whatever copy of tessera is installed
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}

    def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "broker.cli", *args], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    cli("init")  # commands work only on an initialised database
    cli("tenant", "create", "acme")
    client = json.loads(cli("client", "create", "--tenant", "acme", "--name", "bot",
                            "--json").stdout)["client_id"]
    t = ("--tenant", "acme")
    described = json.loads(cli("agent", "set", *t, client, "--owner", "ops@acme",
                               "--purpose", "reports", "--expires-in", "3600", "--json").stdout)
    assert described["owner"] == "ops@acme" and described["expires_at"] > 0
    assert "status=\"suspended\"" in cli("agent", "suspend", *t, client, "--reason", "x").stdout
    assert json.loads(cli("agent", "resume", *t, client, "--json").stdout)["status"] == "active"
    revoked = json.loads(cli("revoke", *t, "--by", "agent", "--value", client,
                             "--json").stdout)
    assert revoked["by"] == "agent" and revoked["value"] == client
    assert json.loads(cli("revoke", *t, "--by", "tenant", "--json").stdout)["value"] == "acme"
    missing = cli("user", "disable", *t, "nobody", check=False)
    assert missing.returncode == 4 and "no user" in missing.stderr
    assert json.loads(cli("agent", "retire", *t, client, "--json").stdout)["status"] == "retired"
    assert cli("agent", "resume", *t, client, check=False).returncode == 5
    actions = [json.loads(x)["action"] for x in
               cli("audit", "export", *t).stdout.splitlines()]
    for action in ("agent.updated", "agent.suspended", "agent.resumed", "tokens.revoked",
                   "agent.retired"):
        assert action in actions
    assert "intact" in cli("audit", "verify", *t).stdout


async def test_expired_agent_cannot_start_an_authorization(http, broker):
    """The browser-facing front door refuses an expired agent too (an error page, never a
    redirect), like the token endpoint does."""
    tenant = await new_tenant(broker)
    agent = await new_client(broker, tenant, redirect_uris=["https://app.example/cb"])
    r = await admin(http, "PUT", f"/tenants/{tenant}/agents/{agent.client_id}",
                    {"expires_at": broker.clock.now() + 60})
    assert r.status_code == 200, r.text
    query = {"response_type": "code", "client_id": agent.client_id,
             "redirect_uri": "https://app.example/cb", "scope": "openid",
             "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
             "code_challenge_method": "S256"}
    before = await http.get(f"/t/{tenant}/authorize", params=query)
    assert before.status_code == 303  # on to the login
    broker.clock.advance(61)
    try:
        after = await http.get(f"/t/{tenant}/authorize", params=query)
    finally:
        broker.clock.advance(-61)
    assert after.status_code == 400 and "location" not in after.headers
    assert "unknown or disabled client_id" in after.text

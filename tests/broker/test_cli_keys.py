"""``tessera keys``, run as a user would: custody, rotation refused while too early (exit 3,
one line, no traceback), ``--wait``, two rotations at once, and the emergency rotation."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys


def _age_keys(cli, seconds: int) -> None:
    """As if the tenant's keys had been published ``seconds`` earlier."""
    with sqlite3.connect(cli.db) as db:
        db.execute("update signing_keys set created_at = created_at - ?", (seconds,))


def test_keys_list_shows_custody(cli):
    cli("tenant", "create", "acme")
    keys = json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout)
    assert {k["state"] for k in keys} == {"active", "next"}
    for key in keys:
        assert key["backend"] == "software" and key["created_at"] > 0
        assert "age_seconds" in key and "retire_after" in key
    table = cli("keys", "list", "--tenant", "acme").stdout
    assert "backend" in table and "software" in table


def test_rotate_too_early_is_a_clear_conflict(cli):
    cli("tenant", "create", "acme")
    proc = cli("keys", "rotate", "--tenant", "acme", check=False)
    assert proc.returncode == 3
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and "can sign in" in proc.stderr
    # --wait gives up after its time, with the same answer
    proc = cli("keys", "rotate", "--tenant", "acme", "--wait", "1", check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr
    proc = cli("keys", "rotate", "--tenant", "acme", "--wait", "-1", check=False)
    assert proc.returncode == 2


def test_rotate_waits_until_the_next_key_may_sign(cli):
    cli("tenant", "create", "acme")
    _age_keys(cli, 95)  # 5 s short of the publication period (100 s)
    rotated = json.loads(cli("keys", "rotate", "--tenant", "acme", "--wait", "30",
                             "--json").stdout)
    assert rotated["retiring"] and rotated["dropped"] == []


def test_two_rotations_at_once_never_a_traceback(cli):
    cli("tenant", "create", "acme")
    _age_keys(cli, 600)
    procs = [subprocess.Popen([sys.executable, "-m", "broker.cli", "keys", "rotate", "--tenant",
                               "acme"], cwd=cli.tmp, env=cli.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    # one rotates; the other waited for the lock and found a next key published just now
    assert sorted(code for code, _ in results) == [0, 3], results
    assert all("Traceback" not in err for _, err in results), results
    states = sorted(k["state"] for k in json.loads(cli("keys", "list", "--tenant", "acme",
                                                       "--json").stdout))
    assert states == ["active", "next", "retiring"]


def test_compromise(cli):
    cli("tenant", "create", "acme")
    keys = json.loads(cli("keys", "list", "--tenant", "acme", "--json").stdout)
    active = next(k["kid"] for k in keys if k["state"] == "active")
    done = json.loads(cli("keys", "compromise", "--tenant", "acme", "--kid", active,
                          "--reason", "laptop stolen", "--json").stdout)
    assert done["kid"] == active and done["was"] == "active" and done["active"] != active
    states = {k["kid"]: k["state"] for k in json.loads(
        cli("keys", "list", "--tenant", "acme", "--json").stdout)}
    assert states[active] == "compromised" and states[done["active"]] == "active"
    again = cli("keys", "compromise", "--tenant", "acme", "--kid", active, check=False)
    assert again.returncode == 3 and "already compromised" in again.stderr
    ghost = cli("keys", "compromise", "--tenant", "acme", "--kid", "nope", check=False)
    assert ghost.returncode == 4 and "Traceback" not in ghost.stderr
    missing = cli("keys", "compromise", "--tenant", "acme", check=False)
    assert missing.returncode == 2
    events = [json.loads(line) for line in cli("audit", "export", "--tenant", "acme")
              .stdout.splitlines()]
    compromised = [e for e in events if e["action"] == "key.compromised"]
    assert compromised and compromised[0]["detail"]["reason"] == "laptop stolen"

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


def test_master_key_rotation_by_the_cli(cli):
    cli("tenant", "create", "acme")
    old, new = cli.tmp / "master.key", cli.tmp / "master.key.new"
    early = cli("master-key", "rewrap", check=False)
    assert early.returncode == 2 and "TESSERA_MASTER_KEY_ACCEPTED_FILE" in early.stderr
    prepared = json.loads(cli("master-key", "prepare", "--json").stdout)
    assert prepared["created"] and prepared["new_key_file"] == str(new)
    assert new.stat().st_mode & 0o777 == 0o600
    both = {"TESSERA_MASTER_KEY_FILE": str(new), "TESSERA_MASTER_KEY_ACCEPTED_FILE": str(old)}
    status = json.loads(cli("master-key", "status", "--json", **both).stdout)
    assert status["rotation"]["to"] == prepared["to"] and len(status["known_key_ids"]) == 2
    half = json.loads(cli("master-key", "rewrap", "--batch", "1", "--stop-after", "1",
                          "--json", **both).stdout)
    assert half["finished"] is False and half["rewrapped"] == 1
    assert cli("keys", "list", "--tenant", "acme").returncode == 0  # the old key, until done
    done = json.loads(cli("master-key", "rewrap", "--json", **both).stdout)
    assert done["finished"] is True
    refused = cli("keys", "list", "--tenant", "acme", check=False)
    assert refused.returncode == 6 and "Traceback" not in refused.stderr
    keys = json.loads(cli("keys", "list", "--tenant", "acme", "--json",
                          TESSERA_MASTER_KEY_FILE=str(new)).stdout)
    active = next(k["kid"] for k in keys if k["state"] == "active")
    assert cli("keys", "compromise", "--tenant", "acme", "--kid", active,
               TESSERA_MASTER_KEY_FILE=str(new)).returncode == 0

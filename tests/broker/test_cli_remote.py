"""The command line as an operator meets it: ``--version``, a remote broker driven over the
admin API (``--url``/``TESSERA_URL`` and the admin token, nothing local: no database, no master
key), the documented exit codes for each kind of refusal, one-line input errors, and a closed
pipe that ends the output quietly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.server_process import Server, clean_env, free_port, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("cli-remote")) as running:
        yield running


def tessera(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker.cli", *args], cwd=cwd,
                          env=clean_env(**env), capture_output=True, text=True, timeout=60)


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_version(tmp_path: Path) -> None:
    proc = tessera("--version", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.split() == ["tessera", metadata.version("tessera")]


def test_a_remote_broker_is_managed_over_the_admin_api(server: Server, tmp_path: Path) -> None:
    remote = {"TESSERA_URL": server.base_url, "TESSERA_ADMIN_TOKEN": server.admin_token}
    tenant = json.loads(tessera("tenant", "create", "remote-acme", "--json", cwd=tmp_path,
                                **remote).stdout)
    assert tenant["id"] == "remote-acme" and tenant["issuer"].endswith("/t/remote-acme")
    client = json.loads(tessera("client", "create", "--tenant", "remote-acme", "--name",
                                "svc", "--json", cwd=tmp_path, **remote).stdout)
    assert client["client_secret"]
    # --url given on the command line wins over nothing in the environment
    listed = json.loads(tessera("--url", server.base_url, "client", "list", "--tenant",
                                "remote-acme", "--json", cwd=tmp_path,
                                TESSERA_ADMIN_TOKEN=server.admin_token).stdout)
    assert [c["client_id"] for c in listed] == [client["client_id"]]
    assert "client_secret" not in listed[0]
    # the change went through the HTTP edge: the audit names the admin bearer's principal
    exported = tessera("audit", "export", "--tenant", "remote-acme", cwd=tmp_path, **remote)
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    created = [e for e in events if e["action"] == "client.created"]
    assert created and created[0]["detail"]["actor"] == "operator"
    # nothing local was needed or made
    assert list(tmp_path.iterdir()) == []


def test_remote_refusals_have_their_exit_codes(server: Server, tmp_path: Path) -> None:
    remote = {"TESSERA_URL": server.base_url, "TESSERA_ADMIN_TOKEN": server.admin_token}
    assert "no tenant" in one_line(
        tessera("tenant", "disable", "nowhere", cwd=tmp_path, **remote), 4)
    assert "tenant name" in one_line(
        tessera("tenant", "create", "Not Valid", cwd=tmp_path, **remote), 5)
    tessera("tenant", "create", "twice", cwd=tmp_path, **remote)
    assert "exists" in one_line(tessera("tenant", "create", "twice", cwd=tmp_path, **remote), 3)
    wrong = dict(remote, TESSERA_ADMIN_TOKEN="not-the-token")
    assert "admin bearer" in one_line(tessera("tenant", "list", cwd=tmp_path, **wrong), 7)
    gone = f"http://127.0.0.1:{free_port()}"
    assert "cannot reach" in one_line(
        tessera("--url", gone, "tenant", "list", cwd=tmp_path,
                TESSERA_ADMIN_TOKEN="x"), 6)
    assert "http(s) URL" in one_line(
        tessera("--url", "ftp://example.org", "tenant", "list", cwd=tmp_path), 2)
    # local-only commands say so rather than touching a local database
    assert "local deployment only" in one_line(
        tessera("--url", server.base_url, "migrate", cwd=tmp_path), 2)


def test_admin_token_rotate_takes_the_global_url(server: Server, tmp_path: Path) -> None:
    """``--url`` on the command line (not only TESSERA_URL): the rotation runs on the remote
    broker with the current token; the new one works there at once, the current one for the
    overlap (the other tests of this module go on using it); nothing local is written."""
    proc = tessera("--url", server.base_url, "admin-token", "rotate", "--json", cwd=tmp_path,
                   TESSERA_ADMIN_TOKEN=server.admin_token)
    assert proc.returncode == 0, proc.stderr
    rotated = json.loads(proc.stdout)
    new = rotated["admin_token"]
    assert new != server.admin_token and rotated["admin_token_file"] is None
    for token in (new, server.admin_token):
        listed = tessera("--url", server.base_url, "tenant", "list", "--json", cwd=tmp_path,
                         TESSERA_ADMIN_TOKEN=token)
        assert listed.returncode == 0, listed.stderr
    assert list(tmp_path.iterdir()) == []
    # showing the token is about this machine's deployment: --url is refused for it
    assert "local deployment only" in one_line(
        tessera("--url", server.base_url, "admin-token", cwd=tmp_path), 2)


def test_missing_files_and_bad_json_are_usage_errors(cli: Any, tmp_path: Path) -> None:
    cli("tenant", "create", "acme")
    missing = str(tmp_path / "nowhere.json")
    for args, option in [
        (("partner", "register", "--name", "p", "--issuer", "https://p.example",
          "--jwks-file", missing), "--jwks-file"),
        (("upstream", "add-saml", "--tenant", "acme", "--name", "s",
          "--metadata-file", missing), "--metadata-file"),
        (("detail-type", "add", "--tenant", "acme", "--type", "payment",
          "--schema-file", missing), "--schema-file"),
    ]:
        proc = cli(*args, check=False)
        line = one_line(proc, 2)
        assert option in line and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    line = one_line(cli("partner", "register", "--name", "p", "--issuer", "https://p.example",
                        "--jwks-file", str(bad), check=False), 2)
    assert "--jwks-file" in line
    line = one_line(cli("upstream", "add-oidc", "--tenant", "acme", "--name", "o",
                        "--issuer", "https://idp.example", "--client-id", "x",
                        "--mapping", "{oops", check=False), 2)
    assert "--mapping" in line


def test_a_closed_pipe_ends_the_export_quietly(server: Server, tmp_path: Path) -> None:
    """``tessera audit export | head -n 1``: far more than a pipe buffer of events (made over
    the admin API, not one command each), the reader gone after the first line."""
    server.admin_post("/tenants", {"name": "pipe-acme"})
    for n in range(30):
        server.admin_post("/tenants/pipe-acme/clients", {"name": f"c{n}"})
    env = {**clean_env(TESSERA_URL=server.base_url, TESSERA_ADMIN_TOKEN=server.admin_token),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        f"{sys.executable} -m broker.cli audit export --tenant pipe-acme | head -n 1",
        shell=True, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["seq"] == 1
    assert proc.stderr == "", proc.stderr

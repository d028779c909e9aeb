"""State is checked, never invented: a process proves it holds the database's master key before
it writes anything, and the master key and admin token files are created only when a database
is initialised (by ``tessera init`` or the first ``tessera serve``), next to the SQLite file.

The real CLI, ``tessera serve`` and ``broker.asgi`` run as subprocesses for what a user sees
(exit codes, one-line errors, files and their modes); ``open_deployment`` runs in process for
the matrix of database states (it is what every one of them calls)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine as create_sync_engine

from broker.config import Settings, StartupError, parse_master_key
from broker.deployment import Mode, open_deployment
from broker.runtime import Broker
from tenants import deployment
from tenants.db import create_engine
from tenants.migrate import alembic_config, head_revision
from tests import admin_ops as ops
from tests.conftest import BASE_URL, REPO_ROOT, OffsetClock
from tests.server_process import free_port

# -- helpers -----------------------------------------------------------------------------------


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def data_settings(tmp: Path, **overrides: Any) -> Settings:
    """A deployment in ``tmp/data`` whose secrets live at the default places (next to the
    SQLite file) unless ``overrides`` say otherwise."""
    (tmp / "data").mkdir(exist_ok=True)
    values: dict[str, Any] = {"database_url": f"sqlite+aiosqlite:///{tmp}/data/tessera.db",
                              "base_url": BASE_URL, "demo": False, **overrides}
    return Settings(**values)


def snapshot(db: Path) -> dict[str, Any]:
    """Every table's row count and the schema revision: "unchanged" means equal snapshots."""
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute(
            "select name from sqlite_master where type = 'table' order by name")]
        counts: dict[str, Any] = {t: conn.execute(f'select count(*) from "{t}"').fetchone()[0]
                                  for t in tables}
        counts["@revision"] = conn.execute("select version_num from alembic_version").fetchone()
        if "deployment" in tables:
            counts["@checks"] = sorted(conn.execute("select name, value from deployment"))
        counts["@keys"] = sorted(conn.execute(
            "select tenant_id, kid, state, private_blob from signing_keys"))
    return counts


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The refusal as the user sees it: exit code 6 (cannot start here), one line on stderr,
    no traceback."""
    assert proc.returncode == 6, (proc.returncode, proc.stdout, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if "alembic" not in x]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def downgrade_to_0008(db: Path) -> None:
    """Turn a database into one from before check values (revision 0008, no deployment
    table), keeping its tenants and wrapped keys."""
    engine = create_sync_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0008")
    engine.dispose()


async def with_tenant(settings: Settings, name: str = "acme") -> None:
    """A tenant (and its wrapped keys), written by the project's own code under
    ``settings.master_key`` with no check at all: how data got into databases before."""
    broker = Broker.build(settings)
    try:
        await ops.create_tenant(broker, name)
    finally:
        await broker.close()


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def clean_env(**env: str) -> dict[str, str]:
    """This checkout's code, none of the caller's TESSERA_* variables, then ``env``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TESSERA_")}
    return {**environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", **env}


# -- pure parts --------------------------------------------------------------------------------


def test_master_key_parsing() -> None:
    raw = secrets.token_bytes(32)
    text = base64.urlsafe_b64encode(raw).decode()
    assert parse_master_key(text, "x") == raw  # padded
    assert parse_master_key(text.rstrip("=") + "\n", "x") == raw  # a file's newline
    short = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode()
    with pytest.raises(StartupError, match=r"from TESSERA_MASTER_KEY is 16 bytes; it must be "
                                           r"at least 32") as short_error:
        parse_master_key(short, "TESSERA_MASTER_KEY")
    assert short.rstrip("=") not in str(short_error.value)
    standard = base64.b64encode(raw).decode()  # + and / (openssl rand -base64 32) as before
    assert parse_master_key(standard, "x") == raw
    for junk in ("", "   ", "not base64 at all!", text[:20] + "$" + text[21:], "a=b" * 20,
                 text[:-1] + "\u00e9"):
        with pytest.raises(StartupError, match="is not base64url text") as junk_error:
            parse_master_key(junk, "/etc/tessera/key")
        assert "/etc/tessera/key" in str(junk_error.value)
        if junk.strip():
            assert junk.strip() not in str(junk_error.value)


def test_key_check_identifies_without_revealing() -> None:
    a, b = secrets.token_bytes(32), secrets.token_bytes(32)
    check = deployment.key_check(a)
    assert check == deployment.key_check(a) and check != deployment.key_check(b)
    assert check.value.startswith("v1:") and len(check.value) == 3 + 64
    assert check.key_id == check.value[3:11]
    assert a.hex() not in check.value
    assert base64.urlsafe_b64encode(a).decode().rstrip("=") not in check.value


def test_secret_files_default_to_the_database_directory(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings.load({"TESSERA_DATABASE_URL": "sqlite+aiosqlite:////srv/tessera/tessera.db"})
    assert s.master_key_path() == Path("/srv/tessera/tessera-master.key")
    assert s.admin_token_path() == Path("/srv/tessera/tessera-admin.token")
    assert s.demo_path() == Path("/srv/tessera/tessera-demo-client.json")
    relative = Settings.load({})  # the default ./tessera.db: beside it in the working directory
    assert relative.sqlite_path() == tmp_path / "tessera.db"
    assert relative.master_key_path() == tmp_path / "tessera-master.key"
    named = Settings.load({"TESSERA_DATABASE_URL": "sqlite+aiosqlite:////srv/t.db",
                           "TESSERA_MASTER_KEY_FILE": "keys/m.key"})
    assert named.master_key_path() == tmp_path / "keys" / "m.key"
    pg = Settings.load({"TESSERA_DATABASE_URL": "postgresql+asyncpg://tess:s3cret-pw@db/t"})
    assert pg.master_key_path() is None and pg.admin_token_path() is None
    assert pg.database_shown() == "postgresql+asyncpg://tess:***@db/t"
    with pytest.raises(StartupError, match="TESSERA_MASTER_KEY_FILE") as error:
        pg.master_key_bytes()
    assert "s3cret-pw" not in str(error.value) and "***" in str(error.value)


def test_settings_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"setting TESSERA_KEY_SCHEDULE_INTERVAL "
                                           r"\(environment\): Input should be a valid number"):
        Settings.load({"TESSERA_KEY_SCHEDULE_INTERVAL": "soon"})
    bad = tmp_path / "bad.toml"
    bad.write_text("database_url = ")
    with pytest.raises(StartupError, match="cannot read TESSERA_CONFIG"):
        Settings.load({"TESSERA_CONFIG": str(bad)})
    with pytest.raises(StartupError, match="cannot read TESSERA_CONFIG"):
        Settings.load({"TESSERA_CONFIG": str(tmp_path / "missing.toml")})


# -- open_deployment over the states of a database ---------------------------------------------


async def test_initialise_then_verify(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    data = tmp_path / "data"
    opened = await open_deployment(settings, Mode.INIT, admin_token=True)
    assert opened.initialised
    files = {data / "tessera.db", data / "tessera-master.key", data / "tessera-admin.token"}
    assert set(opened.created) == files
    assert all(mode(f) == 0o600 for f in files)
    master = (data / "tessera-master.key").read_text().strip()
    assert opened.settings.master_key == master
    assert opened.settings.admin_token == (data / "tessera-admin.token").read_text().strip()
    check = deployment.key_check(parse_master_key(master, "x"))
    assert opened.key_id == check.key_id
    assert snapshot(data / "tessera.db")["@checks"] == [("master_key_check:1", check.value)]

    for again in (Mode.INIT, Mode.USE, Mode.WORKER):  # the same key from the same file
        reopened = await open_deployment(settings, again, admin_token=True)
        assert not reopened.initialised and reopened.created == ()
        assert reopened.settings.master_key == master
    assert (data / "tessera-master.key").read_text().strip() == master  # never rewritten

    await with_tenant(opened.settings)
    before = snapshot(data / "tessera.db")
    for wrong in (Mode.INIT, Mode.USE, Mode.WORKER):
        with pytest.raises(StartupError) as error:
            await open_deployment(data_settings(tmp_path, master_key=new_key()), wrong)
        message = str(error.value)
        assert message.startswith("the master key from TESSERA_MASTER_KEY (id ")
        assert f"it knows key id {check.key_id}" in message and str(data / "tessera.db") in message
    assert snapshot(data / "tessera.db") == before


async def test_only_init_initialises(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    for refusing in (Mode.USE, Mode.WORKER):
        with pytest.raises(StartupError, match=r"^no tessera database at .*/data/tessera.db; run "
                                               r"`tessera init` or `tessera serve` first$"):
            await open_deployment(settings, refusing, admin_token=True)
    assert list((tmp_path / "data").iterdir()) == []  # no database, no key, no token
    # an empty file (someone's `touch`) is no database either
    (tmp_path / "data" / "tessera.db").touch()
    with pytest.raises(StartupError, match="no tessera database"):
        await open_deployment(settings, Mode.USE)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["tessera.db"]
    # a SQLite file of someone else's is not ours to initialise
    other = tmp_path / "data" / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table notes (x text)")
    with pytest.raises(StartupError, match="is not a tessera database"):
        await open_deployment(
            data_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{other}"), Mode.INIT)
    assert not (tmp_path / "data" / "tessera-master.key").exists()


async def test_initialisation_reads_existing_files_before_creating(tmp_path: Path) -> None:
    """A bad file that is already there refuses the initialisation before anything exists:
    no database, and no new secret beside it."""
    settings = data_settings(tmp_path)
    data = tmp_path / "data"
    (data / "tessera-admin.token").write_text("")
    with pytest.raises(StartupError, match=r"^the admin token file .* is empty$"):
        await open_deployment(settings, Mode.INIT, admin_token=True)
    assert sorted(p.name for p in data.iterdir()) == ["tessera-admin.token"]
    (data / "tessera-admin.token").unlink()
    (data / "tessera-master.key").write_text("c2hvcnQ\n")  # 5 bytes
    with pytest.raises(StartupError, match=r"tessera-master.key is 5 bytes; it must be at "):
        await open_deployment(settings, Mode.INIT, admin_token=True)
    assert sorted(p.name for p in data.iterdir()) == ["tessera-master.key"]
    # a good key file that is already there is used, not replaced
    key = new_key()
    (data / "tessera-master.key").write_text(key + "\n")
    opened = await open_deployment(settings, Mode.INIT, admin_token=True)
    assert opened.settings.master_key == key and data / "tessera-master.key" not in opened.created
    assert (data / "tessera-master.key").read_text() == key + "\n"


async def test_missing_key_file_or_token_refuses_before_writing(tmp_path: Path) -> None:
    settings = data_settings(tmp_path)
    data = tmp_path / "data"
    opened = await open_deployment(settings, Mode.INIT, admin_token=True)
    (data / "tessera-master.key").rename(data / "kept.key")
    before = snapshot(data / "tessera.db")
    with pytest.raises(StartupError) as error:
        await open_deployment(settings, Mode.INIT, admin_token=True)
    assert str(error.value).startswith(f"no master key: {data}/tessera-master.key does not "
                                       f"exist (the database {data}/tessera.db needs")
    assert not (data / "tessera-master.key").exists()  # not invented
    (data / "kept.key").rename(data / "tessera-master.key")
    (data / "tessera-admin.token").unlink()
    with pytest.raises(StartupError, match=r"^no admin token: .*tessera-admin.token does not "
                                           r"exist \(set TESSERA_ADMIN_TOKEN"):
        await open_deployment(settings, Mode.INIT, admin_token=True)
    assert not (data / "tessera-admin.token").exists()
    assert snapshot(data / "tessera.db") == before
    # the CLI needs no admin token
    assert (await open_deployment(settings, Mode.USE)).key_id == opened.key_id


async def test_upgrade_from_a_database_without_a_check_value(tmp_path: Path) -> None:
    """Before revision 0009: the key that opens the wrapped signing keys records its check
    value; any other key is refused and nothing is written (not even the migration)."""
    data = tmp_path / "data"
    right = new_key()
    settings = data_settings(tmp_path, master_key=right, admin_token="t" * 32)
    await open_deployment(settings, Mode.INIT)
    await with_tenant(settings, "acme")
    await with_tenant(settings, "globex")
    downgrade_to_0008(data / "tessera.db")
    legacy = snapshot(data / "tessera.db")
    assert legacy["@revision"] == ("0008",) and "@checks" not in legacy
    assert len(legacy["@keys"]) == 4

    wrong = data_settings(tmp_path, master_key=new_key())
    for refusing in (Mode.USE, Mode.WORKER, Mode.INIT):
        with pytest.raises(StartupError, match=r"^the master key does not open the signing keys "
                                               r"in the database: it is not this deployment's"):
            await open_deployment(wrong, refusing)
    assert snapshot(data / "tessera.db") == legacy

    # the right key, but a process that does not migrate: refused ("run `tessera migrate`"),
    # the key proven and nothing written, not even the check value
    for no_migration in (Mode.USE, Mode.WORKER):
        with pytest.raises(StartupError, match="run `tessera migrate` first"):
            await open_deployment(settings.replace(auto_migrate=False), no_migration)
    assert snapshot(data / "tessera.db") == legacy
    opened = await open_deployment(settings, Mode.MIGRATE)  # migrates, then records
    upgraded = snapshot(data / "tessera.db")
    check = deployment.key_check(parse_master_key(right, "x"))
    assert upgraded["@revision"] == (head_revision(),) and opened.key_id == check.key_id
    assert upgraded["@checks"] == [("master_key_check:1", check.value)]
    assert upgraded["@keys"] == legacy["@keys"]
    with pytest.raises(StartupError, match=f"it knows key id {check.key_id}"):
        await open_deployment(wrong, Mode.USE)  # from now on the check value decides


async def test_upgrade_refuses_keys_wrapped_under_two_master_keys(tmp_path: Path) -> None:
    """The bug this guards against: a CLI run elsewhere planted a ``next`` key wrapped under
    its own stray master key. That stray key opens what it planted, so "opens one key" would
    let it record itself; every live key must open, or nobody is proven."""
    data = tmp_path / "data"
    right, stray = new_key(), new_key()
    settings = data_settings(tmp_path, master_key=right, admin_token="t" * 32)
    await open_deployment(settings, Mode.INIT)
    await with_tenant(settings, "acme")
    downgrade_to_0008(data / "tessera.db")
    clock = OffsetClock()
    broker = Broker.build(data_settings(tmp_path, master_key=stray), clock=clock)
    clock.advance(broker.keys.publication_period)  # the next key may be promoted
    try:
        planted = (await broker.keys.rotate("acme")).published_next  # the old `tessera keys rotate`
    finally:
        await broker.close()
    before = snapshot(data / "tessera.db")
    for key in (right, stray):
        with pytest.raises(StartupError) as error:
            await open_deployment(data_settings(tmp_path, master_key=key), Mode.USE)
        message = str(error.value)
        assert message.startswith("the database holds signing keys wrapped under another "
                                  "master key (")
        assert (f"acme/{planted}" in message) == (key == right), message
    assert snapshot(data / "tessera.db") == before


async def test_upgrade_of_an_empty_database_records_the_first_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = data_settings(tmp_path, master_key=new_key(), admin_token="t" * 32)
    await open_deployment(settings, Mode.INIT)
    downgrade_to_0008(data / "tessera.db")  # migrated, no tenant, no key: nothing to prove
    other = data_settings(tmp_path, master_key=new_key())
    opened = await open_deployment(other, Mode.MIGRATE)
    assert snapshot(data / "tessera.db")["@checks"] == [
        ("master_key_check:1", deployment.key_check(
            parse_master_key(other.master_key, "x")).value)]
    with pytest.raises(StartupError, match=f"it knows key id {opened.key_id}"):
        await open_deployment(settings, Mode.USE)


async def test_the_first_recorded_key_wins_a_race(tmp_path: Path) -> None:
    """Two processes initialising one database with different keys: slot 1 is a primary key,
    so the second one's record fails and it sees the other's value (and then refuses)."""
    settings = data_settings(tmp_path, master_key=new_key(), admin_token="t" * 32)
    first = await open_deployment(settings, Mode.INIT)
    engine = create_engine(settings.database_url)
    try:
        late = deployment.key_check(secrets.token_bytes(32))
        found = await deployment.record_first_check(engine, late, time.time())
    finally:
        await engine.dispose()
    assert not found.matches(late) and found.known_ids() == [first.key_id]


# -- the real command line ---------------------------------------------------------------------


def test_init_puts_the_secrets_next_to_the_database(bare_cli: Any, tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    env = {"TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{data}/tessera.db",
           "TESSERA_MASTER_KEY_FILE": "", "TESSERA_ADMIN_TOKEN_FILE": ""}  # the defaults
    report = json.loads(bare_cli("init", "--json", cwd=elsewhere, **env).stdout)
    secrets_ = {data / "tessera-master.key", data / "tessera-admin.token"}
    assert report["initialised"] and set(map(Path, report["created"])) == secrets_ | {
        data / "tessera.db"}
    assert report["master_key"] == str(data / "tessera-master.key")
    assert {p.name for p in data.iterdir()} >= {"tessera.db", "tessera-master.key",
                                                "tessera-admin.token"}
    assert all(mode(p) == 0o600 for p in data.iterdir())  # the -wal/-shm files too, if any
    assert list(elsewhere.iterdir()) == []
    key = (data / "tessera-master.key").read_text()
    again = json.loads(bare_cli("init", "--json", cwd=elsewhere, **env).stdout)
    assert not again["initialised"] and again["created"] == []
    assert again["master_key_id"] == report["master_key_id"]
    assert (data / "tessera-master.key").read_text() == key
    # a command elsewhere finds the key beside the database, and works
    created = json.loads(bare_cli("tenant", "create", "acme", "--json", cwd=elsewhere,
                                  **env).stdout)
    assert created["id"] == "acme" and list(elsewhere.iterdir()) == []


def test_cli_in_another_directory_refuses(bare_cli: Any, tmp_path: Path) -> None:
    """Finding 9: a command run elsewhere used to make ./tessera-master.key and write secrets
    and keys nobody could use. Now: one line, exit 2, no file, the database unchanged."""
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    db = data / "tessera.db"
    url = f"sqlite+aiosqlite:///{db}"
    setup = {"TESSERA_DATABASE_URL": url, "TESSERA_MASTER_KEY_FILE": "",
             "TESSERA_ADMIN_TOKEN_FILE": ""}
    bare_cli("init", cwd=data, **setup)
    bare_cli("tenant", "create", "acme", cwd=data, **setup)
    before = snapshot(db)

    # the default database (./tessera.db) is not there
    line = one_line_error(bare_cli("tenant", "list", check=False, cwd=elsewhere,
                                   TESSERA_DATABASE_URL="", TESSERA_MASTER_KEY_FILE="",
                                   TESSERA_ADMIN_TOKEN_FILE=""))
    assert line == (f"error: no tessera database at {elsewhere}/tessera.db; run `tessera init` "
                    "or `tessera serve` first")
    # the database named, the key file named relative to the working directory
    line = one_line_error(bare_cli("client", "create", "--tenant", "acme", "--name", "x",
                                   check=False, cwd=elsewhere, TESSERA_DATABASE_URL=url,
                                   TESSERA_MASTER_KEY_FILE="tessera-master.key"))
    assert line.startswith(f"error: no master key: {elsewhere}/tessera-master.key does not "
                           f"exist (the database {db} needs the master key")
    assert list(elsewhere.iterdir()) == []
    # a stray key from the old bug sits there: refused by its check value
    stray = elsewhere / "tessera-master.key"
    stray.write_text(new_key())
    for args in (("tenant", "create", "globex"),
                 ("client", "create", "--tenant", "acme", "--name", "x"),
                 ("keys", "rotate", "--tenant", "acme")):
        line = one_line_error(bare_cli(*args, check=False, cwd=elsewhere,
                                       TESSERA_DATABASE_URL=url,
                                       TESSERA_MASTER_KEY_FILE="tessera-master.key"))
        assert line.startswith(f"error: the master key from {stray} (id ") and str(db) in line
        assert stray.read_text() not in line
    assert sorted(p.name for p in elsewhere.iterdir()) == ["tessera-master.key"]
    assert snapshot(db) == before


def test_bad_master_keys_are_one_line(cli: Any) -> None:
    before = snapshot(cli.db)
    short = base64.urlsafe_b64encode(b"k" * 20).decode()
    line = one_line_error(cli("tenant", "list", check=False, TESSERA_MASTER_KEY=short))
    assert "from TESSERA_MASTER_KEY is 20 bytes; it must be at least 32" in line
    assert short.rstrip("=") not in line and str(cli.db) in line
    (cli.tmp / "junk.key").write_text("this is not a key\n")
    line = one_line_error(cli("keys", "rotate", "--tenant", "x", check=False,
                              TESSERA_MASTER_KEY_FILE=str(cli.tmp / "junk.key")))
    assert f"the master key from {cli.tmp}/junk.key is not base64url text" in line
    assert "this is not a key" not in line
    assert snapshot(cli.db) == before


def test_cli_refuses_an_uninitialised_database(bare_cli: Any) -> None:
    for args in (("tenant", "create", "acme"), ("keys", "rotate", "--tenant", "acme"),
                 ("audit", "verify", "--tenant", "acme")):
        line = one_line_error(bare_cli(*args, check=False))
        assert line == (f"error: no tessera database at {bare_cli.db}; run `tessera init` or "
                        "`tessera serve` first")
    assert sorted(p.name for p in bare_cli.tmp.iterdir()) == []  # nothing invented


@pytest.mark.postgres
def test_postgres_needs_a_named_key(bare_cli: Any, empty_postgres: str) -> None:
    init = bare_cli("init", check=False, TESSERA_DATABASE_URL=empty_postgres,
                    TESSERA_MASTER_KEY=new_key(), TESSERA_ADMIN_TOKEN="t" * 32)
    assert init.returncode == 0, init.stderr
    line = one_line_error(bare_cli("tenant", "list", check=False,
                                   TESSERA_DATABASE_URL=empty_postgres,
                                   TESSERA_MASTER_KEY_FILE=""))
    assert "set TESSERA_MASTER_KEY or TESSERA_MASTER_KEY_FILE" in line
    assert list(bare_cli.tmp.iterdir()) == []


# -- the real server and the ASGI entry point --------------------------------------------------


def _serve(workdir: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    with (workdir / "server.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "broker.cli", "serve", "--host",
                                 "127.0.0.1", "--port", str(port)], cwd=workdir,
                                env=clean_env(**env), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def _healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"tessera serve did not start:\n{log.read_text()}")


def test_serve_initialises_once_and_refuses_a_wrong_key(bare_cli: Any, tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "srv", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data, port, TESSERA_BASE_URL=url)
    try:
        _healthy(proc, url, data / "server.log")
        names = {"tessera.db", "tessera-master.key", "tessera-admin.token",
                 "tessera-demo-client.json"}
        assert names <= {p.name for p in data.iterdir()}
        assert {p.name: mode(p) for p in data.iterdir() if p.name != "server.log"} == {
            p.name: 0o600 for p in data.iterdir() if p.name != "server.log"}
        assert (data / "tessera.db-wal").exists()  # and it is 0600 too (above)
        # the CLI elsewhere, with the database named, finds the key beside it: the client it
        # prints works at the server (it used to get 401 forever)
        env = {"TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{data}/tessera.db",
               "TESSERA_MASTER_KEY_FILE": "", "TESSERA_ADMIN_TOKEN_FILE": "",
               "TESSERA_BASE_URL": url}
        bare_cli("tenant", "create", "acme", cwd=elsewhere, **env)
        client = json.loads(bare_cli("client", "create", "--tenant", "acme", "--name", "agent",
                                     "--scope", "read", "--json", cwd=elsewhere, **env).stdout)
        r = httpx.post(f"{url}/t/acme/token", data={"grant_type": "client_credentials"},
                       auth=(client["client_id"], client["client_secret"]), timeout=10)
        assert r.status_code == 200, r.text
        assert list(elsewhere.iterdir()) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    before = snapshot(data / "tessera.db")
    key = (data / "tessera-master.key").read_text()
    for bad, expected in ((new_key(), "error: the master key from TESSERA_MASTER_KEY (id "),
                          ("c2hvcnQ", "error: the master key from TESSERA_MASTER_KEY is 5 "
                                      "bytes; it must be at least 32")):
        started = subprocess.run(
            [sys.executable, "-m", "broker.cli", "serve", "--port", str(free_port())],
            cwd=data, capture_output=True, text=True, timeout=60,
            env=clean_env(TESSERA_MASTER_KEY=bad))
        assert one_line_error(started).startswith(expected), started.stderr
        assert bad not in started.stderr
    assert snapshot(data / "tessera.db") == before
    assert (data / "tessera-master.key").read_text() == key


def test_asgi_entry_point_checks_the_key(cli: Any) -> None:
    """``hypercorn broker.asgi:app`` (and every worker of ``serve --workers``) loads only with
    the database's master key."""
    def load(**env: str) -> subprocess.CompletedProcess[str]:
        environ = clean_env(**{"TESSERA_DATABASE_URL": f"sqlite+aiosqlite:///{cli.db}",
                               "TESSERA_BASE_URL": "http://127.0.0.1:8000",
                               "TESSERA_ADMIN_TOKEN_FILE": str(cli.tmp / "admin.token"), **env})
        return subprocess.run([sys.executable, "-c", "import broker.asgi"], cwd=cli.tmp,
                              env=environ, capture_output=True, text=True, timeout=60)

    before = snapshot(cli.db)
    line = one_line_error(load(TESSERA_MASTER_KEY=new_key()))
    assert line.startswith("error: the master key from TESSERA_MASTER_KEY (id ")
    line = one_line_error(load(TESSERA_MASTER_KEY_FILE=str(cli.tmp / "master.key"),
                               TESSERA_DATABASE_URL=f"sqlite+aiosqlite:///{cli.tmp}/none.db"))
    assert line.startswith("error: no tessera database at ")
    assert not (cli.tmp / "none.db").exists()
    line = one_line_error(load(TESSERA_MASTER_KEY_FILE=str(cli.tmp / "master.key"),
                               TESSERA_BASE_URL=""))
    assert line.startswith("error: TESSERA_BASE_URL is not set")
    ok = load(TESSERA_MASTER_KEY_FILE=str(cli.tmp / "master.key"))
    assert ok.returncode == 0, ok.stderr
    assert snapshot(cli.db) == before

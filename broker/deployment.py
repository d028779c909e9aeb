"""Opening a deployment: state is checked, never invented. Every process proves it holds the
database's master key before it writes anything, and secrets are created only when a
deployment is initialised.

    opened = await open_deployment(settings, Mode.USE)   # StartupError: one line, nothing written

  Mode.INIT    ``tessera init`` and ``tessera serve``: an empty (or absent) database is
               initialised: the master key and admin token files are created unless given
               (mode 0600, next to the SQLite file by default), the SQLite file too (0600),
               the schema migrated and the key's check value recorded. An initialised
               database is verified and migrated like Mode.USE.
  Mode.USE     every other CLI command: an initialised database only; verify; a schema that
               is not at head is refused ("run `tessera migrate`"), never migrated in passing.
  Mode.WORKER  ``broker.asgi`` (the workers of ``serve --workers``, other process managers):
               an initialised database only; verify; migrate when ``auto_migrate`` (the
               default), else refuse a schema that is not at head.
  Mode.MIGRATE ``tessera migrate``: an initialised database only; verify, then migrate.

Migrations are serialised across replicas (``tenants.migrate``), so several processes starting
at once on one database is safe. ``tessera serve --no-migrate`` and ``TESSERA_AUTO_MIGRATE=
false`` leave migrating to an explicit ``tessera migrate``; a database migrated by a newer
tessera is refused by every mode.

Verifying: the key's check value (``tenants.deployment``) must be one the database holds. A
database from before check values has none; there the key must open every live signing key,
and then its check value is recorded (the upgrade path). The returned settings carry the
secrets themselves, so nothing reads (or could create) a file after start-up.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from broker.config import (
    Settings,
    StartupError,
    create_secret_file,
    encode_master_key,
    parse_master_key,
    read_secret_file,
)
from tenants import deployment, master_key_rotation
from tenants.db import create_engine
from tenants.deployment import Found, KeyCheck, Proof
from tenants.keys.software import SoftwareBackend
from tenants.migrate import status as migrate_status
from tenants.migrate import upgrade

log = logging.getLogger("tessera.deployment")

T = TypeVar("T")


class Mode(enum.Enum):
    INIT = "init"
    USE = "use"
    WORKER = "worker"
    MIGRATE = "migrate"


def _migrates(mode: Mode, settings: Settings) -> bool:
    """Whether a process in ``mode`` brings a schema that is behind to head."""
    if mode is Mode.MIGRATE:
        return True
    if mode is Mode.USE:
        return False
    return settings.auto_migrate


@dataclass(frozen=True)
class Opened:
    settings: Settings  # ``master_key`` (and ``admin_token`` when asked for) filled in
    key_id: str  # the master key's check id (not secret)
    key_source: str  # "TESSERA_MASTER_KEY" or the file
    initialised: bool  # this process initialised the database
    created: tuple[Path, ...] = ()  # files this process created
    admin_token_source: str = ""  # "TESSERA_ADMIN_TOKEN" or the file


async def open_deployment(settings: Settings, mode: Mode, *, admin_token: bool = False,
                          now: Callable[[], float] = time.time) -> Opened:
    shown = settings.database_shown()
    path = settings.sqlite_path()
    found = None
    if path is None or path.exists():  # never let SQLite create a file by looking
        engine = _engine(settings)
        try:
            found = await _guard(settings, deployment.inspect_database(engine))
        finally:
            await engine.dispose()
    if found is not None and not found.empty and not found.initialised:
        raise StartupError(f"{shown} is not a tessera database (tables but no schema version)")
    if found is None or found.empty:
        if mode is not Mode.INIT:
            raise StartupError(f"no tessera database at {shown}; run `tessera init` or "
                               "`tessera serve` first")
        return await _initialise(settings, path, admin_token, now)
    return await _verify(settings, found, mode, admin_token, now)


# -- an initialised database ---------------------------------------------------------------

async def _verify(settings: Settings, found: Found, mode: Mode, want_token: bool,
                  now: Callable[[], float]) -> Opened:
    """Every check reads only; the first write (migrations, the check value) comes after."""
    try:
        master = settings.master_key_bytes()
    except StartupError as exc:
        raise StartupError(f"{exc} (the database {settings.database_shown()} needs the master "
                           "key it was initialised with: TESSERA_MASTER_KEY or "
                           "TESSERA_MASTER_KEY_FILE)") from None
    check = deployment.key_check(master)
    engine = _engine(settings)
    try:
        if found.checks and not found.matches(check):
            raise _mismatch(settings, check, found)
        if not found.checks:  # from before check values: the key proves itself
            await _prove(settings, engine, master, check)
        token, source = "", ""
        if want_token:
            try:
                token = settings.admin_token_value()
            except StartupError as exc:
                raise StartupError(f"{exc} (set TESSERA_ADMIN_TOKEN or "
                                   f"TESSERA_ADMIN_TOKEN_FILE; {_where(settings)})") from None
            source = _token_source(settings)
        # proven: now this process may write
        schema = await _guard(settings, migrate_status(engine))
        if not schema.known:
            raise StartupError(f"{schema.describe()} (database {settings.database_shown()})")
        if not schema.at_head:
            if not _migrates(mode, settings):
                raise StartupError(f"{schema.describe()}: run `tessera migrate` first "
                                   f"(database {settings.database_shown()})")
            await _guard(settings, upgrade(engine))
            found = await _guard(settings, deployment.inspect_database(engine))
        if not found.checks and found.can_record:
            found = await _guard(settings, deployment.record_first_check(engine, check, now()))
            if not found.matches(check):  # another process recorded another key first
                raise _mismatch(settings, check, found)
        accepted = _accepted(settings, found)
        root = (await _guard(settings, master_key_rotation.key_root(engine, master))
                if found.can_record else master)
    finally:
        await engine.dispose()
    resolved = settings.replace(
        master_key=encode_master_key(master), admin_token=token,
        master_key_accepted=encode_master_key(accepted) if accepted else "",
        master_key_accepted_file="", key_root="" if root == master else encode_master_key(root))
    return Opened(resolved, check.key_id, settings.master_key_source(), initialised=False,
                  admin_token_source=source)


def _accepted(settings: Settings, found: Found) -> bytes | None:
    """The accepted master key of a rotation (``TESSERA_MASTER_KEY_ACCEPTED[_FILE]``) when the
    database knows it; one it no longer knows (the rotation finished) is ignored, and said."""
    for key in settings.accepted_master_keys():
        check = deployment.key_check(key)
        if found.matches(check):
            return key
        log.warning("the accepted master key (id %s) is not a key of this database any more "
                    "(its rotation finished?); ignored", check.key_id)
    return None


async def _prove(settings: Settings, engine: AsyncEngine, master: bytes,
                 check: KeyCheck) -> None:
    """A database from before check values: the key must open every live signing key."""
    where = _where(settings, check)
    backend = SoftwareBackend(master)
    result = await _guard(settings, deployment.prove_by_signing_keys(engine, backend.opens))
    if result.proof is Proof.WRONG:
        raise StartupError(f"the master key does not open the signing keys in the database: "
                           f"it is not this deployment's key ({where})")
    if result.proof is Proof.MIXED:
        listed = ", ".join(result.failed[:5]) + (", ..." if len(result.failed) > 5 else "")
        raise StartupError(
            f"the database holds signing keys wrapped under another master key ({listed}; "
            f"this key opens {result.opened} others), probably made by a `tessera` command that "
            "created its own key file elsewhere; retire or delete those keys, or use the key "
            f"they were made with, then start again ({where})")
    if result.proof is Proof.UNPROVABLE:
        raise StartupError("the database has tenants but no software-wrapped signing key to "
                           f"prove the master key with ({where})")


def _mismatch(settings: Settings, check: KeyCheck, found: Found) -> StartupError:
    ids = ", ".join(found.known_ids())
    return StartupError(f"the master key from {settings.master_key_source()} (id "
                        f"{check.key_id}) is not the key of the database "
                        f"{settings.database_shown()} (it knows key id {ids})")


# -- an empty database -----------------------------------------------------------------------

async def _initialise(settings: Settings, path: Path | None, want_token: bool,
                      now: Callable[[], float]) -> Opened:
    key_path = None if settings.master_key else settings.master_key_path()
    token_path = None if settings.admin_token else settings.admin_token_path()
    if not settings.master_key and key_path is None:
        raise StartupError("initialising a PostgreSQL database needs TESSERA_MASTER_KEY, or "
                           "TESSERA_MASTER_KEY_FILE naming where to create the key "
                           f"(database {settings.database_shown()})")
    if want_token and not settings.admin_token and token_path is None:
        raise StartupError("initialising a PostgreSQL database needs TESSERA_ADMIN_TOKEN, or "
                           "TESSERA_ADMIN_TOKEN_FILE naming where to create the token "
                           f"(database {settings.database_shown()})")
    for file in (path, key_path, token_path if want_token else None):
        if file is not None and not file.parent.is_dir():
            raise StartupError(f"the directory {file.parent} does not exist")
    # what exists is read first: a bad file refuses before anything is created
    master: bytes | None = None
    if settings.master_key:
        master = parse_master_key(settings.master_key, "TESSERA_MASTER_KEY")
    elif key_path is not None and key_path.exists():
        master = parse_master_key(read_secret_file(key_path, "master key"), str(key_path))
    token = settings.admin_token if want_token else ""
    if want_token and not token and token_path is not None and token_path.exists():
        token = read_secret_file(token_path, "admin token")
    created: list[Path] = []
    recorded = False
    try:
        if master is None:
            assert key_path is not None
            master = parse_master_key(create_secret_file(key_path, "master key"),
                                      str(key_path))
            created.append(key_path)
        if want_token and not token:
            assert token_path is not None
            token = create_secret_file(token_path, "admin token")
            created.append(token_path)
        check = deployment.key_check(master)
        if path is not None:
            _create_private(path, created)
        engine = _engine(settings)
        try:
            await _guard(settings, upgrade(engine))
            found = await _guard(settings, deployment.record_first_check(engine, check, now()))
        finally:
            await engine.dispose()
        if not found.matches(check):  # another process initialised it first, with another key
            raise _mismatch(settings, check, found)
        recorded = True
    finally:
        if not recorded:  # a failed initialisation leaves no secret behind
            for file in created:
                if file != path:
                    file.unlink(missing_ok=True)
    resolved = settings.replace(master_key=encode_master_key(master), admin_token=token)
    return Opened(resolved, check.key_id, settings.master_key_source(), initialised=True,
                  created=tuple(created),
                  admin_token_source=_token_source(settings) if want_token else "")


def _create_private(path: Path, created: list[Path]) -> None:
    """The SQLite file, mode 0600, before SQLite opens it (its -wal and -shm files take the
    database file's mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)  # an empty file someone made for us
        return
    except OSError as exc:
        raise StartupError(f"cannot create the database file {path}: {exc.strerror}") from exc
    os.close(fd)
    created.append(path)


# -- helpers ---------------------------------------------------------------------------------

def _engine(settings: Settings) -> AsyncEngine:
    try:
        return create_engine(settings.database_url, pool_size=1, max_overflow=0)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StartupError(f"cannot use the database {settings.database_shown()}: "
                           f"{_reason(settings, exc)}") from None


async def _guard(settings: Settings, work: Awaitable[T]) -> T:
    """``work`` on the database; a database that cannot be used is a ``StartupError``."""
    try:
        return await work
    except CommandError as exc:  # e.g. a schema revision this tessera does not know
        raise StartupError(f"cannot migrate the database {settings.database_shown()}: "
                           f"{str(exc).splitlines()[0][:200]}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StartupError(f"cannot use the database {settings.database_shown()}: "
                           f"{_reason(settings, exc)}") from None


def _where(settings: Settings, check: KeyCheck | None = None) -> str:
    key = settings.master_key_source() + (f", key id {check.key_id}" if check else "")
    return f"master key from {key}; database {settings.database_shown()}"


def _token_source(settings: Settings) -> str:
    if settings.admin_token:
        return "TESSERA_ADMIN_TOKEN"
    return str(settings.admin_token_path())


def _reason(settings: Settings, exc: BaseException) -> str:
    """The driver's one-line reason, without the database password."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [""])[0][:200]
    try:
        password = make_url(settings.database_url).password
    except ArgumentError:  # an unparsable URL has no password to hide
        password = None
    if password:
        text = text.replace(str(password), "***")
    return f"{type(orig).__name__}: {text}" if text else type(orig).__name__

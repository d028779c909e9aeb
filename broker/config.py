"""Configuration: ``TESSERA_*`` environment variables over an optional TOML file over defaults.

The defaults run a demo on SQLite with no configuration at all. ``TESSERA_CONFIG`` names a TOML
file whose keys are the variable names without the prefix, in lower case
(``database_url = "postgresql+asyncpg://..."``).

The master key and the admin token come from their variables or from files. The files live
next to the SQLite database by default (``tessera.db`` -> ``tessera-master.key`` in the same
directory), never in whatever directory a command happens to run in; PostgreSQL has no "next
to", so there they must be named. Nothing here creates a file: ``broker.deployment`` creates
them once, when a deployment is initialised, and every later process only reads them.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from tenants.db import DEFAULT_DATABASE_URL, is_sqlite

MASTER_KEY_MIN_BYTES = 32
MASTER_KEY_FILE_NAME = "tessera-master.key"
ADMIN_TOKEN_FILE_NAME = "tessera-admin.token"
DEMO_FILE_NAME = "tessera-demo-client.json"
# base64url; standard base64's + and / decode as they always did (``openssl rand -base64 32``)
_BASE64URL = re.compile(r"[A-Za-z0-9_+/-]+={0,2}")


class StartupError(Exception):
    """Why this process will not start or write: one line for the operator (``error: ...``,
    exit code 2), naming where tessera looked, never a secret."""


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    base_url: str = ""  # public prefix of every issuer; default http://HOST:PORT
    master_key: str = ""  # base64url of >= 32 bytes; else read from master_key_file
    master_key_file: str = ""  # default: tessera-master.key next to the SQLite file
    admin_token: str = ""  # super-admin bearer for /admin/v1; else read from the file
    admin_token_file: str = ""  # default: tessera-admin.token next to the SQLite file
    demo: bool = True  # create the demo tenant and client on first start
    demo_file: str = ""  # default: tessera-demo-client.json next to the SQLite file
    key_schedule_interval: float = 60.0  # how often the rotation schedule is checked
    max_body_bytes: int = 65_536
    allow_http_loopback: bool = False  # dev/tests: partners' http://127.0.0.1 issuers and JWKS
    log_level: str = "info"
    auto_migrate: bool = True  # serve and broker.asgi migrate a schema that is behind
    # RFC 9440: peers (IPs/CIDRs) whose Client-Cert header is believed; comma-separated in env
    trusted_proxies: tuple[str, ...] = ()
    # where new signing keys are made: "software" | "pkcs11" (existing keys keep their backend)
    key_backend: str = "software"
    pkcs11_module: str = ""  # path of the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
    pkcs11_token_label: str = ""  # one token per deployment
    pkcs11_pin: str = field(default="", repr=False)  # user PIN; or pkcs11_pin_file
    pkcs11_pin_file: str = ""
    pkcs11_sessions: int = 4  # PKCS#11 session pool size

    @classmethod
    def load(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        path = env.get("TESSERA_CONFIG")
        if path:
            try:
                with open(path, "rb") as fh:
                    values.update(tomllib.load(fh))
            except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise StartupError(f"cannot read TESSERA_CONFIG {path}: {reason}") from None
        for f in fields(cls):
            raw = env.get(f"TESSERA_{f.name.upper()}")
            if raw is not None:
                values[f.name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls()._with(values)

    def _with(self, values: dict[str, Any]) -> Settings:
        typed: dict[str, Any] = {}
        for f in fields(self):
            if f.name not in values:
                continue
            value = values[f.name]
            default = getattr(self, f.name)
            if isinstance(default, str) and value == "":
                continue  # an empty text setting (TESSERA_DATABASE_URL=) means its default
            try:
                if isinstance(default, bool) and isinstance(value, str):
                    value = value.strip().lower() in {"1", "true", "yes", "on"}
                elif isinstance(default, float):
                    value = float(value)
                elif isinstance(default, int) and not isinstance(default, bool):
                    value = int(value)
                elif isinstance(default, tuple):
                    items = value.split(",") if isinstance(value, str) else value
                    value = tuple(str(v).strip() for v in items if str(v).strip())
                elif isinstance(default, str) and not isinstance(value, str):
                    raise TypeError
            except (TypeError, ValueError):
                raise StartupError(f"TESSERA_{f.name.upper()} must be a "
                                   f"{type(default).__name__}") from None
            typed[f.name] = value
        return replace(self, **typed)

    def with_base_url(self, host: str, port: int, scheme: str = "http") -> Settings:
        if self.base_url:
            return self
        shown = f"[{host}]" if ":" in host else host
        return replace(self, base_url=f"{scheme}://{shown}:{port}")

    # -- where things are ------------------------------------------------------------------
    def sqlite_path(self) -> Path | None:
        """The SQLite database file (absolute), or None for PostgreSQL and in-memory SQLite."""
        if not is_sqlite(self.database_url):
            return None
        try:
            database = make_url(self.database_url).database
        except ArgumentError as exc:
            raise StartupError("TESSERA_DATABASE_URL is not a database URL") from exc
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return Path(database).expanduser().absolute()

    def database_shown(self) -> str:
        """The database for messages: the SQLite file, or the URL with its password hidden."""
        path = self.sqlite_path()
        if path is not None:
            return str(path)
        try:
            return make_url(self.database_url).render_as_string(hide_password=True)
        except ArgumentError:
            return "(an unparsable TESSERA_DATABASE_URL)"

    def _beside_database(self, explicit: str, name: str) -> Path | None:
        if explicit:
            return Path(explicit).expanduser().absolute()
        path = self.sqlite_path()
        return path.parent / name if path is not None else None

    def master_key_path(self) -> Path | None:
        """``TESSERA_MASTER_KEY_FILE``, else next to the SQLite file (None on PostgreSQL)."""
        return self._beside_database(self.master_key_file, MASTER_KEY_FILE_NAME)

    def admin_token_path(self) -> Path | None:
        return self._beside_database(self.admin_token_file, ADMIN_TOKEN_FILE_NAME)

    def demo_path(self) -> Path | None:
        return self._beside_database(self.demo_file, DEMO_FILE_NAME)

    def master_key_source(self) -> str:
        """Where the master key comes from, for messages."""
        if self.master_key:
            return "TESSERA_MASTER_KEY"
        path = self.master_key_path()
        return str(path) if path is not None else "(no TESSERA_MASTER_KEY_FILE)"

    # -- the secrets (read, never created here) ---------------------------------------------
    def master_key_bytes(self) -> bytes:
        """The master key; ``StartupError`` when it is missing, malformed or short."""
        if self.master_key:
            return parse_master_key(self.master_key, "TESSERA_MASTER_KEY")
        path = self.master_key_path()
        if path is None:
            raise StartupError(
                "no master key: set TESSERA_MASTER_KEY or TESSERA_MASTER_KEY_FILE (with "
                f"PostgreSQL there is no default file); database {self.database_shown()}")
        return parse_master_key(read_secret_file(path, "master key"), str(path))

    def admin_token_value(self) -> str:
        """The admin API bearer; ``StartupError`` when neither the variable nor the file
        gives one."""
        if self.admin_token:
            return self.admin_token
        path = self.admin_token_path()
        if path is None:
            raise StartupError(
                "no admin token: set TESSERA_ADMIN_TOKEN or TESSERA_ADMIN_TOKEN_FILE (with "
                f"PostgreSQL there is no default file); database {self.database_shown()}")
        return read_secret_file(path, "admin token")


def parse_master_key(text: str, source: str) -> bytes:
    """base64url (padding optional; standard base64 too) of at least 32 bytes; errors name
    ``source``, never the text."""
    value = text.strip()
    if not _BASE64URL.fullmatch(value):
        raise StartupError(f"the master key from {source} is not base64url text")
    try:
        key = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as exc:
        raise StartupError(f"the master key from {source} is not base64url text") from exc
    if len(key) < MASTER_KEY_MIN_BYTES:
        raise StartupError(f"the master key from {source} is {len(key)} bytes; it must be at "
                           f"least {MASTER_KEY_MIN_BYTES}")
    return key


def encode_master_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode().rstrip("=")


def read_secret_file(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except FileNotFoundError as exc:
        raise StartupError(f"no {what}: {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise StartupError(f"cannot read the {what} file {path}: "
                           f"{getattr(exc, 'strerror', None) or type(exc).__name__}") from exc
    if not value:
        raise StartupError(f"the {what} file {path} is empty")
    return value


def create_secret_file(path: Path, what: str, value: str | None = None) -> str:
    """Write a new secret (fresh randomness unless ``value``) to ``path``, mode 0600; an
    existing file is never overwritten (``StartupError``)."""
    value = value or secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise StartupError(f"the {what} file {path} already exists") from exc
    except OSError as exc:
        raise StartupError(f"cannot create the {what} file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value

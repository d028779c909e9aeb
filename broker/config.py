"""Configuration: one typed settings model (pydantic) read from ``TESSERA_*`` environment
variables over an optional TOML file over defaults.

The defaults run a demo on SQLite with no configuration at all. ``TESSERA_CONFIG`` names a TOML
file whose keys are the field names (the variable names without the prefix, in lower case:
``database_url = "postgresql+asyncpg://..."``). Every field is honoured from both sources; an
unknown key in the file, an unknown ``TESSERA_*`` variable (a typo would otherwise be ignored
silently) and a value of the wrong type or range are refused with one line naming the setting
and where it came from — never the value, which may be a secret. ``python -m broker.config``
prints the reference table the README carries.

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
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
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


# variables of the test suite and the benchmarks, and the remote CLI's: not settings
NOT_SETTINGS = ("TESSERA_CONFIG", "TESSERA_URL")
NOT_SETTINGS_PREFIXES = ("TESSERA_TEST_", "TESSERA_BENCH_")
SECRET_FIELDS = frozenset({"master_key", "admin_token", "pkcs11_pin", "metrics_token",
                           "master_key_accepted", "key_root"})


def _split(value: Any) -> Any:
    """A comma-separated string (as an environment variable gives it) -> a list."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseModel):
    """Every setting of a tessera process (``TESSERA_<NAME>`` or ``<name>`` in the TOML file)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    database_url: str = Field(
        DEFAULT_DATABASE_URL, description="`sqlite+aiosqlite:///PATH` (default, one process) or "
        "`postgresql+asyncpg://USER:PW@HOST/DB` (replicas)")
    base_url: str = Field(
        "", description="public prefix of every issuer (`https://idp.example.com`); `serve` "
        "defaults to `http://HOST:PORT`; required by `broker.asgi`")
    master_key: str = Field(
        "", repr=False, description="base64url of >= 32 bytes: wraps signing keys and sealed "
        "secrets, peppers secret hashes; else read from `master_key_file`")
    master_key_file: str = Field(
        "", description="default `tessera-master.key` beside the SQLite file; required with "
        "PostgreSQL unless `master_key` is set")
    master_key_accepted: str = Field(
        "", repr=False, description="during a master-key rotation: the other master key "
        "(base64url), whose wrapped values this process opens too (it writes with "
        "`master_key`); else read from `master_key_accepted_file`")
    master_key_accepted_file: str = Field(
        "", description="file holding `master_key_accepted` (see *Rotating the master key*)")
    key_root: str = Field(
        "", repr=False, description="set by `serve` for its workers (the root of derived "
        "secrets the deployment proved); not to be set by hand")
    admin_token: str = Field("", repr=False, description="super-admin bearer for `/admin/v1`")
    admin_token_file: str = Field(
        "", description="default `tessera-admin.token` beside the SQLite file")
    demo: bool = Field(True, description="create the demo tenant and client on first start")
    demo_file: str = Field(
        "", description="default `tessera-demo-client.json` beside the SQLite file")
    auto_migrate: bool = Field(
        True, description="`serve` and `broker.asgi` migrate a schema that is behind (else "
        "they refuse: run `tessera migrate`)")
    key_schedule_interval: float = Field(
        60.0, ge=1, le=3600, description="seconds between key rotation schedule checks")
    max_body_bytes: int = Field(65_536, ge=1024, le=16 * 1024 * 1024,
                                description="largest request body accepted")
    allow_http_loopback: bool = Field(
        False, description="accept `http://127.0.0.1` partner issuers, JWKS and upstream IdPs "
        "(development and tests only)")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="`debug`, `info`, `warning` or `error`")
    log_format: Literal["json", "text"] = Field(
        "json", description="`json` (one object per line) or `text` (for a terminal)")
    access_log: bool = Field(True, description="one log line per request")
    metrics_token: str = Field(
        "", repr=False, description="bearer for `/metrics`; without one, `/metrics` answers "
        "loopback clients only")
    db_connect_timeout: float = Field(
        5.0, gt=0, le=120, description="seconds to open a database connection before the "
        "request is answered 503")
    db_statement_timeout: float = Field(
        10.0, gt=0, le=600, description="seconds a database statement may take before the "
        "request is answered 503")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="IPs/CIDRs of TLS-terminating proxies whose `Client-Cert` header "
        "(RFC 9440) is believed; comma-separated")
    max_retiring_keys: int = Field(
        4, ge=1, le=64, description="most `retiring` keys a tenant publishes; a rotation past "
        "it retires the oldest at once (its unexpired tokens stop verifying)")
    key_backend: Literal["software", "pkcs11"] = Field(
        "software", description="where new signing keys are made (existing keys keep theirs)")
    pkcs11_module: str = Field("", description="the token's PKCS#11 library, e.g. "
                               "`/usr/lib/softhsm/libsofthsm2.so`")
    pkcs11_token_label: str = Field("", description="the token (one per deployment)")
    pkcs11_pin: str = Field("", repr=False, description="user PIN; better `pkcs11_pin_file`")
    pkcs11_pin_file: str = Field("", description="file holding the user PIN")
    pkcs11_sessions: int = Field(4, ge=1, le=256, description="PKCS#11 session pool size")

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite:", "postgresql+asyncpg:")):
            raise ValueError("use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PW@HOST/DB")
        try:
            make_url(value)
        except ArgumentError:
            raise ValueError("not a database URL") from None
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment or parts.username or parts.password:
            raise ValueError("an http(s) URL with a host and no query, fragment or user info")
        return value.rstrip("/")

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The environment over the TOML file named by ``TESSERA_CONFIG`` over the defaults;
        ``overrides`` (not None) over all. ``StartupError`` names what is wrong and where."""
        env = dict(os.environ if environ is None else environ)
        sources: dict[str, str] = {}
        values: dict[str, Any] = {}
        path = env.get("TESSERA_CONFIG")
        if path:
            for key, value in _read_toml(path).items():
                values[key] = value
                sources[key] = f"`{key}` in {path}"
        names = {f"TESSERA_{name.upper()}": name for name in cls.model_fields}
        unknown = sorted(k for k in env if k.startswith("TESSERA_") and k not in names
                         and k not in NOT_SETTINGS and not k.startswith(NOT_SETTINGS_PREFIXES))
        if unknown:
            raise StartupError(f"unknown setting {unknown[0]} (in the environment); the "
                               "settings are listed by `python -m broker.config`")
        for variable, name in names.items():
            raw = env.get(variable)
            if raw is not None and raw != "":  # an empty variable means its default
                values[name] = raw
                sources[name] = f"{variable} (environment)"
        for name, value in overrides.items():
            if value is not None:
                values[name] = value
                sources[name] = name
        return cls.validated(values, sources)

    @classmethod
    def validated(cls, values: Mapping[str, Any], sources: Mapping[str, str] | None = None
                  ) -> Settings:
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise StartupError(_describe(exc, sources or {})) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, validated like everything else."""
        return self.validated({**self.model_dump(), **changes})

    def with_base_url(self, host: str, port: int, scheme: str = "http") -> Settings:
        if self.base_url:
            return self
        shown = f"[{host}]" if ":" in host else host
        return self.replace(base_url=f"{scheme}://{shown}:{port}")

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

    def accepted_master_keys(self) -> tuple[bytes, ...]:
        """The other master key of a rotation under way, if this process was given one."""
        if self.master_key_accepted:
            return (parse_master_key(self.master_key_accepted, "TESSERA_MASTER_KEY_ACCEPTED"),)
        if self.master_key_accepted_file:
            path = Path(self.master_key_accepted_file).expanduser()
            return (parse_master_key(read_secret_file(path, "accepted master key"), str(path)),)
        return ()

    def key_root_bytes(self) -> bytes:
        """The root of derived secrets (secret hash pepper, SAML NameIDs, DPoP nonces): the
        one the deployment proved (``broker.deployment``), else the master key itself."""
        if self.key_root:
            return parse_master_key(self.key_root, "TESSERA_KEY_ROOT")
        return self.master_key_bytes()

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


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise StartupError(f"cannot read TESSERA_CONFIG {path}: {reason}") from None


def _describe(exc: ValidationError, sources: Mapping[str, str]) -> str:
    """The first problem, naming the setting and where it came from; never the value."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    where = sources.get(name, f"`{name}`")
    if error["type"] == "extra_forbidden":
        return (f"unknown setting {where}; the settings are listed by "
                "`python -m broker.config`")
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"setting {where}: {message}"


def reference() -> str:
    """The settings as a Markdown table (the README's configuration reference)."""
    rows = ["| variable | TOML key | type | default | |", "|---|---|---|---|---|"]
    for name, info in Settings.model_fields.items():
        annotation = info.annotation
        kind = getattr(annotation, "__name__", None) or str(annotation)
        if str(annotation).startswith("typing.Literal"):
            kind = " \\| ".join(f"`{v}`" for v in annotation.__args__)  # type: ignore[union-attr]
        elif kind == "tuple":
            kind = "list"
        default = info.default
        text = str(default).lower() if isinstance(default, bool) else str(default)
        shown = "" if default in ("", ()) or name in SECRET_FIELDS else f"`{text}`"
        rows.append(f"| `TESSERA_{name.upper()}` | `{name}` | {kind} | {shown} | "
                    f"{info.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(reference() + "\n")

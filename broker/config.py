"""Configuration: ``TESSERA_*`` environment variables over an optional TOML file over defaults.

The defaults run a demo on SQLite with no configuration at all. ``TESSERA_CONFIG`` names a TOML
file whose keys are the variable names without the prefix, in lower case
(``database_url = "postgresql+asyncpg://..."``).
"""

from __future__ import annotations

import base64
import os
import secrets
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from tenants.db import DEFAULT_DATABASE_URL


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    base_url: str = ""  # public prefix of every issuer; default http://HOST:PORT
    master_key: str = ""  # base64url of >= 32 bytes; else read/created at master_key_file
    master_key_file: str = "./tessera-master.key"
    admin_token: str = ""  # super-admin bearer for /admin/v1; else read/created at the file
    admin_token_file: str = "./tessera-admin.token"
    demo: bool = True  # create the demo tenant and client on first start
    demo_file: str = "./tessera-demo-client.json"
    key_schedule_interval: float = 60.0  # how often the rotation schedule is checked
    max_body_bytes: int = 65_536
    allow_http_loopback: bool = False  # dev/tests: partners' http://127.0.0.1 issuers and JWKS
    log_level: str = "info"
    # RFC 9440: peers (IPs/CIDRs) whose Client-Cert header is believed; comma-separated in env
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def load(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        path = env.get("TESSERA_CONFIG")
        if path:
            with open(path, "rb") as fh:
                values.update(tomllib.load(fh))
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
            if isinstance(default, bool) and isinstance(value, str):
                value = value.strip().lower() in {"1", "true", "yes", "on"}
            elif isinstance(default, float):
                value = float(value)
            elif isinstance(default, int) and not isinstance(default, bool):
                value = int(value)
            elif isinstance(default, tuple):
                items = value.split(",") if isinstance(value, str) else value
                value = tuple(str(v).strip() for v in items if str(v).strip())
            typed[f.name] = value
        return replace(self, **typed)

    def with_base_url(self, host: str, port: int, scheme: str = "http") -> Settings:
        if self.base_url:
            return self
        shown = f"[{host}]" if ":" in host else host
        return replace(self, base_url=f"{scheme}://{shown}:{port}")

    def master_key_bytes(self) -> bytes:
        if self.master_key:
            return base64.urlsafe_b64decode(self.master_key + "=" * (-len(self.master_key) % 4))
        return base64.urlsafe_b64decode(_secret_file(self.master_key_file, 32) + "=")

    def admin_token_value(self) -> str:
        return self.admin_token or _secret_file(self.admin_token_file, 32)


def _secret_file(path: str, size: int) -> str:
    """Read a secret from ``path``, creating it (mode 0600) with fresh randomness if absent."""
    file = Path(path)
    if not file.exists():
        value = secrets.token_urlsafe(size)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value
    return file.read_text().strip()

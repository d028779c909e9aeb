"""The typed settings model: every field honoured from the environment and from the TOML file,
unknown keys and variables refused, bad values named with their source (never echoed), and the
README's configuration reference generated from the model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from broker.config import Settings, StartupError, reference
from tests.conftest import REPO_ROOT

# for every field: (environment text, TOML value, the value the model then holds)
SAMPLES: dict[str, tuple[str, Any, Any]] = {
    "database_url": ("postgresql+asyncpg://u:p@db/t", "postgresql+asyncpg://u:p@db/t",
                     "postgresql+asyncpg://u:p@db/t"),
    "base_url": ("https://idp.example.com/", "https://idp.example.com/",
                 "https://idp.example.com"),
    "master_key": ("k" * 43, "k" * 43, "k" * 43),
    "master_key_file": ("/srv/m.key", "/srv/m.key", "/srv/m.key"),
    "master_key_accepted": ("n" * 43, "n" * 43, "n" * 43),
    "master_key_accepted_file": ("/srv/old.key", "/srv/old.key", "/srv/old.key"),
    "key_root": ("r" * 43, "r" * 43, "r" * 43),
    "admin_token": ("t" * 30, "t" * 30, "t" * 30),
    "admin_token_file": ("/srv/a.token", "/srv/a.token", "/srv/a.token"),
    "demo": ("false", False, False),
    "demo_file": ("/srv/demo.json", "/srv/demo.json", "/srv/demo.json"),
    "auto_migrate": ("no", False, False),
    "key_schedule_interval": ("30", 30, 30.0),
    "max_body_bytes": ("2048", 2048, 2048),
    "allow_http_loopback": ("1", True, True),
    "log_level": ("debug", "debug", "debug"),
    "log_format": ("text", "text", "text"),
    "access_log": ("off", False, False),
    "metrics_token": ("m" * 20, "m" * 20, "m" * 20),
    "db_connect_timeout": ("2.5", 2.5, 2.5),
    "db_statement_timeout": ("3", 3, 3.0),
    "trusted_proxies": ("10.0.0.1, 172.16.0.0/12", ["10.0.0.1", "172.16.0.0/12"],
                        ("10.0.0.1", "172.16.0.0/12")),
    "max_retiring_keys": ("2", 2, 2),
    "key_backend": ("pkcs11", "pkcs11", "pkcs11"),
    "pkcs11_module": ("/usr/lib/x.so", "/usr/lib/x.so", "/usr/lib/x.so"),
    "pkcs11_token_label": ("tok", "tok", "tok"),
    "pkcs11_pin": ("1234", "1234", "1234"),
    "pkcs11_pin_file": ("/srv/pin", "/srv/pin", "/srv/pin"),
    "pkcs11_sessions": ("8", 8, 8),
}


def toml_of(values: dict[str, Any]) -> str:
    def literal(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v + '"'
        if isinstance(v, list):
            return "[" + ", ".join(literal(x) for x in v) + "]"
        return str(v)
    return "\n".join(f"{k} = {literal(v)}" for k, v in values.items()) + "\n"


def test_samples_cover_every_field() -> None:
    assert set(SAMPLES) == set(Settings.model_fields)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_field_is_honoured_from_the_environment(name: str) -> None:
    text, _, expected = SAMPLES[name]
    loaded = Settings.load({f"TESSERA_{name.upper()}": text})
    assert getattr(loaded, name) == expected
    assert getattr(loaded, name) != Settings.model_fields[name].default


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_field_is_honoured_from_the_toml_file(name: str, tmp_path: Path) -> None:
    _, value, expected = SAMPLES[name]
    config = tmp_path / "tessera.toml"
    config.write_text(toml_of({name: value}))
    assert getattr(Settings.load({"TESSERA_CONFIG": str(config)}), name) == expected


def test_environment_over_file_over_defaults(tmp_path: Path) -> None:
    config = tmp_path / "tessera.toml"
    config.write_text(toml_of({"log_level": "warning", "max_body_bytes": 4096}))
    loaded = Settings.load({"TESSERA_CONFIG": str(config), "TESSERA_LOG_LEVEL": "error"})
    assert loaded.log_level == "error" and loaded.max_body_bytes == 4096
    assert loaded.demo is True  # the default


def test_unknown_keys_and_variables_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "tessera.toml"
    config.write_text(toml_of({"key_algo": "ES256"}))
    with pytest.raises(StartupError, match=r"unknown setting `key_algo` in .*tessera\.toml"):
        Settings.load({"TESSERA_CONFIG": str(config)})
    with pytest.raises(StartupError, match=r"unknown setting TESSERA_DATABSE_URL"):
        Settings.load({"TESSERA_DATABSE_URL": "sqlite+aiosqlite:///x.db"})
    # the suite's and the benchmarks' own variables are not settings
    Settings.load({"TESSERA_TEST_POSTGRES_URL": "x", "TESSERA_BENCH_POSTGRES_URL": "y"})


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("TESSERA_MAX_BODY_BYTES", "abc", "valid integer"),
    ("TESSERA_MAX_BODY_BYTES", "-5", "greater than or equal to 1024"),
    ("TESSERA_DB_STATEMENT_TIMEOUT", "0", "greater than 0"),
    ("TESSERA_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
    ("TESSERA_KEY_BACKEND", "vault", "'software' or 'pkcs11'"),
    ("TESSERA_DATABASE_URL", "mysql://x", "use sqlite+aiosqlite"),
    ("TESSERA_BASE_URL", "file:///etc/passwd", "http(s) URL"),
    ("TESSERA_BASE_URL", "https://idp.example.com/?x=1", "no query"),
    ("TESSERA_DEMO", "maybe", "valid boolean"),
    ("TESSERA_PKCS11_SESSIONS", "0", "greater than or equal to 1"),
])
def test_bad_values_name_the_setting_and_its_source(variable: str, value: str,
                                                    message: str) -> None:
    with pytest.raises(StartupError) as error:
        Settings.load({variable: value})
    text = str(error.value)
    assert text.startswith(f"setting {variable} (environment): "), text
    assert message in text and "\n" not in text


def test_a_bad_secret_is_never_echoed(tmp_path: Path) -> None:
    config = tmp_path / "tessera.toml"
    config.write_text('admin_token = 12345678901234567890\n')  # a number, not text
    with pytest.raises(StartupError) as error:
        Settings.load({"TESSERA_CONFIG": str(config)})
    assert "`admin_token` in" in str(error.value)
    assert "12345678901234567890" not in str(error.value)
    assert "1234" not in repr(Settings(pkcs11_pin="1234", admin_token="secret-token-x"))
    assert "secret-token-x" not in repr(Settings(admin_token="secret-token-x"))


def test_replace_validates() -> None:
    base = Settings()
    assert base.replace(log_level="debug").log_level == "debug"
    with pytest.raises(StartupError, match="log_level"):
        base.replace(log_level="chatty")


def test_readme_carries_the_generated_reference() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    table = reference()
    assert table in readme, "README's configuration table is stale: python -m broker.config"
    for name in Settings.model_fields:
        assert re.search(rf"`TESSERA_{name.upper()}`", readme)

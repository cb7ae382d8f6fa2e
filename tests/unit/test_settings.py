"""Settings: plain database URLs get their async driver; production refuses unsafe defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from flowql.settings import (
    Environment,
    Settings,
    SettingsError,
    async_database_url,
    sync_database_url,
)

KEY = Fernet.generate_key().decode()
SECRET = "s" * 48


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests decide every FLOWQL_* variable themselves."""
    for name in list(os.environ):
        if name.startswith("FLOWQL_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("plain", "driven"),
    [
        ("sqlite:///data/flowql.db", "sqlite+aiosqlite:///data/flowql.db"),
        ("sqlite:////var/lib/flowql/flowql.db", "sqlite+aiosqlite:////var/lib/flowql/flowql.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite:///:memory:"),
        ("postgresql://u:p@db:5432/flowql", "postgresql+psycopg://u:p@db:5432/flowql"),
        ("postgres://u:p@db/flowql", "postgresql+psycopg://u:p@db/flowql"),
        ("postgresql+psycopg2://u@db/flowql", "postgresql+psycopg://u@db/flowql"),
        (
            "postgresql://u@db/flowql?sslmode=require",
            "postgresql+psycopg://u@db/flowql?sslmode=require",
        ),
        # already explicit: left alone
        ("postgresql+psycopg://u@db/flowql", "postgresql+psycopg://u@db/flowql"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_plain_urls_get_the_async_driver(plain: str, driven: str) -> None:
    assert async_database_url(plain) == driven
    assert Settings(database_url=plain).resolved_database_url() == driven


@pytest.mark.parametrize(
    ("driven", "sync"),
    [
        ("sqlite+aiosqlite:///data/flowql.db", "sqlite:///data/flowql.db"),
        ("postgresql+psycopg://u@db/flowql", "postgresql+psycopg://u@db/flowql"),
    ],
)
def test_migrations_get_a_synchronous_url(driven: str, sync: str) -> None:
    assert sync_database_url(driven) == sync


def test_the_default_database_is_a_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    expected = (tmp_path / "data" / "flowql.db").resolve()
    assert settings.resolved_database_url() == f"sqlite+aiosqlite:///{expected}"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOWQL_DATABASE_URL", "postgresql://u@db/flowql")
    monkeypatch.setenv("FLOWQL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLOWQL_ENV", "production")
    settings = Settings()
    assert settings.resolved_database_url() == "postgresql+psycopg://u@db/flowql"
    assert settings.data_dir == tmp_path
    assert settings.env is Environment.PRODUCTION


def test_development_needs_no_keys_and_has_demo_accounts() -> None:
    settings = Settings()
    assert settings.env is Environment.DEVELOPMENT
    assert settings.demo_accounts is True
    settings.check_startable()


def test_production_defaults_demo_accounts_off() -> None:
    assert Settings(env=Environment.PRODUCTION).demo_accounts is False


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({}, "FLOWQL_SECRET_KEY"),
        ({"encryption_keys": KEY}, "FLOWQL_SECRET_KEY"),
        ({"secret_key": SECRET}, "FLOWQL_ENCRYPTION_KEYS"),
    ],
)
def test_production_refuses_missing_keys_and_generates_none(
    fields: dict[str, object], named: str, tmp_path: Path
) -> None:
    settings = Settings(env=Environment.PRODUCTION, data_dir=tmp_path / "data", **fields)
    with pytest.raises(SettingsError, match=named):
        settings.check_startable()
    with pytest.raises(SettingsError, match=named):
        settings.with_generated_keys()
    assert not (tmp_path / "data").exists(), "nothing is generated for production"


def test_production_refuses_demo_accounts(tmp_path: Path) -> None:
    settings = Settings(
        env=Environment.PRODUCTION, secret_key=SECRET, encryption_keys=KEY, demo_accounts=True
    )
    with pytest.raises(SettingsError, match="FLOWQL_DEMO_ACCOUNTS"):
        settings.check_startable()


def test_production_with_explicit_keys_and_no_demo_starts(tmp_path: Path) -> None:
    settings = Settings(
        env=Environment.PRODUCTION, secret_key=SECRET, encryption_keys=KEY, data_dir=tmp_path
    )
    settings.check_startable()
    assert settings.with_generated_keys() is settings


def test_development_generates_keys_once_and_keeps_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = Settings(data_dir=data_dir).with_generated_keys()
    assert first.secret_key and len(first.secret_key) >= 32
    assert first.encryption_keys
    Fernet(first.encryption_keys.encode())
    for name in ("secret.key", "encryption.key"):
        assert (data_dir / name).stat().st_mode & 0o077 == 0
    second = Settings(data_dir=data_dir).with_generated_keys()
    assert (second.secret_key, second.encryption_keys) == (first.secret_key, first.encryption_keys)


def test_explicit_keys_are_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", secret_key=SECRET, encryption_keys=KEY)
    assert settings.with_generated_keys() is settings
    assert not (tmp_path / "data").exists()

"""Settings from FLOWQL_* environment variables (pydantic-settings)."""

from __future__ import annotations

import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowql.forwarded import IPNetwork, parse_networks


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Dispatcher(StrEnum):
    INLINE = "inline"
    PROCRASTINATE = "procrastinate"


class Bus(StrEnum):
    MEMORY = "memory"
    POSTGRES = "postgres"


class Exposure(StrEnum):
    """Who may use a developer feature (GraphiQL, introspection): everyone, nobody, or users
    who own or administer a workspace."""

    ON = "on"
    OFF = "off"
    ADMINS = "admins"


class SettingsError(ValueError):
    """The settings cannot start a server (e.g. production without a secret key)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWQL_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path("data")
    database_url: str | None = None
    secret_key: str | None = None
    # Fernet keys, comma separated; the first encrypts, all decrypt (rotation).
    encryption_keys: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # The address callers reach this server at (e.g. https://flows.example.com behind a proxy):
    # trigger and public form URLs are built on it. Unset: http://host:port.
    public_url: str | None = None
    dispatcher: Dispatcher = Dispatcher.INLINE
    bus: Bus = Bus.MEMORY
    redis_url: str | None = None
    demo_accounts: bool | None = None
    allow_private_networks: bool = False
    # Reverse proxies whose X-Forwarded-For / Forwarded / X-Real-IP headers are believed:
    # comma-separated addresses or CIDR networks. Empty (the default): the peer is the client.
    trusted_proxies: str = ""
    jwt_issuer: str = "flowql"
    jwt_audience: str = "flowql-api"
    access_token_ttl: int = Field(default=900, ge=10)
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=60)
    execution_token_ttl: int = Field(default=900, ge=10)
    max_concurrent_processes: int = Field(default=32, ge=1)
    # Engine timing: base of the exponential retry backoff, how often the scheduler looks for
    # due work (wake-ups, schedules, deliveries), outgoing webhook attempts before DEAD.
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    scheduler_interval: float = Field(default=0.5, gt=0)
    webhook_max_attempts: int = Field(default=8, ge=1)
    webhook_backoff_seconds: float = Field(default=2.0, ge=0)
    message_expiry_interval: float = Field(default=60.0, gt=0)
    rate_limits_enabled: bool = True
    # Subscriptions: seconds a websocket may take to send connection_init; graphql-ws "ka"
    # keep-alive interval; how often an open websocket's credential is checked again (revoked,
    # disabled or narrowed: closed); events one subscription may have undelivered before it is
    # dropped as too slow (close code 4008); where GraphiQL's files are served from (unset:
    # the copy that ships with flowql; set: a folder that must hold them all, checked at start).
    ws_connection_init_timeout: float = Field(default=10.0, gt=0)
    ws_keep_alive_interval: float = Field(default=15.0, gt=0)
    ws_revalidate_interval: float = Field(default=60.0, gt=0)
    subscription_queue_size: int = Field(default=256, ge=1)
    # Whether `flowql serve` accepts permessage-deflate on WebSockets. Off: a feed's frames are
    # small JSON that each connection would compress with its own zlib context (CPU per
    # subscriber and per frame); browsers and GraphQL clients work without it.
    ws_per_message_deflate: bool = False
    graphiql_assets_dir: Path | None = None
    # procrastinate workers (FLOWQL_DISPATCHER=procrastinate): how often a worker proves it is
    # alive, and after how long without that proof its jobs are handed to another worker.
    worker_heartbeat_interval: float = Field(default=10.0, gt=0)
    worker_stalled_timeout: float = Field(default=30.0, gt=0)
    # Outgoing mail of the email and email_digest agents when an agent's options name no SMTP
    # server; smtp_security: "auto" (STARTTLS when offered), "starttls", "tls" or "none".
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: str = Field(default="auto", pattern="^(auto|starttls|tls|none)$")
    email_from_address: str = "flowql@localhost"
    # The folder whose files the read_file agent's file pointers may name (unset:
    # data_dir / "files"); nothing outside it is read.
    agent_files_dir: Path | None = None
    sql_echo: bool = False
    # What one request may cost (docs/security.md): request bodies (413 beyond) on GraphQL and
    # the REST mounts, and on /hooks; nesting of any JSON a caller sends; GraphQL documents
    # (flowql.schema.limits): size, tokens, depth, aliases, repeats of one field in a selection,
    # root fields, and cost (fields weighted by the list sizes first/last ask for).
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    hooks_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    json_max_depth: int = Field(default=64, ge=2, le=500)
    graphql_max_document_bytes: int = Field(default=64 * 1024, ge=1024)
    graphql_max_tokens: int = Field(default=5000, ge=100)
    graphql_max_depth: int = Field(default=12, ge=1)
    graphql_max_aliases: int = Field(default=50, ge=0)
    graphql_max_duplicate_fields: int = Field(default=20, ge=1)
    graphql_max_root_fields: int = Field(default=20, ge=1)
    graphql_max_cost: int = Field(default=50_000, ge=10)
    # Unset: on in development, off in production.
    graphql_introspection: Exposure | None = None
    graphiql: Exposure | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        parse_networks(value)  # ValueError names the bad entry
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.strip().rstrip("/")

    @property
    def base_url(self) -> str:
        """Where callers reach this server: FLOWQL_PUBLIC_URL, else http://host:port."""
        if self.public_url:
            return self.public_url
        # A server listening on every interface is reached on loopback from this machine.
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def trusted_proxy_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.trusted_proxies)

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if self.demo_accounts is None:
            self.demo_accounts = self.env is Environment.DEVELOPMENT
        default = Exposure.OFF if self.env is Environment.PRODUCTION else Exposure.ON
        if self.graphql_introspection is None:
            self.graphql_introspection = default
        if self.graphiql is None:
            self.graphiql = default
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL: plain sqlite:/// and postgresql:// get their async driver."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'flowql.db').resolve()}"
        return async_database_url(url)

    @property
    def is_postgres(self) -> bool:
        return self.resolved_database_url().startswith("postgresql")

    def check_startable(self) -> None:
        if not self.is_postgres:
            for name, value in (("DISPATCHER", self.dispatcher), ("BUS", self.bus)):
                if value in (Dispatcher.PROCRASTINATE, Bus.POSTGRES):
                    raise SettingsError(
                        f"FLOWQL_{name}={value.value} needs PostgreSQL: set FLOWQL_DATABASE_URL "
                        "to a postgresql:// URL"
                    )
        if self.is_production:
            if not self.secret_key:
                raise SettingsError("FLOWQL_SECRET_KEY must be set in production")
            if not self.encryption_keys:
                raise SettingsError("FLOWQL_ENCRYPTION_KEYS must be set in production")
            if self.demo_accounts:
                raise SettingsError("FLOWQL_DEMO_ACCOUNTS must be off in production")

    def with_generated_keys(self) -> Settings:
        """Development: keys kept in the data directory so restarts keep sessions and secrets."""
        if self.secret_key and self.encryption_keys:
            return self
        if self.is_production:
            self.check_startable()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        updates: dict[str, Any] = {}
        if not self.secret_key:
            updates["secret_key"] = _read_or_create(
                self.data_dir / "secret.key", lambda: secrets.token_urlsafe(48)
            )
        if not self.encryption_keys:
            updates["encryption_keys"] = _read_or_create(
                self.data_dir / "encryption.key", lambda: Fernet.generate_key().decode()
            )
        return self.model_copy(update=updates)


def async_database_url(url: str) -> str:
    if url.startswith("sqlite:"):
        return "sqlite+aiosqlite:" + url[len("sqlite:") :]
    for prefix in ("postgresql:", "postgres:", "postgresql+psycopg2:"):
        if url.startswith(prefix):
            return "postgresql+psycopg:" + url[len(prefix) :]
    return url


def libpq_database_url(url: str) -> str:
    """A plain postgresql:// conninfo for psycopg connections outside SQLAlchemy."""
    for prefix in ("postgresql+psycopg:", "postgresql+psycopg2:", "postgres:"):
        if url.startswith(prefix):
            return "postgresql:" + url[len(prefix) :]
    return url


def sync_database_url(url: str) -> str:
    """Alembic runs migrations on a synchronous connection."""
    if url.startswith("sqlite+aiosqlite:"):
        return "sqlite:" + url[len("sqlite+aiosqlite:") :]
    return url  # postgresql+psycopg works synchronously too


def _read_or_create(path: Path, make: Any) -> str:
    """Safe when several servers start at once on one data directory: the key is written to a
    private temporary file and linked into place, so the first to link wins and every process
    reads that one."""
    if path.exists():
        return path.read_text().strip()
    value: str = make()
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process was first: use its key
    finally:
        temporary.unlink()
    return path.read_text().strip()

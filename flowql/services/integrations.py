"""Integrations: a connected account (type, settings) with write-only, encrypted credentials."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from flowql.auth.principal import Principal, PrincipalKind
from flowql.auth.secrets_box import SecretBox
from flowql.errors import Conflict, Forbidden, ValidationFailed
from flowql.models import AuditAction, Integration, utcnow
from flowql.services import audit
from flowql.services.common import (
    apply_common_filters,
    check_length,
    get_visible,
    require_name,
    visible,
)
from flowql.services.netguard import check_public_url, check_url_shape, guarded_client

TEST_TIMEOUT = 10.0
MAX_JSON_BYTES = 64 * 1024
TYPE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
STATE_SET = "set"
STATE_UNSET = "unset"


@dataclass
class IntegrationFilter:
    workspace_id: uuid.UUID | None = None
    type: str | None = None
    search: str | None = None


def check_json_object(value: Any, field: str, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed.one(field, "must be an object")
    if len(json.dumps(value)) > max_bytes:
        raise ValidationFailed.one(field, f"must be at most {max_bytes} bytes as JSON")
    return value


def check_type(value: str | None, field: str = "type") -> str:
    value = (value or "").strip()
    if not TYPE_PATTERN.match(value):
        raise ValidationFailed.one(
            field, "must be 1-100 letters, digits, '_', '.', ':' or '-', starting alphanumeric"
        )
    return value


def _check_settings(type_name: str, settings: dict[str, Any]) -> None:
    if type_name == "http":
        url = settings.get("url")
        if not isinstance(url, str):
            raise ValidationFailed.one("settings.url", "an http integration needs a URL")
        parts = check_url_shape(url, "settings.url")
        if parts.username is not None or parts.password is not None:
            raise ValidationFailed.one(
                "settings.url", "must not carry credentials; put them in credentials"
            )


def list_statement(principal: Principal, filters: IntegrationFilter) -> SelectOfScalar[Integration]:
    stmt = visible(principal, Integration, "integration:read", filters.workspace_id)
    if filters.type:
        stmt = stmt.where(col(Integration.type) == filters.type)
    return apply_common_filters(stmt, Integration, search=filters.search)


async def get_integration(
    session: AsyncSession,
    principal: Principal,
    ident: uuid.UUID | int,
    privilege: str = "integration:read",
) -> Integration:
    return await get_visible(session, principal, Integration, ident, privilege, "Integration")


def _seal(integration: Integration, box: SecretBox, credentials: dict[str, Any]) -> None:
    integration.credentials_encrypted = box.encrypt_json(credentials)
    integration.credentials_state = STATE_SET


async def create_integration(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    workspace_id: uuid.UUID | None,
    name: str,
    type: str,
    settings: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    external_account_id: str = "",
) -> Integration:
    workspace_id = workspace_id or principal.default_workspace("integration:write")
    principal.require(workspace_id, "integration:write", "Workspace")
    integration = Integration(
        workspace_id=workspace_id,
        user_id=principal.user_id,
        name=require_name(name),
        type=check_type(type),
        settings=check_json_object({} if settings is None else settings, "settings"),
        external_account_id=external_account_id or "",
    )
    check_length(external_account_id, "externalAccountId", 500)
    _check_settings(integration.type, integration.settings)
    if credentials is not None:
        _seal(integration, box, check_json_object(credentials, "credentials"))
    session.add(integration)
    await session.flush()
    audit.record(session, principal, AuditAction.CREATE, integration, name=integration.name)
    return integration


async def update_integration(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    ident: uuid.UUID | int,
    *,
    name: str | None = None,
    type: str | None = None,
    settings: dict[str, Any] | None = None,
    credentials: dict[str, Any] | None = None,
    clear_credentials: bool = False,
    external_account_id: str | None = None,
) -> Integration:
    integration = await get_integration(session, principal, ident, "integration:write")
    if credentials is not None and clear_credentials:
        raise ValidationFailed.one("clearCredentials", "cannot both set and clear credentials")
    new_type = integration.type if type is None else check_type(type)
    new_settings = (
        integration.settings if settings is None else check_json_object(settings, "settings")
    )
    _check_settings(new_type, new_settings)
    check_length(external_account_id, "externalAccountId", 500)
    if name is not None:
        integration.name = require_name(name)
    if external_account_id is not None:
        integration.external_account_id = external_account_id
    if credentials is not None:
        _seal(integration, box, check_json_object(credentials, "credentials"))
    elif clear_credentials:
        integration.credentials_encrypted = None
        integration.credentials_state = STATE_UNSET
    integration.type = new_type
    integration.settings = new_settings
    session.add(integration)
    await session.flush()
    fields = audit.given(name=name, type=type, settings=settings, credentials=credentials, clear_credentials=clear_credentials or None, external_account_id=external_account_id)  # fmt: skip
    audit.record(session, principal, AuditAction.UPDATE, integration, fields=fields)
    return integration


async def delete_integration(
    session: AsyncSession, principal: Principal, ident: uuid.UUID | int
) -> Integration:
    integration = await get_integration(session, principal, ident, "integration:write")
    await session.delete(integration)
    await session.flush()
    audit.record(session, principal, AuditAction.DELETE, integration, name=integration.name)
    return integration


# -- testing -----------------------------------------------------------------------------------


def _decrypt(box: SecretBox, integration: Integration) -> dict[str, Any] | None:
    """The stored credentials; None when there are none; ValueError when they cannot be read."""
    if integration.credentials_encrypted is None:
        return None
    value = box.decrypt_json(integration.credentials_encrypted)
    if not isinstance(value, dict):
        raise ValueError("stored credentials are not an object")
    return value


def _auth_for(credentials: dict[str, Any]) -> tuple[dict[str, str], httpx.BasicAuth | None]:
    """Credentials an http integration understands: headers, a bearer token, or basic auth."""
    given = credentials.get("headers")
    headers = {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
    if credentials.get("token"):
        headers.setdefault("Authorization", f"Bearer {credentials['token']}")
    auth = None
    if credentials.get("username") is not None:
        auth = httpx.BasicAuth(str(credentials["username"]), str(credentials.get("password", "")))
    return headers, auth


async def _test_http(url: str, credentials: dict[str, Any], allow_private: bool) -> dict[str, Any]:
    headers, auth = _auth_for(credentials)
    try:
        async with (
            guarded_client(allow_private, timeout=TEST_TIMEOUT) as client,
            client.stream("GET", url, headers=headers, auth=auth) as response,
        ):
            status = response.status_code
    except httpx.TimeoutException:
        return {"ok": False, "status": None, "error": f"timed out after {TEST_TIMEOUT:g}s"}
    except (httpx.HTTPError, ValueError) as exc:  # ValueError: headers httpx cannot send
        return {"ok": False, "status": None, "error": str(exc) or type(exc).__name__}
    ok = 200 <= status < 400
    return {"ok": ok, "status": status, "error": None if ok else f"HTTP {status}"}


async def run_test(integration: Integration, box: SecretBox, allow_private: bool) -> dict[str, Any]:
    """Test an integration for real; returns {ok, status, error}. Touches no database.

    `http`: a GET of settings.url (refused before any request when it reaches a private network
    and those are not allowed). Other types: the credentials are present and decryptable.
    """
    try:
        credentials = _decrypt(box, integration)
    except ValueError:
        return {"ok": False, "status": None, "error": "credentials cannot be decrypted"}
    if integration.type == "http":
        url = str(integration.settings.get("url") or "")
        await check_public_url(url, allow_private, field="settings.url")
        return await _test_http(url, credentials or {}, allow_private)
    if credentials is None:
        return {"ok": False, "status": None, "error": "no credentials stored"}
    return {"ok": True, "status": None, "error": None}


async def record_test(
    session: AsyncSession, principal: Principal, ident: uuid.UUID, result: dict[str, Any]
) -> Integration:
    integration = await get_integration(session, principal, ident, "integration:write")
    integration.last_tested_at = utcnow()
    integration.last_test_result = result
    session.add(integration)
    await session.flush()
    audit.record(session, principal, AuditAction.TEST, integration, ok=bool(result.get("ok")))
    return integration


# -- for the running process (WayScript compatibility) -----------------------------------------


async def integration_credentials_for_process(
    session: AsyncSession, principal: Principal, box: SecretBox, integration_id: uuid.UUID
) -> dict[str, Any]:
    """Decrypted credentials, handed only to a running process of the integration's workspace."""
    principal.ensure_authenticated()
    if principal.kind is not PrincipalKind.EXECUTION:
        raise Forbidden("credentials are handed only to a running process")
    integration = await get_integration(session, principal, integration_id)
    try:
        return _decrypt(box, integration) or {}
    except ValueError as exc:
        raise Conflict(
            "the stored credentials cannot be decrypted with the configured keys"
        ) from exc

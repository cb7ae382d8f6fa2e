"""Integrations over GraphQL: write-only encrypted credentials, tenancy, a real connection test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowql.auth.principal import Principal, PrincipalKind
from flowql.auth.privileges import ALL_PRIVILEGES
from flowql.errors import Forbidden, NotFound, ValidationFailed
from flowql.models import Process, Role
from flowql.services.auth import authenticate, issue_execution_tokens
from flowql.services.integrations import integration_credentials_for_process
from flowql.services.netguard import check_public_url
from tests.conftest import Account, Factory, LiveServer, error_of, free_port, raw_rows

SECRET = "s3cr3t-token-4f1d9a"
FIELDS = """
  id number workspaceId userId name type credentialsState externalAccountId settings
  createdAt lastTestedAt lastTestResult hasCredentials
"""
CREATE = f"""
mutation ($input: CreateIntegrationInput!) {{ createIntegration(input: $input) {{ {FIELDS} }} }}"""
UPDATE = f"""
mutation ($id: UUID!, $input: UpdateIntegrationInput!) {{
  updateIntegration(id: $id, input: $input) {{ {FIELDS} }}
}}"""
DELETE = "mutation ($id: UUID!) { deleteIntegration(id: $id) { id } }"
TEST = f"mutation ($id: UUID!) {{ testIntegration(id: $id) {{ {FIELDS} }} }}"
GET = f"query ($id: UUID, $number: Int) {{ integration(id: $id, number: $number) {{ {FIELDS} }} }}"
LIST = f"""
query ($filter: IntegrationFilterInput) {{
  integrations(filter: $filter) {{ totalCount nodes {{ {FIELDS} }} }}
}}"""


async def create(server: LiveServer, account: Account, **values: Any) -> dict[str, Any]:
    body = await server.gql(CREATE, {"input": values}, token=account.token)
    created: dict[str, Any] = body["data"]["createIntegration"]
    return created


@dataclass
class Target:
    """A real HTTP server on loopback that records what reaches it; /fail answers 500."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    requests: list[dict[str, Any]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        request_line, *header_lines = head.strip().split("\r\n")
        method, path, _ = request_line.split(" ")
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines)
        }
        requests.append({"method": method, "path": path, "headers": headers})
        status = "500 Internal Server Error" if path.startswith("/fail") else "200 OK"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode()
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield Target(url=f"http://127.0.0.1:{port}", requests=requests)


# -- CRUD and secrecy --------------------------------------------------------------------------


async def test_integration_crud_never_returns_credentials(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    created = await create(
        server,
        owner,
        name="Billing API",
        type="http",
        settings={"url": "https://billing.example.com/health"},
        credentials={"token": SECRET},
        externalAccountId="acct-1",
    )
    assert created["hasCredentials"] is True
    assert created["credentialsState"] == "set"
    assert created["workspaceId"] == str(owner.workspace_id)
    assert created["userId"] == str(owner.user_id)
    assert created["settings"] == {"url": "https://billing.example.com/health"}
    assert created["lastTestResult"] is None

    by_number = await server.gql(GET, {"number": created["number"]}, token=owner.token)
    assert by_number["data"]["integration"] == created
    listed = await server.gql(
        LIST, {"filter": {"type": "http", "search": "bill"}}, token=owner.token
    )
    assert listed["data"]["integrations"]["totalCount"] == 1
    none = await server.gql(LIST, {"filter": {"type": "slack"}}, token=owner.token)
    assert none["data"]["integrations"]["totalCount"] == 0

    renamed = await server.gql(
        UPDATE,
        {"id": created["id"], "input": {"name": "Billing", "credentials": {"token": "other"}}},
        token=owner.token,
    )
    assert renamed["data"]["updateIntegration"]["name"] == "Billing"
    assert renamed["data"]["updateIntegration"]["hasCredentials"] is True
    cleared = await server.gql(
        UPDATE, {"id": created["id"], "input": {"clearCredentials": True}}, token=owner.token
    )
    assert cleared["data"]["updateIntegration"]["hasCredentials"] is False
    assert cleared["data"]["updateIntegration"]["credentialsState"] == "unset"

    for body in (created, by_number, listed, renamed, cleared):
        assert SECRET not in json.dumps(body)
    await server.gql(DELETE, {"id": created["id"]}, token=owner.token)
    gone = await server.gql(GET, {"id": created["id"]}, token=owner.token, expect_errors=True)
    assert error_of(gone)["code"] == "NOT_FOUND"


async def test_credentials_are_stored_only_encrypted(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    await create(server, owner, name="Slack", type="slack", credentials={"bot_token": SECRET})
    rows = await raw_rows(server, "integrations")
    assert len(rows) == 1
    assert all(SECRET not in str(value) for value in rows[0])


async def test_members_read_integrations_but_cannot_change_them(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    created = await create(server, owner, name="Slack", type="slack")
    seen = await server.gql(GET, {"id": created["id"]}, token=member.token)
    assert seen["data"]["integration"]["id"] == created["id"]
    refused = await server.gql(
        CREATE, {"input": {"name": "x", "type": "slack"}}, token=member.token, expect_errors=True
    )
    assert error_of(refused)["code"] == "FORBIDDEN"
    for op in (UPDATE, TEST, DELETE):
        variables: dict[str, Any] = {"id": created["id"]}
        if op is UPDATE:
            variables["input"] = {"name": "y"}
        body = await server.gql(op, variables, token=member.token, expect_errors=True)
        assert error_of(body)["code"] == "FORBIDDEN"


async def test_another_workspace_cannot_see_or_touch_an_integration(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    created = await create(server, owner, name="Private CRM", type="crm", credentials={"k": SECRET})
    before = await raw_rows(server, "integrations")

    listed = await server.gql(LIST, token=stranger.token)
    assert listed["data"]["integrations"] == {"totalCount": 0, "nodes": []}
    attempts: list[tuple[str, dict[str, Any]]] = [
        (GET, {"id": created["id"]}),
        (GET, {"number": created["number"]}),
        (UPDATE, {"id": created["id"], "input": {"name": "mine now"}}),
        (TEST, {"id": created["id"]}),
        (DELETE, {"id": created["id"]}),
        (CREATE, {"input": {"name": "x", "type": "crm", "workspaceId": str(owner.workspace_id)}}),
    ]
    for query, variables in attempts:
        body = await server.gql(query, variables, token=stranger.token, expect_errors=True)
        assert error_of(body)["code"] == "NOT_FOUND", query
        assert "Private CRM" not in json.dumps(body)
    assert await raw_rows(server, "integrations") == before


INVALID_CREATES = [
    ({"name": " ", "type": "slack"}, "name"),
    ({"name": "x", "type": "no spaces allowed"}, "type"),
    ({"name": "x", "type": "slack", "settings": [1, 2]}, "settings"),
    ({"name": "x", "type": "slack", "credentials": "plain string"}, "credentials"),
    ({"name": "x", "type": "http", "settings": {}}, "settings.url"),
    ({"name": "x", "type": "http", "settings": {"url": "ftp://example.com"}}, "settings.url"),
    ({"name": "x", "type": "http", "settings": {"url": "http://u:p@example.com"}}, "settings.url"),
    ({"name": "x", "type": "slack", "externalAccountId": "a" * 501}, "externalAccountId"),
]


@pytest.mark.parametrize(("values", "field_name"), INVALID_CREATES)
async def test_invalid_integration_input_is_refused_naming_the_field(
    server: LiveServer, factory: Factory, values: dict[str, Any], field_name: str
) -> None:
    owner = await factory.account()
    existing = await create(server, owner, name="Kept", type="slack", credentials={"a": "b"})
    before = await raw_rows(server, "integrations")
    body = await server.gql(CREATE, {"input": values}, token=owner.token, expect_errors=True)
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    update = {k: v for k, v in values.items() if k != "name" or v.strip() == ""}
    body = await server.gql(
        UPDATE, {"id": existing["id"], "input": update}, token=owner.token, expect_errors=True
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    assert await raw_rows(server, "integrations") == before


async def test_setting_and_clearing_credentials_at_once_is_refused(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    created = await create(server, owner, name="x", type="slack")
    body = await server.gql(
        UPDATE,
        {"id": created["id"], "input": {"credentials": {"a": 1}, "clearCredentials": True}},
        token=owner.token,
        expect_errors=True,
    )
    assert error_of(body)["fields"] == {"clearCredentials": "cannot both set and clear credentials"}


# -- testIntegration ---------------------------------------------------------------------------


async def test_testing_an_http_integration_calls_its_url_with_the_credentials(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    owner = await factory.account()
    created = await create(
        server,
        owner,
        name="Health",
        type="http",
        settings={"url": f"{target.url}/health"},
        credentials={"token": SECRET},
    )
    body = await server.gql(TEST, {"id": created["id"]}, token=owner.token)
    tested = body["data"]["testIntegration"]
    assert tested["lastTestResult"] == {"ok": True, "status": 200, "error": None}
    assert tested["lastTestedAt"] is not None
    assert target.requests == [
        {"method": "GET", "path": "/health", "headers": target.requests[0]["headers"]}
    ]
    assert target.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert SECRET not in json.dumps(body)

    await server.gql(
        UPDATE,
        {"id": created["id"], "input": {"settings": {"url": f"{target.url}/fail"}}},
        token=owner.token,
    )
    failed = (await server.gql(TEST, {"id": created["id"]}, token=owner.token))["data"]
    assert failed["testIntegration"]["lastTestResult"] == {
        "ok": False,
        "status": 500,
        "error": "HTTP 500",
    }


async def test_testing_an_unreachable_url_records_the_failure(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    closed = f"http://127.0.0.1:{free_port()}/"
    created = await create(server, owner, name="Down", type="http", settings={"url": closed})
    body = await server.gql(TEST, {"id": created["id"]}, token=owner.token)
    result = body["data"]["testIntegration"]["lastTestResult"]
    assert result["ok"] is False
    assert result["status"] is None
    assert result["error"]


async def test_testing_other_types_checks_the_stored_credentials(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    with_credentials = await create(server, owner, name="a", type="slack", credentials={"t": "x"})
    without = await create(server, owner, name="b", type="slack")
    ok = await server.gql(TEST, {"id": with_credentials["id"]}, token=owner.token)
    assert ok["data"]["testIntegration"]["lastTestResult"] == {
        "ok": True,
        "status": None,
        "error": None,
    }
    missing = await server.gql(TEST, {"id": without["id"]}, token=owner.token)
    assert missing["data"]["testIntegration"]["lastTestResult"] == {
        "ok": False,
        "status": None,
        "error": "no credentials stored",
    }


async def test_private_targets_are_refused_unless_private_networks_are_allowed(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    owner = await factory.account()
    created = await create(
        server, owner, name="Internal", type="http", settings={"url": f"{target.url}/admin"}
    )
    allowing = server.runtime.settings
    server.runtime.settings = allowing.model_copy(update={"allow_private_networks": False})
    try:
        body = await server.gql(TEST, {"id": created["id"]}, token=owner.token, expect_errors=True)
    finally:
        server.runtime.settings = allowing
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert "settings.url" in error_of(body)["fields"]
    assert target.requests == []
    unchanged = await server.gql(GET, {"id": created["id"]}, token=owner.token)
    assert unchanged["data"]["integration"]["lastTestedAt"] is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/x",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.0.10/",
        "http://172.16.5.4/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
        "http://224.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fe80::1]/",
        "http://[fc00::1]/",
    ],
)
async def test_netguard_refuses_non_public_addresses(url: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await check_public_url(url, allow_private=False)
    assert "url" in caught.value.fields
    await check_public_url(url, allow_private=True)


@pytest.mark.parametrize("url", ["ftp://example.com/", "not a url", "http://", "http://h:99999/"])
async def test_netguard_refuses_what_is_not_an_http_url(url: str) -> None:
    for allow in (False, True):
        with pytest.raises(ValidationFailed) as caught:
            await check_public_url(url, allow_private=allow)
        assert list(caught.value.fields) == ["url"]


async def test_netguard_lets_public_addresses_through() -> None:
    await check_public_url("https://93.184.215.14/path", allow_private=False)
    await check_public_url("http://[2606:4700:4700::1111]/", allow_private=False)


# -- credentials for the running process -------------------------------------------------------


async def test_only_a_running_process_of_the_workspace_gets_the_credentials(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    created = await create(server, owner, name="Slack", type="slack", credentials={"t": SECRET})
    integration_id = uuid.UUID(created["id"])
    runtime = server.runtime
    stranger = await factory.account()
    async with runtime.db.transaction() as session:
        # Started by their owners: a process holds what its starter and editor hold
        # (services/delegation.py); one without recorded privileges never gets credentials.
        everything = sorted(ALL_PRIVILEGES)
        mine = Process(
            workspace_id=owner.workspace_id, user_id=owner.user_id, privileges=everything
        )
        theirs = Process(
            workspace_id=stranger.workspace_id, user_id=stranger.user_id, privileges=everything
        )
        session.add_all([mine, theirs])
        await session.flush()
        tokens = [
            (await issue_execution_tokens(session, runtime.settings, p)).access_token
            for p in (mine, theirs)
        ]
    async with runtime.db.read() as session:
        process_principal = await authenticate(session, runtime.settings, tokens[0])
        other_process = await authenticate(session, runtime.settings, tokens[1])
        assert process_principal.kind is PrincipalKind.EXECUTION
        plain = await integration_credentials_for_process(
            session, process_principal, runtime.box, integration_id
        )
        assert plain == {"t": SECRET}
        with pytest.raises(NotFound):
            await integration_credentials_for_process(
                session, other_process, runtime.box, integration_id
            )
        user = Principal(
            kind=PrincipalKind.USER,
            user_id=owner.user_id,
            grants=process_principal.grants,
        )
        with pytest.raises(Forbidden):
            await integration_credentials_for_process(session, user, runtime.box, integration_id)

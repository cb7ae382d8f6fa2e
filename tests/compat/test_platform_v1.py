"""Document 004 (automation platform REST API v1) served at /v1, called the way the document's
examples do: bearer API key, the success envelope, the error envelope, both pagination styles."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql.rest_compat.platform_v1 import ENDPOINTS
from tests.conftest import Account, Factory, LiveServer, free_port

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
SECRET = "xoxb-your-token-5e1f0c"
GREETING = {"payload": {"greeting": "Hello {{ message.name }}"}}
GREETER = {
    "name": "Lead Notification",
    "description": "Notify sales on new leads",
    "nodes": [
        {"id": "start", "type": "message", "position": {"x": 0, "y": 0}},
        {
            "id": "n2",
            "name": "greet",
            "type": "transform",
            "config": GREETING,
        },
    ],
    "edges": [{"source": "start", "target": "n2"}],
}


@dataclass
class Client:
    server: LiveServer
    key: str

    async def call(
        self, method: str, path: str, key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.key}", **kwargs.pop("headers", {})}
        return await self.server.client.request(method, f"/v1{path}", headers=headers, **kwargs)

    async def ok(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        assert response.status_code == status, response.text
        body = response.json()
        assert body["success"] is True
        return body

    async def data(self, method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        return (await self.ok(method, path, status, **kwargs))["data"]

    async def finished(self, execution_id: str, timeout: float = 20) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            execution: dict[str, Any] = await self.data("GET", f"/executions/{execution_id}")
            if execution["status"] in ("completed", "failed", "cancelled"):
                return execution
            assert asyncio.get_running_loop().time() < deadline, execution
            await asyncio.sleep(0.1)


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and set(body) == {"success", "error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and isinstance(body["error"]["message"], str)
    error: dict[str, Any] = body["error"]
    return error


def fields_of(response: httpx.Response) -> dict[str, str]:
    fields: dict[str, str] = error_of(response, 400, "VALIDATION_ERROR")["details"]["fields"]
    return fields


@pytest.fixture
async def account(factory: Factory) -> Account:
    return await factory.account()


@pytest.fixture
async def api(server: LiveServer, factory: Factory, account: Account) -> Client:
    return Client(server, await factory.api_key(account))


async def test_workflow_crud_round_trips_nodes_and_edges(api: Client) -> None:
    created = await api.data("POST", "/workflows", 201, json=GREETER)
    assert re.match(r"^wf_\d+$", created["id"])
    assert set(created) == {
        *("id", "name", "description", "status", "nodes", "edges", "variables"),
        *("created_at", "updated_at"),
    }
    assert created["name"] == "Lead Notification" and created["status"] == "draft"
    assert ISO.match(created["created_at"]) and ISO.match(created["updated_at"])
    assert [(n["id"], n["type"]) for n in created["nodes"]] == [
        ("start", "message"),
        ("greet", "transform"),
    ]
    assert created["nodes"][1]["config"] == GREETING
    assert created["edges"] == [{"source": "start", "target": "greet"}]
    assert created["variables"] == {}

    fetched = await api.data("GET", f"/workflows/{created['id']}")
    assert fetched == created
    number = created["id"].removeprefix("wf_")
    assert await api.data("GET", f"/workflows/{number}") == created

    patched = await api.data(
        "PATCH", f"/workflows/{created['id']}", json={"name": "Updated Name", "status": "published"}
    )
    assert patched["name"] == "Updated Name" and patched["status"] == "published"
    assert patched["nodes"] == created["nodes"] and patched["edges"] == created["edges"]

    # What GET returns goes back unchanged.
    same = await api.data(
        "PATCH",
        f"/workflows/{created['id']}",
        json={"nodes": fetched["nodes"], "edges": fetched["edges"], "variables": {"team": "a"}},
    )
    assert same["nodes"] == created["nodes"] and same["edges"] == created["edges"]
    assert same["variables"] == {"team": "a"}

    # Only nodes: the edges between the remaining nodes stay.
    extra = {"id": "log", "type": "message"}
    grown = await api.data(
        "PATCH", f"/workflows/{created['id']}", json={"nodes": [*fetched["nodes"], extra]}
    )
    assert [n["id"] for n in grown["nodes"]] == ["start", "greet", "log"]
    assert grown["edges"] == [{"source": "start", "target": "greet"}]
    odd = {"id": ["x"], "name": "odd", "type": "message"}
    refused = await api.call(
        "PATCH", f"/workflows/{created['id']}", json={"nodes": [*fetched["nodes"], odd]}
    )
    assert fields_of(refused) == {"nodes.2.id": "must be a string"}
    rewired = await api.data(
        "PATCH",
        f"/workflows/{created['id']}",
        json={"edges": [{"source": "greet", "target": "log"}]},
    )
    assert rewired["edges"] == [{"source": "greet", "target": "log"}]
    assert len(rewired["nodes"]) == 3

    deleted = await api.data("DELETE", f"/workflows/{created['id']}")
    assert deleted == {"id": created["id"], "deleted": True}
    error_of(await api.call("GET", f"/workflows/{created['id']}"), 404, "NOT_FOUND")


async def test_workflow_validation_names_the_fields(api: Client) -> None:
    missing = await api.call("POST", "/workflows", json={"description": 5, "nodes": {}})
    assert fields_of(missing) == {
        "name": "required",
        "description": "must be a string",
        "nodes": "must be an array",
    }
    bad_graph = await api.call(
        "POST",
        "/workflows",
        json={
            "name": "x",
            "nodes": [{"id": "a", "type": "message"}, {"id": "b"}],
            "edges": [{"source": "a", "target": "zzz"}],
        },
    )
    assert set(fields_of(bad_graph)) == {"nodes.1.type", "edges.0.target"}
    odd_ids = await api.call(
        "POST",
        "/workflows",
        json={"name": "x", "nodes": [{"id": {"a": 1}, "name": "a", "type": "message"}, 7]},
    )
    assert fields_of(odd_ids) == {"nodes.0.id": "must be a string", "nodes.1": "must be an object"}
    duplicate = await api.call(
        "POST",
        "/workflows",
        json={
            "name": "x",
            "nodes": [{"id": "a", "type": "message"}, {"id": "a", "type": "message"}],
        },
    )
    assert fields_of(duplicate) == {"nodes.1.id": "duplicate node 'a'"}
    unknown_type = await api.call(
        "POST", "/workflows", json={"name": "x", "nodes": [{"id": "a", "type": "teleport"}]}
    )
    assert "unknown agent type" in fields_of(unknown_type)["nodes.0.type"]
    bad_config = await api.call(
        "POST",
        "/workflows",
        json={"name": "x", "nodes": [{"id": "a", "type": "delay", "config": {"seconds": -1}}]},
    )
    assert list(fields_of(bad_config)) == ["nodes.0.config.seconds"]
    status = await api.call("POST", "/workflows", json={"name": "x", "status": "archived"})
    assert fields_of(status) == {"status": "must be one of: draft, published"}
    not_json = await api.call(
        "POST", "/workflows", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert fields_of(not_json) == {"body": "must be valid JSON"}


async def test_list_workflows_pages_filters_and_searches(api: Client) -> None:
    for name, status in [("Lead A", "published"), ("Lead B", "draft"), ("Other", "published")]:
        await api.data("POST", "/workflows", 201, json={"name": name, "status": status})
    everything = await api.ok("GET", "/workflows")
    assert [w["name"] for w in everything["data"]] == ["Other", "Lead B", "Lead A"]
    assert set(everything["data"][0]) == {
        *("id", "name", "description", "status", "created_at", "updated_at"),
    }
    assert everything["meta"] == {
        "page": 1,
        "limit": 20,
        "total": 3,
        "next_cursor": None,
        "has_more": False,
    }
    published = await api.ok("GET", "/workflows", params={"status": "published"})
    assert [w["name"] for w in published["data"]] == ["Other", "Lead A"]
    searched = await api.ok("GET", "/workflows", params={"search": "lead", "status": "draft"})
    assert [w["name"] for w in searched["data"]] == ["Lead B"]
    second = await api.ok("GET", "/workflows", params={"page": 2, "limit": 2})
    assert [w["name"] for w in second["data"]] == ["Lead A"]
    assert second["meta"]["page"] == 2 and second["meta"]["total"] == 3
    first = await api.ok("GET", "/workflows", params={"limit": 2})
    assert first["meta"]["has_more"] is True
    rest = await api.ok(
        "GET", "/workflows", params={"cursor": first["meta"]["next_cursor"], "limit": 2}
    )
    assert [w["name"] for w in rest["data"]] == ["Lead A"]
    assert rest["meta"]["page"] is None and rest["meta"]["has_more"] is False
    assert fields_of(await api.call("GET", "/workflows?limit=500")) == {
        "limit": "must be between 1 and 100"
    }
    assert "status" in fields_of(await api.call("GET", "/workflows?status=live"))


async def test_execute_really_runs_the_workflow(api: Client) -> None:
    workflow = await api.data("POST", "/workflows", 201, json=GREETER)
    started = await api.data(
        "POST",
        f"/workflows/{workflow['id']}/execute",
        202,
        json={"input": {"email": "user@example.com", "name": "John Doe"}},
    )
    assert set(started) == {"execution_id", "workflow_id", "status", "started_at"}
    assert re.match(r"^exec_\d+$", started["execution_id"])
    assert started["workflow_id"] == workflow["id"]
    assert started["status"] in ("pending", "running", "completed")
    assert ISO.match(started["started_at"])

    execution = await api.finished(started["execution_id"])
    assert execution["status"] == "completed", execution
    assert {"id", "workflow_id", "status", "started_at", "completed_at", "output", "logs"} <= set(
        execution
    )
    assert execution["id"] == started["execution_id"]
    assert execution["workflow_id"] == workflow["id"]
    assert ISO.match(execution["completed_at"])
    assert execution["output"] == {"greeting": "Hello John Doe"}
    assert execution["input"] == {"email": "user@example.com", "name": "John Doe"}
    assert isinstance(execution["logs"], list)
    for log in execution["logs"]:
        assert set(log) == {"timestamp", "level", "message", "data"}
    assert [(s["node"], s["status"]) for s in execution["steps"]] == [
        ("start", "completed"),
        ("greet", "completed"),
    ]
    # The run left its messages behind.
    number = int(started["execution_id"].removeprefix("exec_"))
    body = await api.server.gql(
        "query($n: Int!) { process(number: $n) { id } }", {"n": number}, token=api.key
    )
    messages = await api.server.gql(
        "query($p: UUID!) { messages(filter: {processId: $p}) { nodes { payload agent { name } } } }",
        {"p": body["data"]["process"]["id"]},
        token=api.key,
    )
    payloads = {m["agent"]["name"]: m["payload"] for m in messages["data"]["messages"]["nodes"]}
    assert payloads == {
        "start": {"email": "user@example.com", "name": "John Doe"},
        "greet": {"greeting": "Hello John Doe"},
    }
    # An idempotency key gives back the same execution.
    keyed = [
        await api.data(
            "POST",
            f"/workflows/{workflow['id']}/execute",
            202,
            headers={"Idempotency-Key": "order-17"},
        )
        for _ in range(2)
    ]
    assert keyed[0]["execution_id"] == keyed[1]["execution_id"]
    bad = await api.call("POST", f"/workflows/{workflow['id']}/execute", json={"input": [1]})
    assert fields_of(bad) == {"input": "must be an object"}


async def test_executions_filters_and_both_pagination_styles(api: Client) -> None:
    good = await api.data("POST", "/workflows", 201, json=GREETER)
    broken = await api.data(
        "POST",
        "/workflows",
        201,
        json={
            "name": "Broken",
            "nodes": [
                {"id": "call", "type": "http_request", "config": {"url": "http://127.0.0.1:9/"}}
            ],
        },
    )
    ids = []
    for _ in range(3):
        started = await api.data("POST", f"/workflows/{good['id']}/execute", 202, json={})
        ids.append(started["execution_id"])
        await api.finished(started["execution_id"])
    failed = await api.data("POST", f"/workflows/{broken['id']}/execute", 202)
    assert (await api.finished(failed["execution_id"]))["status"] == "failed"

    listed = await api.ok("GET", f"/workflows/{good['id']}/executions")
    assert [e["id"] for e in listed["data"]] == ids[::-1]
    assert set(listed["data"][0]) == {"id", "workflow_id", "status", "started_at", "completed_at"}
    assert listed["meta"]["total"] == 3
    only_failed = await api.ok("GET", "/executions", params={"status": "failed"})
    assert [e["id"] for e in only_failed["data"]] == [failed["execution_id"]]
    both = await api.ok("GET", "/executions", params={"status": "failed,completed"})
    assert both["meta"]["total"] == 4
    assert (await api.ok("GET", f"/workflows/{good['id']}/executions?status=running"))["meta"][
        "total"
    ] == 0
    by_workflow = await api.ok("GET", "/executions", params={"workflow_id": broken["id"]})
    assert [e["id"] for e in by_workflow["data"]] == [failed["execution_id"]]

    second = listed["data"][1]["started_at"]
    since = await api.ok("GET", f"/workflows/{good['id']}/executions", params={"from": second})
    assert [e["id"] for e in since["data"]] == ids[:0:-1]
    until = await api.ok("GET", f"/workflows/{good['id']}/executions", params={"to": second})
    assert [e["id"] for e in until["data"]] == ids[:2][::-1]
    future = await api.ok("GET", "/executions", params={"from": "2999-01-01"})
    assert future["data"] == [] and future["meta"]["total"] == 0

    page = await api.ok("GET", "/executions", params={"page": 2, "limit": 3})
    assert [e["id"] for e in page["data"]] == [ids[0]]
    seen = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = await api.ok("GET", "/executions", params=params)
        seen += [e["id"] for e in body["data"]]
        assert set(body["meta"]) == {"page", "limit", "total", "next_cursor", "has_more"}
        if not body["meta"]["has_more"]:
            assert body["meta"]["next_cursor"] is None
            break
        cursor = body["meta"]["next_cursor"]
    assert seen == [failed["execution_id"], *ids[::-1]]

    assert "status" in fields_of(await api.call("GET", "/executions?status=sleeping"))
    assert "from" in fields_of(await api.call("GET", "/executions?from=yesterday"))
    assert "cursor" in fields_of(await api.call("GET", "/executions?cursor=abc123"))
    beyond = base64.urlsafe_b64encode(b"n:99999999999999999999").decode()
    everything = await api.ok("GET", "/executions", params={"cursor": beyond})
    assert everything["meta"]["total"] == 4 and len(everything["data"]) == 4
    negative = base64.urlsafe_b64encode(b"n:-99999999999999999999").decode()
    assert fields_of(await api.call("GET", "/executions", params={"cursor": negative})) == {
        "cursor": "not a valid cursor"
    }


async def test_deprecated_alias_route_sends_deprecation_and_sunset(api: Client) -> None:
    workflow = await api.data("POST", "/workflows", 201, json=GREETER)
    await api.data("POST", f"/workflows/{workflow['id']}/execute", 202)
    current = await api.call("GET", f"/workflows/{workflow['id']}/executions")
    alias = await api.call("GET", f"/workflows/{workflow['id']}/runs")
    assert alias.status_code == 200
    assert alias.json()["data"][0]["id"] == current.json()["data"][0]["id"]
    assert alias.headers["deprecation"] == "@1793491200"
    assert alias.headers["sunset"] == "Mon, 01 Nov 2027 00:00:00 GMT"
    assert 'rel="deprecation"' in alias.headers["link"]
    assert "deprecation" not in current.headers and "sunset" not in current.headers
    missing = await api.call("GET", "/workflows/wf_999999/runs")
    error_of(missing, 404, "NOT_FOUND")
    assert missing.headers["sunset"] == "Mon, 01 Nov 2027 00:00:00 GMT"
    spec = (await api.server.client.get("/v1/openapi.json")).json()
    runs = spec["paths"]["/workflows/{id}/runs"]["get"]
    assert runs["deprecated"] is True
    assert set(runs["responses"]["200"]["headers"]) == {"Deprecation", "Sunset"}
    assert "deprecated" not in spec["paths"]["/workflows/{id}/executions"]["get"]


async def test_forms_validate_submissions_and_start_their_workflow(api: Client) -> None:
    workflow = await api.data(
        "POST",
        "/workflows",
        201,
        json={
            "name": "Contact",
            "status": "published",  # a draft's form trigger does not fire
            "nodes": [
                {"id": "submitted", "type": "form"},
                {
                    "id": "reply",
                    "type": "transform",
                    "config": {"payload": {"to": "{{ message.email }}"}},
                },
            ],
            "edges": [{"source": "submitted", "target": "reply"}],
        },
    )
    body = {
        "name": "Contact Form",
        "workflow_id": workflow["id"],
        "fields": [
            {"name": "email", "type": "email", "required": True},
            {"name": "message", "type": "textarea", "required": True},
        ],
    }
    form = await api.data("POST", "/forms", 201, json=body)
    assert re.match(r"^form_\d+$", form["id"])
    assert form["name"] == "Contact Form" and form["workflow_id"] == workflow["id"]
    assert [(f["name"], f["type"], f["required"]) for f in form["fields"]] == [
        ("email", "email", True),
        ("message", "textarea", True),
    ]
    assert form["submissions_count"] == 0 and ISO.match(form["created_at"])
    listed = await api.ok("GET", "/forms")
    assert [f["id"] for f in listed["data"]] == [form["id"]] and listed["meta"]["total"] == 1
    assert await api.data("GET", f"/forms/{form['id']}") == form

    submitted = await api.data(
        "POST",
        f"/forms/{form['id']}/submissions",
        201,
        json={"data": {"email": "user@example.com", "message": "Hello!"}},
    )
    assert re.match(r"^sub_\d+$", submitted["id"]) and submitted["form_id"] == form["id"]
    assert submitted["data"] == {"email": "user@example.com", "message": "Hello!"}
    execution = await api.finished(submitted["execution_id"])
    assert execution["status"] == "completed" and execution["workflow_id"] == workflow["id"]
    assert execution["output"] == {"to": "user@example.com"}

    invalid = await api.call(
        "POST",
        f"/forms/{form['id']}/submissions",
        json={"data": {"email": "not-an-email", "extra": 1}},
    )
    assert fields_of(invalid) == {
        "data.extra": "unknown field",
        "data.email": "not a valid email address",
        "data.message": "required",
    }
    assert fields_of(
        await api.call("POST", f"/forms/{form['id']}/submissions", json={"email": "x"})
    ) == {"data": "required"}
    submissions = await api.ok("GET", f"/forms/{form['id']}/submissions")
    assert [s["id"] for s in submissions["data"]] == [submitted["id"]]
    assert submissions["meta"]["total"] == 1
    assert (await api.data("GET", f"/forms/{form['id']}"))["submissions_count"] == 1

    bad_form = await api.call(
        "POST", "/forms", json={"fields": [{"name": "x", "type": "bogus"}], "workflow_id": "wf_0"}
    )
    assert fields_of(bad_form) == {"name": "required"}
    bad_fields = await api.call(
        "POST", "/forms", json={"name": "F", "fields": [{"name": "x", "type": "bogus"}]}
    )
    assert list(fields_of(bad_fields)) == ["fields.0.type"]
    no_workflow = await api.call("POST", "/forms", json={"name": "F", "workflow_id": "wf_999999"})
    assert fields_of(no_workflow) == {"workflow_id": "no such workflow"}


async def raw_rows(server: LiveServer, table: str) -> list[tuple[Any, ...]]:
    async with server.runtime.db.engine.connect() as conn:
        result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY number"))
        return [tuple(row) for row in result.all()]


async def test_credentials_never_return_their_values(api: Client) -> None:
    responses = []
    created = await api.call(
        "POST", "/credentials", json={"name": "Slack Bot Token", "type": "api_key", "value": SECRET}
    )
    assert created.status_code == 201
    credential = created.json()["data"]
    assert set(credential) == {"id", "name", "type", "created_at", "updated_at"}
    assert re.match(r"^cred_\d+$", credential["id"]) and credential["type"] == "api_key"
    listed = await api.call("GET", "/credentials")
    assert [c["id"] for c in listed.json()["data"]] == [credential["id"]]
    responses += [created, listed]
    rows = await raw_rows(api.server, "credentials")
    assert len(rows) == 1 and all(SECRET not in str(value) for value in rows[0])
    duplicate = await api.call(
        "POST", "/credentials", json={"name": "Slack Bot Token", "value": "other"}
    )
    assert "name" in fields_of(duplicate)
    assert fields_of(await api.call("POST", "/credentials", json={"name": "n"})) == {
        "value": "required"
    }
    deleted = await api.call("DELETE", f"/credentials/{credential['id']}")
    assert deleted.json()["data"] == {"id": credential["id"], "deleted": True}
    responses.append(deleted)
    assert (await api.data("GET", "/credentials")) == []
    error_of(await api.call("DELETE", f"/credentials/{credential['id']}"), 404, "NOT_FOUND")
    assert all(SECRET not in r.text for r in responses)


@dataclass
class Target:
    url: str
    calls: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """A real HTTP server on loopback; /down answers 503."""
    port = free_port()
    state = Target(url=f"http://127.0.0.1:{port}")

    async def handle(request: Request) -> Response:
        state.calls.append({"path": request.url.path, "headers": dict(request.headers)})
        status = 503 if request.url.path == "/down" else 200
        return JSONResponse({"ok": status == 200}, status_code=status)

    app = Starlette(routes=[Route("/{path:path}", handle)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield state
    server.should_exit = True
    await task


async def test_integrations_are_listed_and_really_tested(api: Client, target: Target) -> None:
    create = """mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { number } }"""
    numbers = []
    for name, path in (("CRM", "/health"), ("Down", "/down")):
        body = await api.server.gql(
            create,
            {
                "input": {
                    "name": name,
                    "type": "http",
                    "settings": {"url": f"{target.url}{path}"},
                    "credentials": {"token": SECRET},
                }
            },
            token=api.key,
        )
        numbers.append(body["data"]["createIntegration"]["number"])
    listed = await api.ok("GET", "/integrations")
    assert [i["name"] for i in listed["data"]] == ["Down", "CRM"]
    crm = listed["data"][1]
    assert crm["id"] == f"int_{numbers[0]}" and crm["status"] == "untested"
    assert crm["has_credentials"] is True and crm["last_tested_at"] is None
    assert SECRET not in json.dumps(listed)

    tested = await api.data("POST", f"/integrations/{crm['id']}/test")
    assert tested["ok"] is True and tested["status_code"] == 200 and tested["error"] is None
    assert tested["id"] == crm["id"] and ISO.match(tested["tested_at"])
    assert target.calls[-1]["path"] == "/health"
    assert target.calls[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    down = await api.data("POST", f"/integrations/int_{numbers[1]}/test")
    assert down["ok"] is False and down["status_code"] == 503 and down["error"] == "HTTP 503"
    statuses = {i["name"]: i["status"] for i in await api.data("GET", "/integrations")}
    assert statuses == {"CRM": "ok", "Down": "failing"}
    error_of(await api.call("POST", "/integrations/int_999999/test"), 404, "NOT_FOUND")


async def test_webhooks_create_list_delete(api: Client) -> None:
    body = {
        "url": "https://yoursite.com/webhook",
        "events": ["workflow.executed", "form.submitted"],
        "secret": "your-webhook-secret",
    }
    created = await api.call("POST", "/webhooks", json=body)
    assert created.status_code == 201 and "your-webhook-secret" not in created.text
    webhook = created.json()["data"]
    assert re.match(r"^wh_\d+$", webhook["id"])
    assert webhook["url"] == body["url"] and webhook["events"] == body["events"]
    assert webhook["has_secret"] is True and webhook["active"] is True
    listed = await api.ok("GET", "/webhooks")
    assert listed["data"] == [webhook] and listed["meta"]["total"] == 1
    invalid = await api.call("POST", "/webhooks", json={"url": "ftp://x", "events": ["nope"]})
    assert set(fields_of(invalid)) & {"url", "events"}
    assert fields_of(await api.call("POST", "/webhooks", json={"url": "https://a.example"})) == {
        "events": "required"
    }
    deleted = await api.data("DELETE", f"/webhooks/{webhook['id']}")
    assert deleted == {"id": webhook["id"], "deleted": True}
    assert await api.data("GET", "/webhooks") == []
    error_of(await api.call("DELETE", f"/webhooks/{webhook['id']}"), 404, "NOT_FOUND")


def concrete(path: str) -> str:
    return path.replace("{id}", "1")


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
async def test_every_route_refuses_a_missing_or_invalid_key(
    server: LiveServer, endpoint: Any
) -> None:
    path = f"/v1{concrete(endpoint.path)}"
    missing = await server.client.request(endpoint.method, path)
    assert error_of(missing, 401, "UNAUTHORIZED")
    invalid = await server.client.request(
        endpoint.method, path, headers={"Authorization": "Bearer not-a-key"}
    )
    assert error_of(invalid, 401, "UNAUTHORIZED")


async def test_forbidden_not_found_and_invalid_ids(
    api: Client, factory: Factory, account: Account
) -> None:
    workflow = await api.data("POST", "/workflows", 201, json=GREETER)
    credential = await api.data("POST", "/credentials", 201, json={"name": "c", "value": "v"})
    reader = await factory.api_key(account, privileges=["workflow:read"])
    assert (await api.data("GET", f"/workflows/{workflow['id']}", key=reader))["id"]
    refused = await api.call("POST", "/workflows", key=reader, json={"name": "x"})
    assert error_of(refused, 403, "FORBIDDEN")["details"] == {"privilege": "workflow:write"}
    error_of(await api.call("GET", "/credentials", key=reader), 403, "FORBIDDEN")
    error_of(await api.call("GET", "/executions", key=reader), 403, "FORBIDDEN")
    error_of(
        await api.call("POST", f"/workflows/{workflow['id']}/execute", key=reader), 403, "FORBIDDEN"
    )
    error_of(
        await api.call("DELETE", f"/credentials/{credential['id']}", key=reader), 403, "FORBIDDEN"
    )

    stranger = Client(api.server, await factory.api_key(await factory.account()))
    for method, path in [
        ("GET", f"/workflows/{workflow['id']}"),
        ("PATCH", f"/workflows/{workflow['id']}"),
        ("DELETE", f"/workflows/{workflow['id']}"),
        ("POST", f"/workflows/{workflow['id']}/execute"),
        ("GET", f"/workflows/{workflow['id']}/executions"),
        ("DELETE", f"/credentials/{credential['id']}"),
        ("GET", "/executions/exec_999999"),
        ("GET", "/executions/1"),
        ("GET", "/forms/form_999999"),
        ("POST", "/integrations/int_999999/test"),
        ("DELETE", "/webhooks/wh_999999"),
        ("GET", "/workflows/99999999999999"),
    ]:
        response = await stranger.call(method, path, json={})
        error_of(response, 404, "NOT_FOUND")
    assert await stranger.data("GET", "/workflows") == []

    invalid = await api.call("GET", "/workflows/lead-notification")
    error = error_of(invalid, 400, "VALIDATION_ERROR")
    assert error["message"] == "Invalid workflow ID"
    assert "id" in error["details"]["fields"]
    assert (
        error_of(await api.call("GET", "/executions/wf_1"), 400, "VALIDATION_ERROR")["message"]
        == "Invalid execution ID"
    )
    # Ids are accepted as UUIDs too.
    uuid_of = await api.server.gql(
        "query($n: Int!) { workflow(number: $n) { id } }",
        {"n": int(workflow["id"].removeprefix("wf_"))},
        token=api.key,
    )
    by_uuid = await api.data("GET", f"/workflows/{uuid_of['data']['workflow']['id']}")
    assert by_uuid["id"] == workflow["id"]
    assert error_of(await stranger.call("GET", "/executions/1"), 404, "NOT_FOUND") == {
        "code": "NOT_FOUND",
        "message": "Execution not found",
        "details": {"type": "Execution"},
    }
    error_of(await api.call("GET", "/nothing-here"), 404, "NOT_FOUND")
    # An encoded newline in a path still gets this API's JSON error, not a plain-text 404.
    error_of(await api.call("GET", "/workflows/a%0Ab/x"), 404, "NOT_FOUND")
    error_of(await api.call("GET", "/workflows/a%0Ab"), 400, "VALIDATION_ERROR")
    error_of(await api.call("PUT", "/workflows"), 405, "VALIDATION_ERROR")


async def test_a_users_access_token_works_too(server: LiveServer, account: Account) -> None:
    response = await server.client.get(
        "/v1/workflows", headers={"Authorization": f"Bearer {account.token}"}
    )
    assert response.status_code == 200 and response.json()["data"] == []


async def test_openapi_describes_the_mount(server: LiveServer) -> None:
    spec = (await server.client.get("/v1/openapi.json")).json()
    assert spec["openapi"] == "3.1.0" and spec["servers"] == [{"url": "/v1"}]
    assert "VALIDATION_ERROR **400**" in spec["info"]["description"]
    served = {(e.method.lower(), e.path) for e in ENDPOINTS}
    described = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert described == served
    assert {p for _, p in described} == {
        "/workflows",
        "/workflows/{id}",
        "/workflows/{id}/execute",
        "/workflows/{id}/executions",
        "/workflows/{id}/runs",
        "/executions",
        "/executions/{id}",
        "/forms",
        "/forms/{id}",
        "/forms/{id}/submissions",
        "/credentials",
        "/credentials/{id}",
        "/integrations",
        "/integrations/{id}/test",
        "/webhooks",
        "/webhooks/{id}",
    }
    listing = spec["paths"]["/workflows"]["get"]["responses"]["200"]["content"]
    schema = listing["application/json"]["schema"]
    assert schema["required"] == ["success", "data", "meta"]
    assert "requestBody" in spec["paths"]["/workflows"]["post"]
    error = spec["paths"]["/workflows"]["post"]["responses"]["400"]["content"]
    assert error["application/json"]["schema"]["properties"]["success"] == {"const": False}

"""Document 003: scenarios and their processes, in LetsFlow's own JSON (or YAML)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from flowql.errors import ErrorCode, Forbidden, ValidationFailed
from flowql.rest_compat.base import Call, Endpoint, OperationFailed, int_param
from flowql.rest_compat.letsflow.envelope import (
    as_actor,
    is_yaml,
    json_body,
    location,
    no_content,
    require_object,
    respond,
    uuid_text,
    wants_yaml,
    workspace_param,
)
from flowql.rest_compat.letsflow.openapi import (
    ACCEPT_HEADER,
    ANY_JSON,
    AS_ACTOR_HEADER,
    OBJECT,
    PROCESS_SCHEMA,
    PROCESS_SUMMARY_SCHEMA,
    SCENARIO_SCHEMA,
    SCENARIO_SUMMARY_SCHEMA,
    TEXT,
    WORKSPACE_QUERY,
    empty,
    json_request,
    ok,
)
from flowql.rest_compat.openapi import obj
from flowql.rest_compat.paging import all_nodes

PAGE_SIZE = 100
MAX_PAGE = 1_000_000
# Listing every process (`all=true`) is for admins: callers who may manage members somewhere.
ADMIN_PRIVILEGE = "member:write"

# -- scenarios ----------------------------------------------------------------------------------

STORE = """mutation($ws: UUID, $definition: JSON, $yaml: String) {
  storeScenario(workspaceId: $ws, definition: $definition, yaml: $yaml) { id } }"""
GET_JSON = "query($id: UUID!) { scenario(id: $id) { definition disabled } }"
GET_YAML = "query($id: UUID!) { scenario(id: $id) { yaml disabled } }"
DISABLE = "mutation($id: UUID!) { disableScenario(id: $id) { id } }"


def scenario_summary(scenario: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": scenario["id"],
        "name": scenario["name"],
        "title": scenario["title"],
        "description": scenario["description"],
        "tags": scenario["tags"],
    }


async def list_scenarios(call: Call) -> Response:
    nodes = await all_nodes(
        call,
        "scenarios(first: 100, after: $after, filter: $filter) "
        "{ {PAGE} nodes { id name title description tags } }",
        "scenarios",
        {"filter": {"disabled": False}},
        {"filter": "ScenarioFilterInput"},
    )
    summaries = sorted(
        (scenario_summary(s) for s in nodes), key=lambda s: (s["title"], s["name"], s["id"])
    )
    return respond(call, summaries)


async def store_scenario(call: Call) -> Response:
    variables: dict[str, Any] = {"ws": workspace_param(call)}
    if is_yaml(call.request):
        raw = await call.request.body()
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            raise ValidationFailed.one("body", "must be UTF-8 YAML") from None
        if not text.strip():
            raise ValidationFailed.one("body", "a scenario is required")
        variables["yaml"] = text
    else:
        definition = await json_body(call.request)
        if definition is None:
            raise ValidationFailed.one(
                "body", "a scenario is required (JSON, or YAML with Content-Type: application/yaml)"
            )
        variables["definition"] = definition
    data = await call.run(STORE, variables)
    ident = data["storeScenario"]["id"]
    return respond(call, {"id": ident}, 201, location(f"/scenarios/{ident}"))


async def get_scenario(call: Call) -> Response:
    variables = {"id": str(call.path["id"])}
    if wants_yaml(call.request):
        scenario = (await call.run(GET_YAML, variables))["scenario"]
        return respond(call, None, headers=_disabled(scenario), yaml_text=scenario["yaml"])
    scenario = (await call.run(GET_JSON, variables))["scenario"]
    return respond(call, scenario["definition"], headers=_disabled(scenario))


def _disabled(scenario: dict[str, Any]) -> dict[str, str]:
    return {"X-Disabled": "true"} if scenario["disabled"] else {}


async def disable_scenario(call: Call) -> Response:
    await call.run(DISABLE, {"id": str(call.path["id"])})
    return no_content()


# -- processes ----------------------------------------------------------------------------------

LIST = """query($first: Int!, $offset: Int!, $filter: ProcessFilterInput) {
  processes(first: $first, offset: $offset, filter: $filter) { nodes {
    id title createdAt lastActivityAt actors scenario { id name title description tags } } } }"""
START = """mutation($input: StartProcessInput!) { startProcess(input: $input) { id projection } }"""
GET_PROCESS = "query($id: UUID!) { process(id: $id) { scenarioId projection } }"
STEP = """mutation($input: PerformActionInput!) { performAction(input: $input) { event { id } } }"""


def _flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValidationFailed.one(name, "must be true or false")


def process_summary(process: dict[str, Any]) -> dict[str, Any]:
    scenario = process["scenario"] or {}
    actors = process["actors"] if isinstance(process["actors"], dict) else {}
    return {
        "id": process["id"],
        "title": process["title"],
        "tags": list(scenario.get("tags") or []),
        "scenario": scenario_summary(scenario) if scenario else None,
        "actors": [
            {"key": key, **(record if isinstance(record, dict) else {})}
            for key, record in actors.items()
        ],
        "created": process["createdAt"],
        "lastUpdated": process["lastActivityAt"] or process["createdAt"],
    }


async def list_processes(call: Call) -> Response:
    page = int_param(call.query.get("page"), "page", default=1, minimum=1, maximum=MAX_PAGE)
    every = _flag(call.query.get("all"), "all")
    if every and not any(ADMIN_PRIVILEGE in held for held in call.principal.grants.values()):
        raise Forbidden("Not allowed to list all processes")
    assert page is not None
    variables = {
        "first": PAGE_SIZE,
        "offset": (page - 1) * PAGE_SIZE,
        "filter": {"scenarioProcesses": True, "involvingMe": not every},
    }
    nodes = (await call.run(LIST, variables))["processes"]["nodes"]
    return respond(call, [process_summary(p) for p in nodes if p["scenario"]])


def _start_action(value: Any, actor: str | None) -> dict[str, Any] | None:
    """LetsFlow's `action`: a key, or {key, response}."""
    if value is None:
        return None
    if isinstance(value, str) and value:
        return {"key": value, "response": None, "actor": actor}
    if isinstance(value, dict) and isinstance(value.get("key"), str) and value["key"]:
        return {"key": value["key"], "response": value.get("response"), "actor": actor}
    raise ValidationFailed.one("action", "must be an action key or {key, response}")


async def start_process(call: Call) -> Response:
    body = require_object(await json_body(call.request))
    if not body.get("scenario"):
        raise ValidationFailed.one("scenario", "Scenario is required")
    actors = body.get("actors")
    if actors is not None and not isinstance(actors, dict):
        raise ValidationFailed.one("actors", "must be a map of actor key -> actor")
    variables = {
        "input": {
            "scenarioId": uuid_text(body["scenario"], "scenario"),
            "actors": actors,
            "vars": body.get("vars"),
            "action": _start_action(body.get("action"), as_actor(call)),
        }
    }
    try:
        data = await call.run(START, variables)
    except OperationFailed as failed:
        if failed.code is not ErrorCode.NOT_FOUND:
            raise
        # The scenario and the action are references in the body, not the resource: 400.
        kind = str(failed.details.get("type", "Scenario"))
        field = "action" if kind == "Action" else "scenario"
        raise ValidationFailed.one(field, f"{kind} not found") from None
    process = data["startProcess"]
    return respond(call, process["projection"], 201, location(f"/processes/{process['id']}"))


async def get_process(call: Call) -> Response:
    process = (await call.run(GET_PROCESS, {"id": str(call.path["id"])}))["process"]
    if process["scenarioId"] is None or process["projection"] is None:
        raise OperationFailed(ErrorCode.NOT_FOUND, "Process not found", {"type": "Process"})
    return respond(call, process["projection"])


async def step_process(call: Call) -> Response:
    variables = {
        "input": {
            "processId": str(call.path["id"]),
            "action": call.path["action"],
            "actor": as_actor(call),
            "response": await json_body(call.request),
        }
    }
    await call.run(STEP, variables)
    return no_content()


START_BODY = obj(
    {
        "scenario": TEXT,
        "actors": {"type": "object", "additionalProperties": OBJECT},
        "action": {
            "oneOf": [TEXT, {**obj({"key": TEXT, "response": ANY_JSON}, optional=("response",))}]
        },
        "vars": OBJECT,
    },
    optional=("actors", "action", "vars"),
)

ENDPOINTS = [
    Endpoint(
        "GET",
        "/scenarios",
        "List scenarios",
        handler=list_scenarios,
        openapi={"responses": ok({"type": "array", "items": SCENARIO_SUMMARY_SCHEMA})},
    ),
    Endpoint(
        "POST",
        "/scenarios",
        "Store a scenario",
        handler=store_scenario,
        openapi={
            "parameters": [WORKSPACE_QUERY],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": OBJECT},
                    "application/yaml": {"schema": TEXT},
                },
            },
            "responses": ok(
                obj({"id": {"type": "string", "format": "uuid"}}),
                "201",
                "Created; the scenario's URL is in Location. The same scenario has the same id.",
            ),
        },
    ),
    Endpoint(
        "GET",
        "/scenarios/{id:uuid}",
        "Get a scenario by ID",
        handler=get_scenario,
        openapi={
            "parameters": [ACCEPT_HEADER],
            "responses": ok(SCENARIO_SCHEMA, description="The scenario; X-Disabled when disabled"),
        },
    ),
    Endpoint(
        "DELETE",
        "/scenarios/{id:uuid}",
        "Disable a scenario",
        handler=disable_scenario,
        openapi={"responses": empty()},
    ),
    Endpoint(
        "GET",
        "/processes",
        "List processes",
        handler=list_processes,
        openapi={
            "parameters": [
                {
                    "name": "page",
                    "in": "query",
                    "required": False,
                    "description": "List page, from 1 (100 processes per page)",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                },
                {
                    "name": "all",
                    "in": "query",
                    "required": False,
                    "description": "Also processes where you are not an actor (admin only)",
                    "schema": {"type": "boolean"},
                },
            ],
            "responses": ok({"type": "array", "items": PROCESS_SUMMARY_SCHEMA}),
        },
    ),
    Endpoint(
        "POST",
        "/processes",
        "Start a process",
        handler=start_process,
        openapi={
            "parameters": [AS_ACTOR_HEADER],
            "requestBody": json_request(START_BODY),
            "responses": ok(PROCESS_SCHEMA, "201", "Created; its URL is in Location"),
        },
    ),
    Endpoint(
        "GET",
        "/processes/{id:uuid}",
        "Get a process by ID",
        handler=get_process,
        openapi={"responses": ok(PROCESS_SCHEMA)},
    ),
    Endpoint(
        "POST",
        "/processes/{id:uuid}/{action}",
        "Step through a process",
        handler=step_process,
        openapi={
            "parameters": [AS_ACTOR_HEADER],
            "requestBody": json_request(ANY_JSON, required=False),
            "responses": empty(),
        },
    ),
]

"""Document 004: workflows (nodes = agents, edges = agent sources), execute, and executions."""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import Response

from flowql.errors import ValidationFailed
from flowql.rest_compat.base import Call
from flowql.rest_compat.platform_v1.envelope import (
    INT32_MAX,
    PAGE,
    PAGE_ARGS,
    PAGE_VARS,
    Body,
    Paging,
    ok,
    operation,
    parse_datetime,
    parse_id,
    render_id,
    require,
    run,
)
from flowql.rest_compat.platform_v1.envelope import iso as _iso

SUMMARY_FIELDS = "number name description status createdAt updatedAt"
AGENT_FIELDS = (
    "name type options disabled maxRetries timeoutSeconds keepMessagesFor sources { name }"
)
WORKFLOW_FIELDS = f"{SUMMARY_FIELDS} variables agents {{ {AGENT_FIELDS} }}"
EXECUTION_FIELDS = "number status createdAt completedAt workflow { number }"
EXECUTION_DETAIL = (
    f"{EXECUTION_FIELDS} input output error logs {{ level message data createdAt }} "
    "steps { agent { name } status attempt startedAt finishedAt error }"
)
GET_WORKFLOW = "query($id: UUID, $number: Int) {{ workflow(id: $id, number: $number) {{ {} }} }}"
# GraphQL validation paths of a workflow's agents, in this API's names.
GRAPH_RENAME = [
    (r"^agents\.(\d+)\.options", r"nodes.\1.config"),
    (r"^agents\.(\d+)\.sources", "edges"),
    (r"^agents", "nodes"),
]
STATUS_OUT = {
    "PENDING": "pending",
    "RUNNING": "running",
    "WAITING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CANCELLED": "cancelled",
}
STATUS_IN = {
    "pending": ["PENDING"],
    "running": ["RUNNING", "WAITING"],
    "completed": ["COMPLETED"],
    "failed": ["FAILED"],
    "cancelled": ["CANCELLED"],
}

# -- shapes ------------------------------------------------------------------------------------


def workflow_summary(workflow: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": render_id("workflow", workflow["number"]),
        "name": workflow["name"],
        "description": workflow["description"],
        "status": workflow["status"].lower(),
        "created_at": _iso(workflow["createdAt"]),
        "updated_at": _iso(workflow["updatedAt"] or workflow["createdAt"]),
    }


def node_json(agent: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": agent["name"],
        "name": agent["name"],
        "type": agent["type"],
        "config": agent["options"],
        "disabled": agent["disabled"],
        "max_retries": agent["maxRetries"],
        "timeout_seconds": agent["timeoutSeconds"],
        "keep_messages_for": agent["keepMessagesFor"],
    }


def workflow_json(workflow: dict[str, Any]) -> dict[str, Any]:
    agents = workflow["agents"]
    return {
        **workflow_summary(workflow),
        "nodes": [node_json(a) for a in agents],
        "edges": [
            {"source": source["name"], "target": agent["name"]}
            for agent in agents
            for source in agent["sources"]
        ],
        "variables": workflow["variables"],
    }


def execution_json(process: dict[str, Any]) -> dict[str, Any]:
    workflow = process.get("workflow")
    return {
        "id": render_id("execution", process["number"]),
        "workflow_id": render_id("workflow", workflow["number"]) if workflow else None,
        "status": STATUS_OUT[process["status"]],
        "started_at": _iso(process["createdAt"]),
        "completed_at": _iso(process["completedAt"]),
    }


def execution_detail(process: dict[str, Any]) -> dict[str, Any]:
    return {
        **execution_json(process),
        "input": process["input"],
        "output": process["output"],
        "error": process["error"],
        "logs": [
            {
                "timestamp": _iso(log["createdAt"]),
                "level": log["level"].lower(),
                "message": log["message"],
                "data": log["data"],
            }
            for log in process["logs"]
        ],
        "steps": [
            {
                "node": step["agent"]["name"] if step["agent"] else None,
                "status": step["status"].lower(),
                "attempt": step["attempt"],
                "started_at": _iso(step["startedAt"]),
                "finished_at": _iso(step["finishedAt"]),
                "error": step["error"],
            }
            for step in process["steps"]
        ],
    }


# -- nodes and edges -> agents with sources ------------------------------------------------------


def _int_problem(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or abs(value) > INT32_MAX:
        return "must be an integer"
    return None


def _node_agent(node: Any, at: str, problems: dict[str, str]) -> dict[str, Any] | None:
    if not isinstance(node, dict):
        problems[at] = "must be an object"
        return None
    node_id, name = node.get("id"), node.get("name")
    if name is None:
        name = node_id
    if node_id is not None and not isinstance(node_id, str):
        problems[f"{at}.id"] = "must be a string"
    if not isinstance(name, str):
        problems[f"{at}.name"] = "a node needs a name or an id (a string)"
        return None
    agent: dict[str, Any] = {"name": name, "type": node.get("type"), "sources": []}
    if not isinstance(agent["type"], str):
        problems[f"{at}.type"] = "required: a node type (a string)"
    config = node.get("config", node.get("options"))
    if config is not None and not isinstance(config, dict):
        problems[f"{at}.config"] = "must be an object"
    agent["options"] = config or {}
    if node.get("disabled") is not None:
        if not isinstance(node["disabled"], bool):
            problems[f"{at}.disabled"] = "must be true or false"
        agent["disabled"] = node["disabled"]
    for key, field in (("max_retries", "maxRetries"), ("keep_messages_for", "keepMessagesFor")):
        if node.get(key) is not None:
            problem = _int_problem(node[key])
            if problem:
                problems[f"{at}.{key}"] = problem
            agent[field] = node[key]
    timeout = node.get("timeout_seconds")
    if timeout is not None:
        is_number = isinstance(timeout, int | float) and not isinstance(timeout, bool)
        if not is_number or not math.isfinite(timeout):
            problems[f"{at}.timeout_seconds"] = "must be a number"
        agent["timeoutSeconds"] = timeout
    return agent


def graph_agents(nodes: list[Any], edges: list[Any]) -> list[dict[str, Any]]:
    """WorkflowAgentInput list: a node's `id` (or `name`) is what edges point at; the agent is
    named by the node's `name`, else its `id`."""
    problems: dict[str, str] = {}
    agents: list[dict[str, Any]] = []
    by_key: dict[str, dict[str, Any]] = {}
    for index, node in enumerate(nodes):
        agent = _node_agent(node, f"nodes.{index}", problems)
        if agent is None:
            continue
        agents.append(agent)
        for key in (node.get("id"), agent["name"]):
            if isinstance(key, str):
                if key in by_key and by_key[key] is not agent:
                    problems[f"nodes.{index}.id"] = f"duplicate node {key!r}"
                by_key[key] = agent
    for index, edge in enumerate(edges):
        if not isinstance(edge, dict):
            problems[f"edges.{index}"] = "must be an object with source and target"
            continue
        ends = {}
        for end in ("source", "target"):
            key = edge.get(end)
            if not isinstance(key, str) or key not in by_key:
                problems[f"edges.{index}.{end}"] = "must be the id of a node"
            else:
                ends[end] = by_key[key]
        if len(ends) == 2 and ends["source"]["name"] not in ends["target"]["sources"]:
            ends["target"]["sources"].append(ends["source"]["name"])
    if problems:
        raise ValidationFailed(problems)
    return agents


def workflow_input(
    body: Body, current: dict[str, Any] | None, update: bool = False
) -> dict[str, Any]:
    """CreateWorkflowInput / UpdateWorkflowInput from a body; on update, `current` fills a
    missing half of the graph."""
    values = {
        "name": body.text("name", required=not update),
        "description": body.text("description"),
        "status": body.text("status", choices=("draft", "published")),
        "variables": body.mapping("variables"),
    }
    nodes, edges = body.array("nodes"), body.array("edges")
    body.done()
    result = {k: v for k, v in values.items() if v is not None}
    if "status" in result:
        result["status"] = result["status"].upper()
    if current is not None and (nodes is None) != (edges is None):
        shaped = workflow_json(current)
        if nodes is None:
            nodes = shaped["nodes"]
        else:
            keys = [n.get(k) for n in nodes if isinstance(n, dict) for k in ("id", "name")]
            names = {key for key in keys if isinstance(key, str)}
            edges = [e for e in shaped["edges"] if {e["source"], e["target"]} <= names]
    if nodes is not None or edges is not None or not update:
        result["agents"] = graph_agents(nodes or [], edges or [])
    return result


# -- handlers ----------------------------------------------------------------------------------


async def find_workflow(call: Call, fields: str = "id number") -> dict[str, Any]:
    ident = parse_id(call.path["id"], "workflow")
    data = await run(call, GET_WORKFLOW.format(fields), ident)
    workflow: dict[str, Any] = data["workflow"]
    return workflow


async def list_workflows(call: Call) -> Response:
    require(call, "workflow:read")
    paging = Paging.of(call)
    status = call.query.get("status") or None
    if status is not None and status not in ("draft", "published"):
        raise ValidationFailed.one("status", "must be one of: draft, published")
    filters = {"status": status.upper() if status else None, "search": call.query.get("search")}
    document = (
        f"query({PAGE_VARS}, $filter: WorkflowFilterInput) {{ workflows({PAGE_ARGS}, "
        f"filter: $filter) {{ {PAGE} nodes {{ {SUMMARY_FIELDS} }} }} }}"
    )
    data = await run(call, document, {**paging.variables(), "filter": filters})
    connection = data["workflows"]
    return ok([workflow_summary(w) for w in connection["nodes"]], meta=paging.meta(connection))


async def create_workflow(call: Call) -> Response:
    values = workflow_input(Body(call.body), None)
    document = (
        "mutation($input: CreateWorkflowInput!) "
        f"{{ createWorkflow(input: $input) {{ {WORKFLOW_FIELDS} }} }}"
    )
    data = await run(call, document, {"input": values}, GRAPH_RENAME)
    return ok(workflow_json(data["createWorkflow"]), status=201)


async def update_workflow(call: Call) -> Response:
    body = Body(call.body)
    ident = parse_id(call.path["id"], "workflow")
    current = None
    if (body.raw.get("nodes") is None) != (body.raw.get("edges") is None):
        # Half a graph: the other half comes from the stored workflow (a read before the write).
        current = await find_workflow(call, WORKFLOW_FIELDS)
    values = workflow_input(body, current, update=True)
    document = (
        "mutation($id: UUID, $number: Int, $input: UpdateWorkflowInput!) "
        f"{{ updateWorkflow(id: $id, number: $number, input: $input) {{ {WORKFLOW_FIELDS} }} }}"
    )
    data = await run(call, document, {**ident, "input": values}, GRAPH_RENAME)
    return ok(workflow_json(data["updateWorkflow"]))


async def execute_workflow(call: Call) -> Response:
    body = Body(call.body, optional=True)
    given = body.mapping("input")
    body.done()
    key = call.request.headers.get("idempotency-key") or None
    if key is not None and len(key) > 200:
        raise ValidationFailed.one("Idempotency-Key", "must be at most 200 characters")
    ident = parse_id(call.path["id"], "workflow")
    document = (
        "mutation($id: UUID, $number: Int, $input: JSON, $key: String) { executeWorkflow("
        f"id: $id, number: $number, input: $input, idempotencyKey: $key) {{ {EXECUTION_FIELDS} }} }}"
    )
    variables = {**ident, "input": given or {}, "key": key}
    data = await run(call, document, variables, [(r"^idempotencyKey$", "Idempotency-Key")])
    shaped = execution_json(data["executeWorkflow"])
    return ok(
        {
            "execution_id": shaped["id"],
            "workflow_id": shaped["workflow_id"],
            "status": shaped["status"],
            "started_at": shaped["started_at"],
        },
        status=202,
    )


def _execution_filter(call: Call) -> dict[str, Any]:
    statuses: list[str] = []
    for status in filter(None, (call.query.get("status") or "").split(",")):
        if status.strip() not in STATUS_IN:
            raise ValidationFailed.one("status", f"must be one of: {', '.join(STATUS_IN)}")
        statuses += STATUS_IN[status.strip()]
    return {
        "statuses": statuses or None,
        "createdAfter": parse_datetime(call.query.get("from"), "from"),
        "createdBefore": parse_datetime(call.query.get("to"), "to"),
    }


async def _executions(
    call: Call, filters: dict[str, Any], workflow: dict[str, Any] | None = None
) -> Response:
    """One operation: the page of processes and, for a workflow's executions, the workflow
    itself (so a missing one is NOT_FOUND, not an empty list)."""
    if workflow is not None and not call.principal.workspaces_with("process:read"):
        await run(call, GET_WORKFLOW.format("id"), workflow)  # NOT_FOUND before FORBIDDEN
    require(call, "process:read")
    paging = Paging.of(call)
    declared, lookup = "", ""
    if workflow is not None:
        declared = ", $id: UUID, $number: Int"
        lookup = "workflow(id: $id, number: $number) { id } "
        filters = {
            **filters,
            "workflowId": workflow.get("id"),
            "workflowNumber": workflow.get("number"),
        }
    document = (
        f"query({PAGE_VARS}, $filter: ProcessFilterInput{declared}) {{ {lookup}"
        f"processes({PAGE_ARGS}, filter: $filter) {{ {PAGE} nodes {{ {EXECUTION_FIELDS} }} }} }}"
    )
    data = await run(call, document, {**paging.variables(), "filter": filters, **(workflow or {})})
    connection = data["processes"]
    return ok([execution_json(p) for p in connection["nodes"]], meta=paging.meta(connection))


async def list_executions(call: Call) -> Response:
    filters = _execution_filter(call)
    workflow = None
    if call.query.get("workflow_id"):
        workflow = parse_id(call.query["workflow_id"], "workflow", "workflow_id")
    return await _executions(call, filters, workflow)


async def workflow_executions(call: Call) -> Response:
    filters = _execution_filter(call)
    return await _executions(call, filters, parse_id(call.path["id"], "workflow"))


# -- declared routes: one operation on the object `{id}` names -----------------------------------

GET = operation("workflow", "workflow", WORKFLOW_FIELDS)
DELETE = operation("workflow", "deleteWorkflow", "number", mutation=True)
GET_EXECUTION = operation("execution", "process", EXECUTION_DETAIL)

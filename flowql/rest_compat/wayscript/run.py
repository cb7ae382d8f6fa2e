"""Document 001, WayScript's classic "Run Program" webhook API: `POST /api?api_key=…&program_id=…`.

A program is a workflow (by its number), a function is one of its `webhook` triggers (by name),
and repeated `variables` fill the trigger's declared outputs in order. Errors answer
`{"Error": "<message>"}` like WayScript did.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

from flowql.errors import DomainError
from flowql.rest_compat.base import Call, Endpoint, OperationFailed
from flowql.rest_compat.errors import status_for
from flowql.rest_compat.openapi import query_param
from flowql.rest_compat.paging import all_nodes

MAX_INT = 2**31 - 1
SYNC_TIMEOUT = 300
TRUE = {"true", "1", "yes"}
FALSE = {"false", "0", "no", ""}

FINISHED = "Program finished."
STARTED = "Program started."
NOT_FOUND = "Program not found."
BAD_KEY = "Invalid API key."
SPECIFY = (
    "This program has multiple functions with Webhook Triggers. "
    "Please specify which function you would like to run with the `function` parameter."
)
INACTIVE = "The function you specify must have an active Webhook Trigger."

PROGRAM = """query($n: Int!) { workflow(number: $n) {
  id triggers { id type name active outputs } } }"""
EXECUTE = """mutation($id: UUID!, $input: JSON, $wait: Boolean!, $timeout: Float!, $trigger: UUID) {
  executeWorkflow(id: $id, input: $input, wait: $wait, waitTimeout: $timeout, triggerId: $trigger)
  { id status error } }"""
SINK_MESSAGES = (
    "messages(first: 100, after: $after, filter: {processId: $process})"
    " { {PAGE} nodes { payload agent { receivers { id } } } }"
)

ERROR_SCHEMA = {
    "type": "object",
    "required": ["Error"],
    "properties": {"Error": {"type": "string"}},
}
RESULT_SCHEMA = {
    "type": "object",
    "required": ["Success"],
    "properties": {
        "Success": {"type": "string", "enum": [FINISHED, STARTED]},
        "Result": {"type": "array"},
    },
}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refuse(status: int, message: str) -> Response:
    return JSONResponse({"Error": message}, status_code=status)


def program_id(call: Call) -> int:
    raw = call.query.get("program_id")
    if raw is None or raw == "":
        raise Refused(400, "Missing required parameter: program_id.")
    try:
        number = int(raw)
    except ValueError:
        raise Refused(400, "program_id must be an integer.") from None
    if not 0 < number <= MAX_INT:
        raise Refused(404, NOT_FOUND)
    return number


def run_async(call: Call) -> bool:
    raw = (call.query.get("run_async") or "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE:
        return False
    raise Refused(400, "run_async must be True or False.")


def pick_function(triggers: list[dict[str, Any]], function: str | None) -> dict[str, Any]:
    """The webhook trigger to run: the one named `function`, else the only active one."""
    webhooks = [t for t in triggers if t["type"] == "WEBHOOK"]
    if function:
        named = [t for t in webhooks if t["name"] == function and t["active"]]
        if not named:
            raise Refused(400, INACTIVE)
        return named[0]
    active = [t for t in webhooks if t["active"]]
    if len(active) > 1:
        raise Refused(400, SPECIFY)
    if not active:
        raise Refused(400, INACTIVE)
    return active[0]


def program_input(trigger: dict[str, Any], variables: list[str]) -> dict[str, Any]:
    outputs: list[str] = trigger["outputs"]
    if len(variables) > len(outputs):
        raise Refused(
            400,
            f"Too many variables: the Webhook Trigger of {trigger['name']!r} defines "
            f"{len(outputs)} output(s) and {len(variables)} were given.",
        )
    return dict(zip(outputs, variables, strict=False))


async def sink_payloads(call: Call, process_id: str) -> list[Any]:
    """What the program finished with: the payloads its final agents (no receivers) emitted."""
    nodes = await all_nodes(
        call, SINK_MESSAGES, "messages", {"process": process_id}, {"process": "UUID!"}
    )
    return [m["payload"] for m in reversed(nodes) if m["agent"] and not m["agent"]["receivers"]]


def refusal_for(failed: OperationFailed | DomainError) -> Response:
    status = status_for(failed.code)
    if status not in (401, 403, 404, 429):
        status = 400  # WayScript answers every other refusal as a bad request
    message = {401: BAD_KEY, 404: NOT_FOUND}.get(status, failed.message)
    return refuse(status, message)


async def run_program(call: Call) -> Response:
    auth_error: DomainError | None = getattr(call.request.state, "auth_error", None)
    if auth_error is not None or not call.principal.is_authenticated:
        return refuse(401, BAD_KEY)
    try:
        number = program_id(call)
        asynchronous = run_async(call)
        workflow = (await call.run(PROGRAM, {"n": number}))["workflow"]
        trigger = pick_function(workflow["triggers"], call.query.get("function"))
        variables = {
            "id": workflow["id"],
            "input": program_input(trigger, call.query.getlist("variables")),
            "wait": not asynchronous,
            "timeout": SYNC_TIMEOUT,
            "trigger": trigger["id"],
        }
        process = (await call.run(EXECUTE, variables))["executeWorkflow"]
        if asynchronous:
            return JSONResponse({"Success": STARTED})
        if process["status"] == "COMPLETED":
            return JSONResponse(
                {"Success": FINISHED, "Result": await sink_payloads(call, process["id"])}
            )
        if process["status"] in ("FAILED", "CANCELLED"):
            return refuse(500, f"Program failed: {process['error'] or process['status'].lower()}")
        # Still running after the wait: it goes on in the background.
        return JSONResponse({"Success": STARTED}, status_code=202)
    except Refused as refused:
        return refuse(refused.status, refused.message)
    except (OperationFailed, DomainError) as failed:
        return refusal_for(failed)


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR_SCHEMA}},
    }


ENDPOINTS = [
    Endpoint(
        "POST",
        "/api",
        "Run Program",
        handler=run_program,
        public=True,  # authenticates with ?api_key= itself, to answer in WayScript's format
        openapi={
            "parameters": [
                {
                    **query_param("api_key", {"type": "string"}),
                    "description": "Your API key (a flowql API key or access token); an "
                    "Authorization: Bearer header works too",
                },
                query_param("program_id", {"type": "integer"}, required=True),
                {
                    **query_param("variables", {"type": "array", "items": {"type": "string"}}),
                    "style": "form",
                    "explode": True,
                },
                query_param("function", {"type": "string"}),
                query_param("run_async", {"type": "string", "enum": ["True", "False"]}),
            ],
            "responses": {
                "200": {
                    "description": '{"Success": "Program finished.", "Result": [...]} or, with '
                    'run_async=True, {"Success": "Program started."}',
                    "content": {"application/json": {"schema": RESULT_SCHEMA}},
                },
                "202": {
                    "description": "Still running when the synchronous wait ran out",
                    "content": {"application/json": {"schema": RESULT_SCHEMA}},
                },
                "400": error_response(
                    "Bad parameters, an ambiguous function, or no active Webhook Trigger"
                ),
                "401": error_response("Missing or invalid API key"),
                "403": error_response("The key may not run programs"),
                "404": error_response("Program not found"),
                "500": error_response("The program failed"),
            },
        },
    ),
]

"""Inbound triggers over HTTP: `/hooks/{workflow}/{path}`.

A `webhook` trigger answers 202 at once with the process id; an `http` trigger holds the caller's
request open until a `respond` agent answers (or the process ends, or its timeout passes).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowql import jsonsafe
from flowql.agents.core import HttpTriggerOptions
from flowql.agents.templating import TemplateError
from flowql.engine.dispatch import InlineDispatcher
from flowql.engine.plans import HookPlan, PlanCache
from flowql.engine.writeset import Lost
from flowql.errors import DomainError
from flowql.models import (
    TERMINAL_STATUSES,
    Agent,
    Process,
    ProcessStatus,
    TriggerType,
)
from flowql.services import hooks
from flowql.services.processes import StartRequest, start_process
from flowql.services.runtime import Runtime
from flowql.services.uow import unit_of_work
from flowql.services.waiting import responded, wait_for_process

PRIVATE_HEADERS = {"authorization", "cookie", "x-flowql-secret", "x-flowql-signature"}
MAX_BODY = 1024 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _authentic(runtime: Runtime, agent: Agent, request: Request, body: bytes) -> bool:
    secret = request.headers.get("x-flowql-secret") or request.query_params.get("secret") or ""
    signature = request.headers.get("x-flowql-signature", "")
    return hooks.authentic(runtime.box, agent, secret, signature, body)


async def _payload(request: Request, body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = {k: v for k, v in request.query_params.items() if k != "secret"}
    content_type = request.headers.get("content-type", "")
    if not body:
        return payload
    if "json" in content_type:
        # BodyGuard decoded it already (flowql/guards.py) when the media type is JSON's.
        state = request.scope.get("state") or {}
        data = state["json_body"] if "json_body" in state else jsonsafe.loads(body)
        payload.update(data if isinstance(data, dict) else {"body": data})
    elif (
        "application/x-www-form-urlencoded" in content_type or "multipart/form-data" in content_type
    ):
        form = await request.form()
        payload.update({k: v for k, v in form.items() if isinstance(v, str)})
    else:
        payload["body"] = body.decode(errors="replace")
    return payload


def _verb_allowed(agent: Agent, method: str) -> bool:
    """Huginn's `verbs` ("post,put" or a list); unset accepts any method."""
    verbs = agent.options.get("verbs")
    if not verbs:
        return True
    listed = verbs if isinstance(verbs, list) else str(verbs).split(",")
    return method.lower() in {str(v).strip().lower() for v in listed}


def _at_path(payload: dict[str, Any], path: str) -> dict[str, Any]:
    """Huginn's `payload_path`: the dotted path's value ("." the whole payload); an object is
    the message, anything else is kept under `payload`."""
    value: Any = payload
    if path.strip() not in ("", "."):
        for key in path.strip().strip(".").split("."):
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                value = None
    return value if isinstance(value, dict) else {"payload": value}


def _huginn_answer(options: dict[str, Any]) -> Response:
    """Huginn's answer: `code` (201 unless given) with `response` as the body, or a redirect to
    it for a 3xx code."""
    try:
        code = int(options.get("code") or 201)
    except (TypeError, ValueError):
        code = 201
    if not 200 <= code <= 599:
        code = 201
    text = str(options.get("response") if options.get("response") is not None else "Event Created")
    headers = {str(k): str(v) for k, v in (options.get("response_headers") or {}).items()}
    if 300 <= code < 400:
        headers["Location"] = text
        return Response(status_code=code, headers=headers)
    media = headers.pop("Content-Type", headers.pop("content-type", "text/plain; charset=utf-8"))
    return Response(text, status_code=code, headers=headers, media_type=media)


def _meta(request: Request, path: str) -> dict[str, Any]:
    return {
        "method": request.method,
        "path": path,
        "query": dict(request.query_params),
        "headers": {k: v for k, v in request.headers.items() if k.lower() not in PRIVATE_HEADERS},
        "client": request.client.host if request.client else None,
    }


def _respond(response: dict[str, Any]) -> Response:
    body = response.get("body")
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    status = int(response.get("status", 200))
    if isinstance(body, str):
        media = headers.pop(
            "content-type", headers.pop("Content-Type", "text/plain; charset=utf-8")
        )
        return Response(body, status_code=status, headers=headers, media_type=media)
    return JSONResponse(body, status_code=status, headers=headers)


def hook_routes(runtime: Runtime, plans: PlanCache | None = None) -> list[Route]:
    """The `/hooks` route; `plans` caches what each address starts (engine/plans.py)."""
    cache = plans or PlanCache(runtime.db)

    async def receive(request: Request) -> Response:
        workflow_ref = request.path_params["workflow"]
        path = request.path_params["path"]
        plan = await cache.get(workflow_ref, path)
        if plan is None:
            return _error(404, "no active webhook or http trigger at this address")
        definition, trigger, agent = plan.definition, plan.trigger, plan.agent
        try:
            body = await request.body()
        except ClientDisconnect:  # the caller left: nobody to answer, nothing to start
            return Response(status_code=499)
        if len(body) > MAX_BODY:
            return _error(413, "request body too large")
        if not _authentic(runtime, agent, request, body):
            return _error(401, "invalid webhook secret or signature")
        if trigger.type is TriggerType.WEBHOOK and not _verb_allowed(agent, request.method):
            return _error(405, f"{request.method} is not accepted here")
        try:
            payload = await _payload(request, body)
        except (ValueError, UnicodeDecodeError):
            return _error(400, "request body is not valid JSON")
        if trigger.type is TriggerType.WEBHOOK and agent.options.get("payload_path"):
            payload = _at_path(payload, str(agent.options["payload_path"]))
        start = StartRequest(
            workflow=definition.workflow,
            input=payload,
            trigger=trigger,
            idempotency_key=request.headers.get("idempotency-key"),
            event_meta=_meta(request, path),
            privileges=list(plan.privileges),
        )
        options = plan.http
        if options is not None:
            dispatcher = runtime.dispatcher
            if isinstance(dispatcher, InlineDispatcher) and not start.idempotency_key:
                return await _run_here(runtime, dispatcher, start, plan, options)
        try:
            async with unit_of_work(runtime) as uow:
                process, _ = await start_process(uow, runtime, start)
        except (DomainError, TemplateError) as exc:
            return _error(400, str(exc))
        if trigger.type is TriggerType.WEBHOOK:
            if "response" in agent.options or "code" in agent.options:
                return _huginn_answer(agent.options)
            return JSONResponse(
                {"process_id": str(process.id), "status": process.status.value}, status_code=202
            )
        assert options is not None
        done = await wait_for_process(runtime, process.id, responded, options.timeout_seconds)
        return _http_answer(done)

    return [
        Route(
            "/hooks/{workflow}/{path:path}",
            receive,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        )
    ]


async def _run_here(
    runtime: Runtime,
    dispatcher: InlineDispatcher,
    start: StartRequest,
    plan: HookPlan,
    options: HttpTriggerOptions,
) -> Response:
    """Start and run the process in this server: its start commits with its local steps, and
    the caller is answered as soon as a commit holds the response (no bus round trip)."""
    deadline = time.monotonic() + options.timeout_seconds
    run = dispatcher.runner.begin(start, plan.trigger, plan.definition)
    try:
        process = await dispatcher.start_run(run)
    except (Lost, asyncio.CancelledError):
        return _error(503, "the process could not be started; try again")
    if process is None:
        return _error(503, "the server is shutting down; try again")
    if responded(process):
        return _http_answer(process)
    remaining = max(0.0, deadline - time.monotonic())
    return _http_answer(await wait_for_process(runtime, process.id, responded, remaining))


def _http_answer(process: Process) -> Response:
    if process.response is not None:
        return _respond(process.response)
    if process.status is ProcessStatus.COMPLETED:
        return JSONResponse(process.output or {}, status_code=200)
    if process.status in TERMINAL_STATUSES:
        return JSONResponse(
            {"error": process.error or process.status.value, "process_id": str(process.id)},
            status_code=502,
        )
    return JSONResponse(
        {"error": "the workflow did not respond in time", "process_id": str(process.id)},
        status_code=504,
    )

"""Triggers between worlds.

- A scenario state's `notify` naming a flowql workflow (by name, or `workflow:<id|number>`)
  starts that workflow on entry, with the scenario process as input; the start is logged in the
  scenario process's log and the new process points back to it.
- The `scenario_action` agent performs an action on a scenario process as a service actor; it
  appears in that process's history like any action.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select

from flowql.models import LogLevel, ProcessLog, Workflow
from flowql.services.processes import StartRequest, start_process
from flowql.services.runtime import Runtime
from flowql.services.scenarios.access import system_principal
from flowql.services.scenarios.hooks import StateEntered
from flowql.services.scenarios.runner import ActionSkipped, perform_action
from flowql.services.uow import unit_of_work

WORKFLOW_PREFIX = "workflow:"


async def _workflow_named(
    runtime: Runtime, workspace_id: uuid.UUID, service: str
) -> Workflow | None:
    ref = service.removeprefix(WORKFLOW_PREFIX)
    stmt = select(Workflow).where(Workflow.workspace_id == workspace_id)
    if service.startswith(WORKFLOW_PREFIX):
        try:
            stmt = stmt.where(col(Workflow.id) == uuid.UUID(ref))
        except ValueError:
            if not ref.isdigit():
                return None
            stmt = stmt.where(col(Workflow.number) == int(ref))
    else:
        stmt = stmt.where(Workflow.name == ref)
    async with runtime.db.read() as session:
        return (await session.exec(stmt.order_by(col(Workflow.number)))).first()


async def start_notified_workflows(runtime: Runtime, entered: StateEntered) -> None:
    events = len(entered.process.get("events") or [])
    for index, notify in enumerate(entered.notify):
        service = notify.get("service")
        if not isinstance(service, str):
            continue
        workflow = await _workflow_named(runtime, entered.workspace_id, service)
        if workflow is None:
            continue
        async with unit_of_work(runtime) as uow:
            process, created = await start_process(
                uow,
                runtime,
                StartRequest(
                    workflow=workflow,
                    input={
                        "scenario_process_id": str(entered.process_id),
                        "state": entered.state,
                        "message": notify.get("message"),
                        "process": entered.process,
                    },
                    # One start per notification, however often the hook runs.
                    idempotency_key=f"notify:{entered.process_id}:{events}:{index}",
                    event_meta={
                        "scenario_process_id": str(entered.process_id),
                        "state": entered.state,
                        "service": service,
                    },
                    title=f"{workflow.name} (notified by {entered.state})",
                ),
            )
            if created:
                uow.session.add(
                    ProcessLog(
                        workspace_id=entered.workspace_id,
                        process_id=entered.process_id,
                        level=LogLevel.INFO,
                        message=f"notify {service}: started workflow {workflow.name!r} as process {process.id}",
                        data={
                            "workflow_id": str(workflow.id),
                            "process_id": str(process.id),
                            "state": entered.state,
                        },
                    )
                )


async def perform_scenario_action(
    runtime: Runtime,
    workspace_id: uuid.UUID,
    process_id: str,
    action: str,
    actor: str,
    response: Any,
) -> dict[str, Any]:
    """What the `scenario_action` agent does; a refused action fails the step with its reasons."""
    try:
        target = uuid.UUID(process_id)
    except ValueError:
        raise ValueError(f"process_id {process_id!r} is not a UUID") from None
    try:
        outcome = await perform_action(
            runtime, system_principal(workspace_id), target, action, actor=actor, response=response
        )
    except ActionSkipped as skipped:
        raise ValueError(skipped.message) from None
    return {
        "process_id": str(outcome.process.id),
        "action": action,
        "state": outcome.process.state,
        "status": outcome.process.status.value,
        "event_id": str(outcome.event.id),
    }


def install(runtime: Runtime) -> None:
    if start_notified_workflows not in runtime.state_entered_hooks:
        runtime.state_entered_hooks.append(start_notified_workflows)

"""What a commander agent does to the agents it controls (its control links, Huginn's
`control_links`): run them (a process entering at each, as its schedule would), enable or
disable them, or merge options into theirs. Targets are agents of the commander's own workflow.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlmodel import col, select

from flowql.agents.registry import validate_options
from flowql.models import Agent, Process, Trigger, Workflow, utcnow
from flowql.services.processes import StartRequest, start_process
from flowql.services.runtime import Runtime
from flowql.services.triggers import sync_trigger
from flowql.services.uow import unit_of_work
from flowql.services.workflows import seal_secret_options


def _target_ids(agent: Agent) -> list[uuid.UUID]:
    ids = []
    for value in agent.control_target_ids:
        try:
            ids.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return ids


async def control_targets(
    runtime: Runtime, process: Process, agent: Agent, action: str, configure: dict[str, Any]
) -> list[str]:
    ids = _target_ids(agent)
    if not ids:
        return []
    done: list[str] = []
    async with unit_of_work(runtime) as uow:
        session = uow.session
        targets = (
            await session.exec(
                select(Agent)
                .where(col(Agent.id).in_(ids))
                .where(Agent.workflow_id == agent.workflow_id)
                .order_by(col(Agent.number))
            )
        ).all()
        if action == "run":
            workflow = (
                await session.exec(select(Workflow).where(Workflow.id == agent.workflow_id))
            ).one()
            for target in targets:
                trigger = (
                    await session.exec(select(Trigger).where(Trigger.agent_id == target.id))
                ).first()
                if trigger is None or target.disabled:
                    done.append(f"{target.name}: not run (disabled, or no schedule to run)")
                    continue
                started, _ = await start_process(
                    uow,
                    runtime,
                    StartRequest(
                        workflow=workflow,
                        input={"commanded_by": agent.name},
                        trigger=trigger,
                        event_meta={"commander": str(agent.id), "process": str(process.id)},
                        privileges=process.privileges,
                    ),
                )
                done.append(f"{target.name}: run (process {started.id})")
            return done
        for target in targets:
            if action in ("enable", "disable"):
                target.disabled = action == "disable"
                parsed = validate_options(target.type, target.options)
            else:  # configure
                options = {**target.options, **configure}
                parsed = validate_options(target.type, options)
                target.options = seal_secret_options(
                    runtime.box, target.type, options, target.options
                )
            target.updated_at = utcnow()
            session.add(target)
            await sync_trigger(session, target, parsed)
            done.append(f"{target.name}: {action}d")
    return done

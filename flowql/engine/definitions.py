"""A workflow's definition as one run sees it: the workflow, its agents and who receives whose
messages, loaded once per run (three reads) instead of once per step.

A run holds its definition for its whole length: an edit made while a process runs is seen by
the processes started (or resumed) after it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session
from sqlmodel import col, select

from flowql.agents.base import StepFailed
from flowql.models import Agent, AgentSource, Trigger, Workflow


@dataclass(frozen=True)
class Definition:
    workflow: Workflow
    agents: dict[uuid.UUID, Agent]
    # source agent id -> its receivers (enabled or not), in agent order
    receivers: dict[uuid.UUID, list[Agent]] = field(default_factory=dict)

    def receivers_of(self, agent: Agent, route_to: str | None) -> list[Agent]:
        """Who gets `agent`'s messages: every enabled receiver, or only the switch's choice."""
        receivers = [a for a in self.receivers.get(agent.id, []) if not a.disabled]
        if route_to is None:
            return receivers
        chosen = [a for a in receivers if a.name == route_to]
        if not chosen:
            raise StepFailed(
                f"switch target {route_to!r} is not an enabled receiver of {agent.name}"
            )
        return chosen

    def entry_agents(self, trigger: Trigger) -> list[Agent]:
        agent = self.agents.get(trigger.agent_id) if trigger.agent_id else None
        return [agent] if agent is not None and not agent.disabled else []

    def sink_output(self, messages: Iterable[tuple[uuid.UUID, dict[str, Any]]]) -> Any:
        """A finished process's output without a respond step: the payloads of the sink agents
        (those nothing receives from), one object when there is one sink."""
        sinks: dict[str, Any] = {}
        seen = False
        for agent_id, payload in messages:
            seen = True
            agent = self.agents.get(agent_id)
            if agent is not None and agent_id not in self.receivers:
                sinks[agent.name] = payload
        if not seen:
            return None
        if len(sinks) == 1:
            return dict(next(iter(sinks.values())))
        return sinks or None


def load_definition(
    session: Session, workflow_id: uuid.UUID, workflow: Workflow | None = None
) -> Definition | None:
    """Runs inside `Database.lookup` (a synchronous session)."""
    if workflow is None:
        workflow = session.scalars(select(Workflow).where(Workflow.id == workflow_id)).first()
        if workflow is None:
            return None
    agents = session.scalars(
        select(Agent).where(Agent.workflow_id == workflow_id).order_by(col(Agent.number))
    ).all()
    by_id = {agent.id: agent for agent in agents}
    links = session.execute(
        select(AgentSource.source_id, AgentSource.receiver_id)
        .join(Agent, col(Agent.id) == col(AgentSource.receiver_id))
        .where(Agent.workflow_id == workflow_id)
    ).all()
    receivers: dict[uuid.UUID, list[Agent]] = {}
    for source_id, receiver_id in links:
        receivers.setdefault(source_id, []).append(by_id[receiver_id])
    for listed in receivers.values():
        listed.sort(key=lambda a: a.number or 0)
    return Definition(workflow=workflow, agents=by_id, receivers=receivers)

"""Compiled hook plans: what `/hooks/{workflow}/{path}` needs to start a run, read once.

A plan is the active webhook or http trigger at an address, its published workflow's definition
(agents and links), what a process of it may do, and the trigger's validated options. A request
to a known address reads nothing from the database: it takes the plan from this cache.

A plan is stale as soon as this process writes a table it was read from (workflows, agents,
agent_sources, triggers, memberships, users: `db.PlanClock`), so an edit, a publish, a trigger
switched off or a role changed here is seen by the next request. Edits made by another process
on the same database: with the PostgreSQL bus (FLOWQL_BUS=postgres, what several processes
run with) its commit is announced on the bus and this process's clock moves as the notice
arrives (milliseconds); otherwise (the CLI beside a SQLite server, say) within `db.CACHE_TTL`
seconds, the longest a plan is kept unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from flowql.agents.core import HttpTriggerOptions
from flowql.db import Database
from flowql.engine.definitions import Definition, load_definition
from flowql.models import Agent, Trigger, TriggerType
from flowql.services import hooks
from flowql.services.delegation import process_privileges_sync


@dataclass(frozen=True)
class HookPlan:
    definition: Definition
    trigger: Trigger
    agent: Agent
    # What a process started here may do (nobody starts a hook: the last editor's privileges).
    privileges: tuple[str, ...]
    # The http trigger's options, validated (None for a webhook trigger).
    http: HttpTriggerOptions | None


def _compile(session: Session, workflow_ref: str, path: str) -> HookPlan | None:
    found = hooks.find_hook(session, workflow_ref, path)
    if found is None:
        return None
    workflow, trigger = found
    definition = load_definition(session, workflow.id, workflow)
    if definition is None or trigger.agent_id not in definition.agents:
        return None
    agent = definition.agents[trigger.agent_id]
    privileges = process_privileges_sync(session, workflow, None)
    http = None
    if trigger.type is TriggerType.HTTP:
        http = HttpTriggerOptions.model_validate(agent.options)
    return HookPlan(definition, trigger, agent, tuple(privileges), http)


class PlanCache:
    """Hook plans by (workflow reference, path); absent addresses are remembered too."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.compiled = 0  # plans compiled (read from the database), for tests

    async def get(self, workflow_ref: str, path: str) -> HookPlan | None:
        key = ("hook", workflow_ref, path)
        clock = self.db.plan_clock
        known, kept = clock.recall(key)
        if known:
            return kept if isinstance(kept, HookPlan) else None
        generation = clock.generation
        plan = await self.db.lookup(lambda session: _compile(session, workflow_ref, path))
        self.compiled += 1
        clock.keep(key, generation, plan)
        return plan

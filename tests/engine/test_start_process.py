"""One `start_process` for every kind of process: a workflow's (StartRequest) and a scenario's
(ScenarioStart) both start through services.processes, the one process service module."""

from __future__ import annotations

import importlib

import pytest
from sqlmodel import select

from flowql.auth.principal import Principal, PrincipalKind
from flowql.errors import NotFound
from flowql.models import Process, ProcessStatus, Workflow
from flowql.services.processes import (
    ProcessFilter,
    ScenarioStart,
    StartRequest,
    list_statement,
    start_process,
)
from flowql.services.runtime import NullDispatcher, Runtime
from flowql.services.scenarios import store_scenario
from flowql.services.uow import unit_of_work
from tests.conftest import Factory

SCENARIO = """
states:
  initial:
    on: complete
    goto: (done)
"""


def test_process_code_lives_in_one_service_module() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("flowql.services.execution")
    scenarios = importlib.import_module("flowql.services.scenarios")
    assert not hasattr(scenarios, "start_process")


async def test_one_start_process_starts_workflows_and_scenarios(
    runtime: Runtime, factory: Factory
) -> None:
    runtime.dispatcher = NullDispatcher()
    account = await factory.account()
    ws = account.workspace_id
    principal = Principal(
        kind=PrincipalKind.SYSTEM,
        grants={ws: frozenset({"process:read", "process:run", "scenario:read", "scenario:write"})},
    )
    async with runtime.db.transaction() as session:
        workflow = Workflow(workspace_id=ws, name="one start")
        session.add(workflow)
        scenario = await store_scenario(session, principal, workspace_id=ws, yaml_text=SCENARIO)

    async with unit_of_work(runtime) as uow:
        row = (await uow.session.exec(select(Workflow).where(Workflow.id == workflow.id))).one()
        started, created = await start_process(
            uow, runtime, StartRequest(workflow=row, input={"n": 1}, idempotency_key="k")
        )
    assert created and started.status is ProcessStatus.PENDING
    async with unit_of_work(runtime) as uow:
        row = (await uow.session.exec(select(Workflow).where(Workflow.id == workflow.id))).one()
        again, created = await start_process(
            uow, runtime, StartRequest(workflow=row, input={}, idempotency_key="k")
        )
    assert not created and again.id == started.id

    async with unit_of_work(runtime) as uow:
        outcome = await start_process(uow, runtime, ScenarioStart(principal, scenario.number))
    assert outcome.process.status is ProcessStatus.WAITING
    assert outcome.process.state == "initial"
    async with unit_of_work(runtime) as uow:
        done = await start_process(
            uow, runtime, ScenarioStart(principal, scenario.id, action="complete")
        )
    assert done.process.status is ProcessStatus.COMPLETED

    # A first action that fails stores nothing.
    with pytest.raises(NotFound):
        async with unit_of_work(runtime) as uow:
            await start_process(uow, runtime, ScenarioStart(principal, scenario.id, action="nope"))

    async with runtime.db.read() as session:
        rows = (await session.exec(list_statement(principal, ProcessFilter()))).all()
    kinds = sorted(("scenario" if p.scenario_id else "workflow", p.status.value) for p in rows)
    assert kinds == [("scenario", "COMPLETED"), ("scenario", "WAITING"), ("workflow", "PENDING")]
    assert all(isinstance(p, Process) for p in rows)

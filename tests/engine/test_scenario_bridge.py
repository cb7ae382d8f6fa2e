"""Triggers between worlds: a scenario state's notify starts a flowql workflow, and a workflow's
`scenario_action` agent performs an action; both show in the scenario process's history."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Account, Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, wait_status
from tests.scenarios.conftest import ScenarioClient

BRIDGE = """
title: Bridged approval
vars:
  request: object
actors:
  requester: {}
actions:
  submit:
    actor: requester
    response:
      properties:
        item: !required string
    update: vars.request
  approve:
    actor: service:approver
states:
  initial:
    on: submit
    goto: review
  review:
    title: Waiting for the robot
    notify:
      - service: Notify reviewer
        message: !tpl 'Please look at {{ vars.request.item }}'
    on: approve
    goto: (done)
"""


async def scenario_logs(server: LiveServer, account: Account, process_id: str) -> list[str]:
    body = await server.gql(
        "query($id: UUID!) { process(id: $id) { logs { message } } }",
        {"id": process_id},
        token=account.token,
    )
    return [line["message"] for line in body["data"]["process"]["logs"]]


async def test_notify_starts_the_workflow_and_an_agent_performs_the_action(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    scenarios = ScenarioClient(server)
    notified = await create_workflow(
        server,
        account.token,
        "Notify reviewer",
        [
            {
                "name": "note",
                "type": "transform",
                "options": {
                    "payload": {
                        "text": "{{ message.message }}",
                        "scenario": "{{ message.scenario_process_id }}",
                    }
                },
            },
        ],
    )
    robot = await create_workflow(
        server,
        account.token,
        "Robot approver",
        [
            {
                "name": "approve it",
                "type": "scenario_action",
                "options": {
                    "process_id": "{{ message.process_id }}",
                    "action": "approve",
                    "actor": "service:approver",
                },
            },
        ],
    )
    scenario = await scenarios.store(account.token, yaml=BRIDGE)
    started = await scenarios.start(
        account.token,
        scenario["id"],
        {"requester": {"userId": str(account.user_id), "title": "Me"}},
    )
    await scenarios.act(account.token, started["id"], "submit", {"item": "a new laptop"})

    runs: list[dict[str, Any]] = []
    for _ in range(100):
        listed = await server.gql(
            "query($wf: UUID!) { processes(filter: {workflowId: $wf}) { nodes { id status output input } } }",
            {"wf": notified["id"]},
            token=account.token,
        )
        runs = listed["data"]["processes"]["nodes"]
        if runs and runs[0]["status"] == "COMPLETED":
            break
        await asyncio.sleep(0.1)
    assert len(runs) == 1
    assert runs[0]["output"] == {"text": "Please look at a new laptop", "scenario": started["id"]}
    assert runs[0]["input"]["state"] == "review"
    assert any(
        "notify Notify reviewer" in line
        for line in await scenario_logs(server, account, started["id"])
    )

    done = await execute(server, account.token, robot["id"], {"process_id": started["id"]})
    assert done["status"] == "COMPLETED", done
    assert done["output"]["state"] == "(done)"
    after = await scenarios.process(account.token, started["id"])
    assert after["status"] == "COMPLETED"
    approve = [e for e in after["history"] if e["action"] == "approve"]
    assert len(approve) == 1 and not approve[0]["skipped"]
    assert "service:approver" in str(approve[0]["actor"])


async def test_refused_scenario_action_fails_the_step(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    scenarios = ScenarioClient(server)
    robot = await create_workflow(
        server,
        account.token,
        "Too early",
        [
            {
                "name": "approve it",
                "type": "scenario_action",
                "options": {
                    "process_id": "{{ message.process_id }}",
                    "action": "approve",
                    "actor": "service:approver",
                },
            },
        ],
    )
    scenario = await scenarios.store(account.token, yaml=BRIDGE)
    started = await scenarios.start(
        account.token, scenario["id"], {"requester": {"userId": str(account.user_id)}}
    )
    failed = await execute(server, account.token, robot["id"], {"process_id": started["id"]})
    assert failed["status"] == "FAILED"
    assert "skipped" in failed["error"]
    history = (await scenarios.process(account.token, started["id"]))["history"]
    assert [e["skipped"] for e in history if e["action"] == "approve"] == [True]
    await wait_status(server, account.token, started["id"], {"WAITING"})

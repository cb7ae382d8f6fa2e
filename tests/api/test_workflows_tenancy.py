"""Workflows, agents, triggers, processes and messages: invisible and untouchable from another
workspace, and invalid input writes nothing."""

from __future__ import annotations

import hashlib
import hmac

from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute


async def test_other_workspaces_cannot_read_or_change_workflow_objects(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    workflow = await create_workflow(
        server,
        owner.token,
        "private",
        [
            {"name": "hook", "type": "webhook", "options": {"path": "in"}},
            {"name": "m", "type": "message", "sources": ["hook"]},
        ],
    )
    process = await execute(server, owner.token, workflow["id"], {"secret": "plans"})
    detail = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { triggers { id } agents { id } } process: processes { nodes { id } } "
        "messages { nodes { id } } }",
        {"id": workflow["id"]},
        token=owner.token,
    )
    trigger_id = detail["data"]["workflow"]["triggers"][0]["id"]
    agent_id = detail["data"]["workflow"]["agents"][1]["id"]
    message_id = detail["data"]["messages"]["nodes"][0]["id"]
    reads = [
        ("query($id: UUID!) { workflow(id: $id) { id } }", workflow["id"]),
        ("query($id: UUID!) { agent(id: $id) { id } }", agent_id),
        ("query($id: UUID!) { process(id: $id) { id } }", process["id"]),
        ("query($id: UUID!) { message(id: $id) { id } }", message_id),
    ]
    writes = [
        (
            'mutation($id: UUID!) { updateWorkflow(id: $id, input: {name: "x"}) { id } }',
            workflow["id"],
        ),
        ("mutation($id: UUID!) { deleteWorkflow(id: $id) { id } }", workflow["id"]),
        ('mutation($id: UUID!) { updateAgent(id: $id, input: {name: "x"}) { id } }', agent_id),
        ("mutation($id: UUID!) { deleteAgent(id: $id) { id } }", agent_id),
        (
            "mutation($id: UUID!) { updateTrigger(id: $id, input: {active: false}) { id } }",
            trigger_id,
        ),
        ("mutation($id: UUID!) { deleteTrigger(id: $id) { id } }", trigger_id),
        ("mutation($id: UUID!) { executeWorkflow(id: $id) { id } }", workflow["id"]),
        ("mutation($id: UUID!) { retryProcess(id: $id) { id } }", process["id"]),
        ("mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken } }", process["id"]),
        (
            'mutation($id: UUID!) { createAgent(input: {workflowId: $id, name: "spy", type: "message"}) { id } }',
            workflow["id"],
        ),
    ]
    for query, ident in reads + writes:
        body = await server.gql(query, {"id": ident}, token=stranger.token, expect_errors=True)
        assert body["errors"][0]["extensions"]["code"] == "NOT_FOUND", (query, body)
        assert "plans" not in str(body)
    lists = await server.gql(
        "{ workflows { totalCount } agents { totalCount } processes { totalCount } messages { totalCount } }",
        token=stranger.token,
    )
    assert all(v["totalCount"] == 0 for v in lists["data"].values())
    still = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { name agents { name } triggers { active } } }",
        {"id": workflow["id"]},
        token=owner.token,
    )
    assert still["data"]["workflow"] == {
        "name": "private",
        "agents": [{"name": "hook"}, {"name": "m"}],
        "triggers": [{"active": True}],
    }


async def test_trigger_mutations_manage_trigger_agents(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "t", [{"name": "m", "type": "message"}])
    created = await server.gql(
        """mutation($wf: UUID!) { createTrigger(input: {workflowId: $wf, type: SCHEDULE, name: "nightly",
             options: {cron: "0 3 * * *"}}) { id type name path active nextRunAt } }""",
        {"wf": workflow["id"]},
        token=account.token,
    )
    trigger = created["data"]["createTrigger"]
    assert trigger["type"] == "SCHEDULE" and trigger["path"] == "0 3 * * *" and trigger["nextRunAt"]
    updated = await server.gql(
        "mutation($id: UUID!) { updateTrigger(id: $id, input: {active: false}) { active } }",
        {"id": trigger["id"]},
        token=account.token,
    )
    assert updated["data"]["updateTrigger"]["active"] is False
    bad = await server.gql(
        'mutation($id: UUID!) { updateTrigger(id: $id, input: {options: {cron: "soon"}}) { id } }',
        {"id": trigger["id"]},
        token=account.token,
        expect_errors=True,
    )
    assert bad["errors"][0]["extensions"]["fields"] == {
        "options.cron": "Value error, not a valid cron expression"
    }
    await server.gql(
        "mutation($id: UUID!) { deleteTrigger(id: $id) { id } }",
        {"id": trigger["id"]},
        token=account.token,
    )
    left = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { triggers { id } agents { name } } }",
        {"id": workflow["id"]},
        token=account.token,
    )
    assert left["data"]["workflow"] == {"triggers": [], "agents": [{"name": "m"}]}


async def test_webhook_secret_and_hmac_signature_are_checked(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "guarded",
        [
            {
                "name": "shared",
                "type": "webhook",
                "options": {"path": "shared", "secret": "s3cret"},
            },
            {
                "name": "signed",
                "type": "webhook",
                "options": {"path": "signed", "hmac_secret": "k3y"},
            },
        ],
    )
    base = f"/hooks/{workflow['id']}"
    assert (await server.client.post(f"{base}/shared", json={})).status_code == 401
    assert (
        await server.client.post(f"{base}/shared", json={}, headers={"X-Flowql-Secret": "nope"})
    ).status_code == 401
    assert (
        await server.client.post(f"{base}/shared", json={}, headers={"X-Flowql-Secret": "s3cret"})
    ).status_code == 202
    body = b'{"order": 7}'
    good = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json"}
    assert (
        await server.client.post(f"{base}/signed", content=body, headers=headers)
    ).status_code == 401
    forged = {**headers, "X-Flowql-Signature": "sha256=" + "0" * 64}
    assert (
        await server.client.post(f"{base}/signed", content=body, headers=forged)
    ).status_code == 401
    signed = {**headers, "X-Flowql-Signature": f"sha256={good}"}
    assert (
        await server.client.post(f"{base}/signed", content=body, headers=signed)
    ).status_code == 202
    shown = await server.gql(
        "query($id: UUID!) { workflow(id: $id) { agents { options } } }",
        {"id": workflow["id"]},
        token=account.token,
    )
    assert "s3cret" not in str(shown) and "k3y" not in str(shown)
    assert (await server.client.post(f"{base}/unknown", json={})).status_code == 404

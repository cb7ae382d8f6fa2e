"""A hook's workflow definition is compiled once (engine/plans.py): requests to a known address
read nothing from the database, and an edit (an agent's options, the workflow's status, the
trigger switched off, a webhook subscription) is seen by the very next request."""

from __future__ import annotations

from typing import Any

import pytest

from flowql.settings import Settings
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow
from tests.engine.test_round_trips import counted_call, describe, three_agents


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No scheduler ticks while counting: only the request's own statements are recorded."""
    settings.scheduler_interval = 3600
    return settings


@pytest.fixture
def server(server: LiveServer) -> LiveServer:
    # Cached reads are otherwise re-checked every second (edits by other processes): long
    # enough here that a slow test machine never sees a re-read it did not cause.
    server.runtime.db.plan_clock.ttl = 3600
    return server


def reads(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


async def answer(server: LiveServer, workflow_id: str, path: str) -> tuple[int, Any]:
    response = await server.client.post(f"/hooks/{workflow_id}/{path}", json={"name": "Ada"})
    return response.status_code, response.json()


async def test_a_known_hook_reads_nothing(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "plan", three_agents("plan"))
    await counted_call(server, workflow["id"], "plan", {"name": "warm"})

    for name in ("Ada", "Bo", "Cy"):
        body, statements, commits = await counted_call(
            server, workflow["id"], "plan", {"name": name}
        )
        assert body == {"name": name, "greeting": f"Hello {name}"}
        # No workflow, agent, link, role or subscription read: only the run's write set.
        assert reads(statements) == [], describe(statements)
        assert commits == 1


async def test_edits_are_seen_by_the_next_request(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "edit", three_agents("edit"))
    detail = await server.gql(
        """query($id: UUID!) { workflow(id: $id) { agents { id name } triggers { id } } }""",
        {"id": workflow["id"]},
        token=account.token,
    )
    agents = {a["name"]: a["id"] for a in detail["data"]["workflow"]["agents"]}
    trigger_id = detail["data"]["workflow"]["triggers"][0]["id"]
    assert await answer(server, workflow["id"], "edit") == (
        200,
        {"name": "Ada", "greeting": "Hello Ada"},
    )

    # An agent's options.
    await server.gql(
        """mutation($id: UUID!, $input: UpdateAgentInput!) {
             updateAgent(id: $id, input: $input) { id } }""",
        {
            "id": agents["shape"],
            "input": {"options": {"payload": {"greeting": "Bye {{ message.name }}"}}},
        },
        token=account.token,
    )
    assert await answer(server, workflow["id"], "edit") == (200, {"greeting": "Bye Ada"})

    # The workflow back to a draft: its hooks stop at once; published again, they fire.
    for status, expected in (("DRAFT", 404), ("PUBLISHED", 200)):
        await server.gql(
            """mutation($id: UUID!, $status: WorkflowStatus!) {
                 updateWorkflow(id: $id, input: {status: $status}) { id } }""",
            {"id": workflow["id"], "status": status},
            token=account.token,
        )
        assert (await answer(server, workflow["id"], "edit"))[0] == expected

    # The trigger switched off.
    await server.gql(
        """mutation($id: UUID!) { updateTrigger(id: $id, input: {active: false}) { id } }""",
        {"id": trigger_id},
        token=account.token,
    )
    assert (await answer(server, workflow["id"], "edit"))[0] == 404


async def test_a_new_subscription_gets_the_next_run(server: LiveServer, factory: Factory) -> None:
    """The workspace's outbox subscriptions are cached too: one created is used at once."""
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "outbox", three_agents("outbox"))
    await counted_call(server, workflow["id"], "outbox", {"name": "warm"})
    await server.gql(
        """mutation($input: CreateWebhookSubscriptionInput!) {
             createWebhookSubscription(input: $input) { id } }""",
        {"input": {"url": "https://example.com/hook", "events": ["workflow.executed"]}},
        token=account.token,
    )
    _, statements, _ = await counted_call(server, workflow["id"], "outbox", {"name": "Ada"})
    assert any("webhook_deliveries" in s for s in statements), describe(statements)


async def test_a_resumed_run_reuses_the_definition(server: LiveServer, factory: Factory) -> None:
    """A process run from the database (a manual run, a resumed one, a procrastinate job) keeps
    its workflow's definition between runs too; an edit is seen by the next run."""
    from tests.engine.conftest import execute

    account = await factory.account()
    agents = [
        {"name": "start", "type": "manual"},
        {
            "name": "shape",
            "type": "transform",
            "sources": ["start"],
            "options": {"payload": {"n": "{{ message.n }}"}},
        },
    ]
    workflow = await create_workflow(server, account.token, "resumed", agents)
    first = await execute(server, account.token, workflow["id"], {"n": 1})
    assert first["status"] == "COMPLETED", first

    log = server.runtime.db.statement_log
    log.start()
    second = await execute(server, account.token, workflow["id"], {"n": 2})
    statements = log.stop()
    assert second["status"] == "COMPLETED" and second["output"] == {"n": 2}, second
    links = [s for s in statements if "FROM agent_sources JOIN agents" in " ".join(s.split())]
    assert links == [], describe(statements)

    shape = next(a["id"] for a in workflow["agents"] if a["name"] == "shape")
    await server.gql(
        """mutation($id: UUID!, $input: UpdateAgentInput!) {
             updateAgent(id: $id, input: $input) { id } }""",
        {"id": shape, "input": {"options": {"payload": {"n": "edited {{ message.n }}"}}}},
        token=account.token,
    )
    third = await execute(server, account.token, workflow["id"], {"n": 3})
    assert third["output"] == {"n": "edited 3"}, third

"""Scenario state changes reach the same live feeds as any process change."""

from __future__ import annotations

from tests.conftest import Factory, LiveServer
from tests.scenarios.conftest import ScenarioClient
from tests.subscriptions.conftest import TRANSPORT_WS, WS, wait_subscribers

UPDATED = """subscription($id: UUID!) {
  processUpdated(id: $id) { id status state scenarioId current { key } }
}"""
EVENTS = """subscription($s: UUID) { processEvents(scenarioId: $s) { id status state } }"""


async def test_a_subscription_sees_every_state_change_of_a_scenario_process(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    owner = await factory.account(workspace="Feeds")
    scenario = await scenarios.store_file(owner.token, "approval")
    me = {"userId": str(owner.user_id)}
    process = await scenarios.start(owner.token, scenario["id"], {"requester": me, "approver": me})
    pid = process["id"]
    expense = {"amount": 10, "reason": "Taxi"}
    async with (
        WS.open(server, TRANSPORT_WS, token=owner.token) as one,
        WS.open(server, TRANSPORT_WS, token=owner.token) as all_of_them,
    ):
        await one.subscribe("1", UPDATED, {"id": pid})
        await all_of_them.subscribe("2", EVENTS, {"s": scenario["id"]})
        await wait_subscribers(server, 2)
        await scenarios.act(owner.token, pid, "submit", expense)
        await scenarios.act(owner.token, pid, "comment", "fyi", actor="approver")  # no change
        await scenarios.act(owner.token, pid, "request_changes", "Receipt?")
        await scenarios.act(owner.token, pid, "resubmit", expense)
        await scenarios.act(owner.token, pid, "approve")
        updates = await one.collect("1", "processUpdated")
        events = await all_of_them.collect(
            "2", "processEvents", until=lambda e: e["status"] == "COMPLETED"
        )
    assert [u["state"] for u in updates] == ["initial", "review", "rework", "review", "(approved)"]
    assert (updates[-1]["status"], updates[-1]["current"]["key"]) == ("COMPLETED", "(approved)")
    assert all(u["scenarioId"] == scenario["id"] for u in updates)
    assert [e["state"] for e in events][-1] == "(approved)"
    assert {e["id"] for e in events} == {pid}

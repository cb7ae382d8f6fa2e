"""An approval scenario: submit, approve or reject, a rework loop, final states, a timeout."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from flowql.app import build_runtime
from flowql.events.bus import BusEvent
from flowql.models import Role, utcnow
from flowql.services.scenarios import fire_due_timeouts
from flowql.settings import Settings
from tests.conftest import Account, Factory, LiveServer
from tests.scenarios.conftest import ScenarioClient, error_of

EXPENSE = {"amount": 120.5, "reason": "Conference ticket"}


@dataclass
class Approval:
    scenario_id: str
    requester: Account
    approver: Account
    outsider: Account


async def _approval(scenarios: ScenarioClient, factory: Factory) -> Approval:
    requester = await factory.account(workspace="Finance")
    approver = await factory.account(join=requester.workspace_id, role=Role.MEMBER)
    outsider = await factory.account(join=requester.workspace_id, role=Role.MEMBER)
    scenario = await scenarios.store_file(requester.token, "approval")
    return Approval(scenario["id"], requester, approver, outsider)


def _actors(requester: Account, approver: Account) -> dict[str, Any]:
    return {
        "requester": {"userId": str(requester.user_id)},
        "approver": {"userId": str(approver.user_id), "title": "Finance"},
    }


async def _submitted(scenarios: ScenarioClient, a: Approval) -> dict[str, Any]:
    return await scenarios.start(
        a.requester.token,
        a.scenario_id,
        _actors(a.requester, a.approver),
        action={"key": "submit", "response": EXPENSE},
    )


async def test_submitted_then_approved_with_every_state_change_published(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    seen: list[BusEvent] = []
    async with server.runtime.bus.subscribe(lambda e: e.topic == "process.updated") as feed:

        async def collect() -> None:
            async for event in feed:
                seen.append(event)

        collector = asyncio.create_task(collect())
        process = await _submitted(scenarios, a)
        current = process["current"]
        assert (process["status"], current["key"], current["title"]) == (
            "WAITING",
            "review",
            "Review the request",
        )
        assert current["instructions"] == {
            "approver": 'Please review "Conference ticket" (120.5)',
            "requester": "Waiting for the approver",
        }
        offered = {action["key"]: action["actors"] for action in current["actions"]}
        assert offered == {
            "approve": ["approver"],
            "reject": ["approver"],
            "request_changes": ["approver"],
            "comment": ["requester", "approver"],
        }
        approved = await scenarios.act(a.approver.token, process["id"], "approve")
        await asyncio.sleep(0.05)
        collector.cancel()
    ended = approved["process"]
    assert (ended["status"], ended["state"]) == ("COMPLETED", "(approved)")
    assert ended["vars"]["request"] == EXPENSE
    assert [entry["actor"]["key"] for entry in ended["previous"]] == ["requester", "approver"]
    assert approved["event"]["actor"]["userId"] == str(a.approver.user_id)
    states = [
        (e.data["state"], e.data["status"]) for e in seen if e.data["process_id"] == process["id"]
    ]
    assert states == [("initial", "WAITING"), ("review", "WAITING"), ("(approved)", "COMPLETED")]


async def test_rework_loop_ends_rejected(scenarios: ScenarioClient, factory: Factory) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    pid = process["id"]
    rework = await scenarios.act(a.approver.token, pid, "request_changes", "Attach the invoice")
    assert rework["process"]["state"] == "rework"
    assert rework["process"]["current"]["instructions"] == {
        "requester": "Changes requested: Attach the invoice"
    }
    again = await scenarios.act(
        a.requester.token, pid, "resubmit", {"amount": 99, "reason": "Ticket, invoice attached"}
    )
    assert (again["process"]["state"], again["process"]["vars"]["request"]["amount"]) == (
        "review",
        99,
    )
    rejected = await scenarios.act(a.approver.token, pid, "reject", {"comment": "Over budget"})
    ended = rejected["process"]
    assert (ended["status"], ended["state"]) == ("COMPLETED", "(rejected)")
    assert ended["current"]["description"] == "Rejected: Over budget"
    hashes = [(e["previousHash"], e["hash"]) for e in ended["history"]]
    assert hashes[0][0] == "" and all(
        prev == before[1] for (prev, _), before in zip(hashes[1:], hashes, strict=False)
    )


async def test_actions_are_allowed_or_refused_per_state_and_refusals_are_recorded(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await scenarios.start(
        a.requester.token, a.scenario_id, _actors(a.requester, a.approver)
    )
    pid = process["id"]
    early = error_of(await scenarios.act(a.approver.token, pid, "approve", expect_errors=True))
    assert early["extensions"]["code"] == "VALIDATION_ERROR"
    assert (
        early["extensions"]["fields"]["action"]
        == "Action 'approve' is not allowed in state 'initial'"
    )

    await scenarios.act(a.requester.token, pid, "submit", EXPENSE)
    self_approval = error_of(
        await scenarios.act(a.requester.token, pid, "approve", expect_errors=True)
    )
    assert self_approval["extensions"]["fields"]["actor"] == (
        "Actor 'requester' is not allowed to perform action 'approve'"
    )
    unknown = error_of(await scenarios.act(a.requester.token, pid, "pay", expect_errors=True))
    assert unknown["extensions"]["code"] == "NOT_FOUND"

    await scenarios.act(a.approver.token, pid, "approve")
    after_end = error_of(
        await scenarios.act(a.approver.token, pid, "reject", {"comment": "x"}, expect_errors=True)
    )
    assert "not allowed in state '(approved)'" in after_end["extensions"]["fields"]["action"]

    history = (await scenarios.process(a.requester.token, pid))["history"]
    assert [(e["type"], e["action"], e["skipped"]) for e in history] == [
        ("instantiate", None, False),
        ("action", "approve", True),
        ("action", "submit", False),
        ("action", "approve", True),
        ("action", "approve", False),
        ("action", "reject", True),
    ]
    assert history[1]["errors"] == ["Action 'approve' is not allowed in state 'initial'"]


async def test_a_caller_who_is_none_of_the_actors_is_refused(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    outsider = error_of(
        await scenarios.act(a.outsider.token, process["id"], "approve", expect_errors=True)
    )
    assert outsider["extensions"]["code"] == "FORBIDDEN"
    posing = error_of(
        await scenarios.act(
            a.requester.token, process["id"], "approve", actor="approver", expect_errors=True
        )
    )
    assert posing["extensions"]["code"] == "FORBIDDEN"
    history = (await scenarios.process(a.requester.token, process["id"]))["history"]
    assert not any(e["skipped"] for e in history)  # refusals of the caller are not events


async def test_a_caller_playing_two_actors_must_say_which(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    both = _actors(a.requester, a.requester)
    process = await scenarios.start(a.requester.token, a.scenario_id, both)
    pid = process["id"]
    await scenarios.act(a.requester.token, pid, "submit", EXPENSE)
    ambiguous = error_of(
        await scenarios.act(a.requester.token, pid, "comment", "Note", expect_errors=True)
    )
    assert ambiguous["extensions"]["code"] == "VALIDATION_ERROR"
    assert ambiguous["extensions"]["fields"]["actor"] == (
        "As-Actor required: you could act as requester, approver"
    )
    commented = await scenarios.act(
        a.requester.token, pid, "comment", "Looks fine", actor="approver"
    )
    assert commented["process"]["vars"]["comments"] == ["Finance: Looks fine"]
    assert commented["process"]["state"] == "review"
    # Only the approver may approve, so no As-Actor is needed.
    approved = await scenarios.act(a.requester.token, pid, "approve")
    assert approved["event"]["actor"]["key"] == "approver"


async def test_a_response_outside_the_schema_is_refused_and_recorded(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await scenarios.start(
        a.requester.token, a.scenario_id, _actors(a.requester, a.approver)
    )
    bad = {"amount": "lots", "reason": "Party", "extra": True}
    refused = error_of(
        await scenarios.act(a.requester.token, process["id"], "submit", bad, expect_errors=True)
    )
    extensions = refused["extensions"]
    assert extensions["code"] == "VALIDATION_ERROR"
    assert "'lots' is not of type 'number'" in extensions["fields"]["response"]
    assert "'extra' was unexpected" in extensions["fields"]["response"]
    history = (await scenarios.process(a.requester.token, process["id"]))["history"]
    assert history[-1]["skipped"] and history[-1]["response"] == bad
    assert str(history[-1]["id"]) == extensions["eventId"]


async def test_a_refused_first_action_starts_no_process(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    body = await scenarios.start(
        a.requester.token,
        a.scenario_id,
        _actors(a.requester, a.approver),
        action={"key": "submit", "response": {"amount": 1}},
        expect_errors=True,
    )
    assert error_of(body)["extensions"]["code"] == "VALIDATION_ERROR"
    count = await server.gql(
        "query($s: UUID) { processes(filter: {scenarioId: $s}) { totalCount } }",
        {"s": a.scenario_id},
        token=a.requester.token,
    )
    assert count["data"]["processes"]["totalCount"] == 0


async def test_timeout_fires_once_across_a_restart(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory, settings: Settings
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    assert await fire_due_timeouts(server.runtime) == 0  # not due yet
    restarted, another = build_runtime(settings), build_runtime(settings)
    try:
        later = utcnow() + timedelta(days=3, minutes=1)
        fired = await asyncio.gather(
            fire_due_timeouts(restarted, later), fire_due_timeouts(another, later)
        )
        assert sorted(fired) == [0, 1]
        assert await fire_due_timeouts(restarted, later + timedelta(days=30)) == 0
    finally:
        await restarted.db.dispose()
        await another.db.dispose()
    expired = await scenarios.process(a.requester.token, process["id"])
    assert (expired["status"], expired["state"]) == ("COMPLETED", "(expired)")
    assert [e["type"] for e in expired["history"]][-1] == "timeout"
    assert (await scenarios.verify(a.requester.token, process["id"]))["valid"] is True


async def test_an_action_before_the_timeout_cancels_it(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    await scenarios.act(a.approver.token, process["id"], "request_changes", "Invoice?")
    assert await fire_due_timeouts(server.runtime, utcnow() + timedelta(days=4)) == 0
    # Back in review, the three days start again.
    await scenarios.act(a.requester.token, process["id"], "resubmit", EXPENSE)
    assert await fire_due_timeouts(server.runtime, utcnow() + timedelta(days=2)) == 0
    assert await fire_due_timeouts(server.runtime, utcnow() + timedelta(days=3, hours=1)) == 1


async def test_tampered_history_is_detected(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    pid = process["id"]
    await scenarios.act(a.approver.token, pid, "approve")
    assert await scenarios.verify(a.requester.token, pid) == {
        "valid": True,
        "events": 3,
        "brokenAt": None,
        "eventId": None,
        "reason": None,
    }
    submit = (await scenarios.process(a.requester.token, pid))["history"][1]
    forged = '{"amount": 12000, "reason": "Conference ticket"}'
    value = ":r" if server.runtime.db.is_sqlite else "CAST(:r AS JSON)"
    async with server.runtime.db.transaction() as session:
        await session.execute(
            text(f"UPDATE process_events SET response = {value} WHERE number = :n"),
            {"r": forged, "n": submit["number"]},
        )
    verdict = await scenarios.verify(a.requester.token, pid)
    assert (verdict["valid"], verdict["brokenAt"], verdict["eventId"]) == (
        False,
        1,
        submit["id"],
    )
    assert "does not match its hash" in verdict["reason"]


async def test_a_process_row_edited_behind_its_history_is_detected(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    async with server.runtime.db.transaction() as session:
        await session.execute(
            text("UPDATE processes SET state = '(approved)' WHERE number = :n"),
            {"n": (await _number(server, a, process["id"]))},
        )
    verdict = await scenarios.verify(a.requester.token, process["id"])
    assert verdict["valid"] is False
    assert verdict["reason"] == "the process's state does not match its history"


async def _number(server: LiveServer, a: Approval, process_id: str) -> int:
    body = await server.gql(
        "query($id: UUID!) { process(id: $id) { number } }",
        {"id": process_id},
        token=a.requester.token,
    )
    number: int = body["data"]["process"]["number"]
    return number


async def test_a_scope_limited_api_key_is_refused_outside_its_scope(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    other = await scenarios.store_file(a.requester.token, "basics")
    key = await factory.api_key(
        a.requester,
        process_scopes=[
            {"scenario": a.scenario_id, "actors": ["approver"], "actions": ["approve"]}
        ],
    )
    process = await _submitted(scenarios, a)
    pid = process["id"]
    wrong_action = error_of(
        await scenarios.act(key, pid, "reject", {"comment": "no"}, expect_errors=True)
    )
    assert wrong_action["extensions"]["code"] == "FORBIDDEN"
    wrong_actor = error_of(
        await scenarios.act(key, pid, "comment", "hi", actor="requester", expect_errors=True)
    )
    assert wrong_actor["extensions"]["code"] == "FORBIDDEN"
    elsewhere = error_of(await scenarios.start(key, other["id"], expect_errors=True))
    assert elsewhere["extensions"]["code"] == "FORBIDDEN"
    approved = await scenarios.act(key, pid, "approve")
    assert approved["process"]["state"] == "(approved)"
    assert approved["event"]["actor"]["key"] == "approver"


async def test_privileges_gate_definitions_and_processes(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    reader = await factory.api_key(a.requester, privileges=["scenario:read", "process:read"])
    refused = error_of(
        await scenarios.store(reader, yaml="states: {initial: {}}", expect_errors=True)
    )
    assert refused["extensions"]["code"] == "FORBIDDEN"
    start = error_of(await scenarios.start(reader, a.scenario_id, expect_errors=True))
    assert start["extensions"]["code"] == "FORBIDDEN"
    stranger = await factory.account(workspace="Elsewhere")
    hidden = error_of(await scenarios.start(stranger.token, a.scenario_id, expect_errors=True))
    assert hidden["extensions"]["code"] == "NOT_FOUND"


async def test_the_process_reads_as_letsflow_process_json(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    body = await server.gql(
        "query($id: UUID!) { process(id: $id) { projection } }",
        {"id": process["id"]},
        token=a.requester.token,
    )
    document = body["data"]["process"]["projection"]
    assert set(document) == {
        "id",
        "title",
        "tags",
        "scenario",
        "actors",
        "vars",
        "result",
        "current",
        "previous",
        "events",
    }
    assert (document["id"], document["title"]) == (process["id"], "Expense approval")
    assert document["scenario"]["id"] == a.scenario_id
    assert document["current"]["key"] == "review"
    instantiate, submit = document["events"]
    assert instantiate["scenario"] == a.scenario_id and "previous" not in instantiate
    assert submit["previous"] == instantiate["hash"]
    assert (submit["action"], submit["actor"]["key"], submit["response"]) == (
        "submit",
        "requester",
        EXPENSE,
    )


async def test_a_history_altered_beyond_replay_answers_conflict(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    a = await _approval(scenarios, factory)
    process = await _submitted(scenarios, a)
    submit = (await scenarios.process(a.requester.token, process["id"]))["history"][1]
    async with server.runtime.db.transaction() as session:
        await session.execute(
            text("UPDATE process_events SET action = 'approve' WHERE number = :n"),
            {"n": submit["number"]},
        )
    body = await server.gql(
        "query($id: UUID!) { process(id: $id) { current { key } } }",
        {"id": process["id"]},
        token=a.requester.token,
        expect_errors=True,
    )
    assert error_of(body)["extensions"]["code"] == "CONFLICT"
    acting = error_of(
        await scenarios.act(a.approver.token, process["id"], "approve", expect_errors=True)
    )
    assert acting["extensions"]["code"] == "CONFLICT"
    verdict = await scenarios.verify(a.requester.token, process["id"])
    assert (verdict["valid"], verdict["brokenAt"]) == (False, 1)

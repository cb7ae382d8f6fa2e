"""The scenarios of LetsFlow's tutorials load unchanged and run to their documented end states.

Each test follows the tutorial's feature files (docs: letsflow/docs, tutorial/*.md), with
flowql users playing the actors.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flowql.models import Group, GroupMember, Role, utcnow
from flowql.services.scenarios import fire_due_timeouts, perform_action, system_principal
from tests.conftest import Account, Factory, LiveServer
from tests.scenarios.conftest import ScenarioClient, error_of


async def _people(factory: Factory, *names: str) -> dict[str, Account]:
    owner = await factory.account(workspace="Tutorials")
    people = {names[0]: owner}
    for name in names[1:]:
        people[name] = await factory.account(join=owner.workspace_id, role=Role.MEMBER)
    return people


def _as(account: Account) -> dict[str, Any]:
    return {"userId": str(account.user_id)}


async def test_the_basics_completes_in_one_step(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    joe = (await _people(factory, "joe"))["joe"]
    scenario = await scenarios.store_file(joe.token, "basics")
    assert [a["key"] for a in scenario["actors"]] == ["actor"]
    process = await scenarios.start(joe.token, scenario["id"], {"actor": _as(joe)})
    assert (process["status"], process["state"]) == ("WAITING", "initial")
    assert process["current"]["actions"] == [
        {"key": "complete", "title": "complete", "actors": ["actor"], "response": {}}
    ]
    done = await scenarios.act(joe.token, process["id"], "complete")
    assert (done["process"]["status"], done["process"]["state"]) == ("COMPLETED", "(done)")
    assert done["process"]["current"]["isEndState"] is True


async def test_a_handshake_succeeds_or_fails(scenarios: ScenarioClient, factory: Factory) -> None:
    people = await _people(factory, "bob", "eve")
    bob, eve = people["bob"], people["eve"]
    scenario = await scenarios.store_file(bob.token, "handshake")
    actors = {"initiator": _as(bob), "recipient": _as(eve)}

    process = await scenarios.start(bob.token, scenario["id"], actors)
    assert (await scenarios.act(bob.token, process["id"], "greet"))["process"][
        "state"
    ] == "wait_on_recipient"
    assert (await scenarios.act(eve.token, process["id"], "reply"))["process"][
        "state"
    ] == "wait_on_initiator"
    ended = (await scenarios.act(bob.token, process["id"], "complete"))["process"]
    assert (ended["status"], ended["state"]) == ("COMPLETED", "(success)")

    process = await scenarios.start(bob.token, scenario["id"], actors)
    await scenarios.act(bob.token, process["id"], "greet")
    ended = (await scenarios.act(eve.token, process["id"], "ignore"))["process"]
    assert ended["state"] == "(failed)"


async def test_a_conversation_is_logged_and_refuses_turns_out_of_order(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "bob", "eve")
    bob, eve = people["bob"], people["eve"]
    scenario = await scenarios.store_file(bob.token, "conversation")
    process = await scenarios.start(
        bob.token, scenario["id"], {"initiator": _as(bob), "recipient": _as(eve)}
    )
    pid = process["id"]
    await scenarios.act(bob.token, pid, "talk", "How are you?")

    out_of_turn = error_of(
        await scenarios.act(bob.token, pid, "talk", "Hello?", expect_errors=True)
    )
    assert out_of_turn["extensions"]["code"] == "VALIDATION_ERROR"
    assert "No transition found for action 'talk'" in out_of_turn["extensions"]["fields"]["action"]

    lines = ["Could be better", "What's the matter?", "My cat is stealing my boyfriend"]
    for speaker, line in zip([eve, bob, eve], lines, strict=True):
        await scenarios.act(speaker.token, pid, "talk", line)
    ended = (await scenarios.act(bob.token, pid, "end"))["process"]
    assert ended["state"] == "(done)"
    assert ended["result"] == ["How are you?", *lines]
    skipped = [e for e in ended["history"] if e["skipped"]]
    assert len(skipped) == 1 and skipped[0]["response"] == "Hello?"


async def test_a_proper_introduction_validates_responses_and_uses_names(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "bob", "eve")
    bob, eve = people["bob"], people["eve"]
    scenario = await scenarios.store_file(bob.token, "introduction")
    process = await scenarios.start(
        bob.token, scenario["id"], {"initiator": _as(bob), "recipient": _as(eve)}
    )
    pid = process["id"]

    too_little = error_of(
        await scenarios.act(bob.token, pid, "introduce", {"name": "Bob"}, expect_errors=True)
    )
    assert "'organization' is a required property" in too_little["extensions"]["fields"]["response"]
    too_much = {"name": "Bob", "organization": "Jasny", "hobby": "Fishing", "age": 42}
    error_of(await scenarios.act(bob.token, pid, "introduce", too_much, expect_errors=True))

    await scenarios.act(bob.token, pid, "introduce", {"name": "Bob", "organization": "Jasny"})
    introduced = await scenarios.act(
        eve.token, pid, "introduce", {"name": "Eve", "organization": "Acme Inc"}
    )
    assert introduced["process"]["state"] == "wait_on_initiator"
    assert introduced["process"]["actors"]["recipient"]["organization"] == "Acme Inc"
    await scenarios.act(bob.token, pid, "talk", "How are you?")
    await scenarios.act(eve.token, pid, "talk", "Fine, how about you?")
    await scenarios.act(bob.token, pid, "talk", "Well, thank you")
    ended = (await scenarios.act(eve.token, pid, "end"))["process"]
    assert ended["result"] == [
        "Bob - How are you?",
        "Eve - Fine, how about you?",
        "Bob - Well, thank you",
    ]


async def test_a_group_meeting_started_by_a_service_runs_until_everyone_left(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "bob", "eve", "jack")
    bob, eve, jack = people["bob"], people["eve"], people["jack"]
    scenario = await scenarios.store_file(bob.token, "meeting")
    assert [a["wildcard"] for a in scenario["actors"]] == [True]
    actors = {"person_1": _as(bob), "person_2": _as(eve), "person_3": _as(jack)}
    process = await scenarios.start(bob.token, scenario["id"], actors)
    pid = process["id"]
    assert [n["service"] for n in process["current"]["notify"]] == ["default"]

    # The `default` service authenticates with an API key scoped to acting as that service.
    service_key = await factory.api_key(
        bob,
        process_scopes=[
            {"scenario": scenario["id"], "actors": ["service:default"], "actions": ["start"]}
        ],
    )
    started = await scenarios.act(
        service_key, pid, "start", {"person_1": None, "person_2": None, "person_3": None}
    )
    assert started["process"]["state"] == "introductions"
    assert started["process"]["actors"]["person_1"]["is_present"] is True

    refused = error_of(await scenarios.act(bob.token, pid, "talk", "Hi", expect_errors=True))
    assert "No transition found" in refused["extensions"]["fields"]["action"]
    for person, name, org in [
        (bob, "Bob", "Jasny"),
        (eve, "Eve", "Acme Inc"),
        (jack, "Jack", "LTO"),
    ]:
        await scenarios.act(person.token, pid, "introduce", {"name": name, "organization": org})
    twice = error_of(
        await scenarios.act(
            bob.token, pid, "introduce", {"name": "B", "organization": "J"}, expect_errors=True
        )
    )
    assert twice["extensions"]["code"] == "VALIDATION_ERROR"

    await scenarios.act(bob.token, pid, "talk", "What do you think about the weather?")
    error_of(await scenarios.act(bob.token, pid, "talk", "I like it", expect_errors=True))
    await scenarios.act(eve.token, pid, "talk", "It's pretty cold")
    await scenarios.act(jack.token, pid, "talk", "I like blockchain!")
    left = (await scenarios.act(bob.token, pid, "leave"))["process"]
    assert (left["state"], left["actors"]["person_1"]["is_present"]) == ("talking", False)
    error_of(await scenarios.act(bob.token, pid, "talk", "Still here", expect_errors=True))
    await scenarios.act(eve.token, pid, "talk", "What is blockchain?")
    ended = (await scenarios.act(eve.token, pid, "leave"))["process"]
    assert ended["state"] == "(done)"
    assert ended["result"] == [
        "Bob - What do you think about the weather?",
        "Eve - It's pretty cold",
        "Jack - I like blockchain!",
        "Eve - What is blockchain?",
    ]


async def test_a_group_meeting_without_introductions_when_code_starts_it(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "bob", "eve")
    bob, eve = people["bob"], people["eve"]
    scenario = await scenarios.store_file(bob.token, "meeting")
    process = await scenarios.start(
        bob.token, scenario["id"], {"person_1": _as(bob), "person_2": _as(eve)}
    )
    # A workflow agent (code) performs the service's action.
    outcome = await perform_action(
        server.runtime,
        system_principal(bob.workspace_id),
        uuid.UUID(process["id"]),
        "start",
        actor="service:default",
        response={
            "person_1": {"name": "Bob", "organization": "Jasny"},
            "person_2": {"name": "Eve", "organization": "Acme Inc"},
        },
    )
    assert outcome.process.state == "talking"
    assert outcome.event.actor == {"key": "service:default"}
    await scenarios.act(bob.token, process["id"], "talk", "What do you think about the weather?")
    talked = await scenarios.act(eve.token, process["id"], "talk", "It's pretty cold")
    assert talked["process"]["result"] == [
        "Bob - What do you think about the weather?",
        "Eve - It's pretty cold",
    ]


async def _quote_requested(
    scenarios: ScenarioClient, alice: Account, bob: Account
) -> tuple[str, dict[str, Any]]:
    scenario = await scenarios.store_file(alice.token, "quote")
    process = await scenarios.start(
        alice.token, scenario["id"], {"customer": _as(alice), "sales": _as(bob)}
    )
    pid = process["id"]
    incomplete = error_of(
        await scenarios.act(
            alice.token, pid, "request", {"company": "Acme Inc"}, expect_errors=True
        )
    )
    reasons = incomplete["extensions"]["reasons"]
    assert any("'email' is a required property" in r for r in reasons)
    assert any("'requirements' is a required property" in r for r in reasons)
    request = {
        "company": "Acme Inc",
        "contact": "Alice",
        "email": "alice@example.com",
        "address": "123 Main St",
        "requirements": "The product should be able to do X, Y and Z",
    }
    requested = (await scenarios.act(alice.token, pid, "request", request))["process"]
    assert requested["state"] == "requested"
    assert requested["actors"]["customer"]["company"] == "Acme Inc"
    return pid, requested


async def test_a_quote_is_requested_created_and_accepted(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "alice", "bob")
    alice, bob = people["alice"], people["bob"]
    pid, requested = await _quote_requested(scenarios, alice, bob)
    instructions = requested["current"]["instructions"]
    assert instructions["customer"].strip() == (
        "Thank you for your request. We will get back to you shortly."
    )
    assert instructions["sales"].strip() == (
        "Please create a quote based on the customer requirements:\n"
        "The product should be able to do X, Y and Z"
    )
    quoted = (await scenarios.act(bob.token, pid, "create_quote", "cms:quotes/test.pdf"))["process"]
    assert (quoted["state"], quoted["result"]) == ("quoted", "cms:quotes/test.pdf")
    [email] = quoted["current"]["notify"]
    assert email["service"] == "email"
    assert email["message"]["to"] == {"name": "Alice", "email": "alice@example.com"}
    assert email["message"]["attachments"] == [
        {"filename": "quote.pdf", "source": "cms:quotes/test.pdf"}
    ]
    assert email["message"]["generate_token"] == quoted["actors"]["customer"]["id"]
    accepted = (await scenarios.act(alice.token, pid, "accept"))["process"]
    assert (accepted["status"], accepted["state"]) == ("COMPLETED", "(accepted)")


async def test_a_quote_rejected_by_the_customer_or_by_time(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "alice", "bob")
    alice, bob = people["alice"], people["bob"]
    pid, _ = await _quote_requested(scenarios, alice, bob)
    await scenarios.act(bob.token, pid, "create_quote", "cms:quotes/test.pdf")
    rejected = await scenarios.act(alice.token, pid, "reject", {"reason": "Too expensive"})
    assert rejected["process"]["current"]["description"].strip() == (
        "The quote has been rejected.\nReason: Too expensive"
    )

    pid, _ = await _quote_requested(scenarios, alice, bob)
    await scenarios.act(bob.token, pid, "create_quote", "cms:quotes/test.pdf")
    assert await fire_due_timeouts(server.runtime, utcnow() + timedelta(days=9)) == 0
    assert await fire_due_timeouts(server.runtime, utcnow() + timedelta(days=10, minutes=1)) == 1
    expired = await scenarios.process(alice.token, pid)
    assert expired["state"] == "(rejected)"
    assert expired["history"][-1]["type"] == "timeout"
    assert expired["current"]["description"] == "The customer has not responded to the quote."


async def test_a_quote_cancelled_by_sales_notifies_the_customer(
    scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "alice", "bob")
    alice, bob = people["alice"], people["bob"]
    pid, _ = await _quote_requested(scenarios, alice, bob)
    cancelled = await scenarios.act(bob.token, pid, "cancel", {"reason": "Unable to deliver"})
    current = cancelled["process"]["current"]
    assert current["description"].strip() == (
        "The quote request has been cancelled.\nReason: Unable to deliver"
    )
    assert [n["message"]["template"] for n in current["notify"]] == ["no-quote"]

    pid, _ = await _quote_requested(scenarios, alice, bob)
    by_customer = await scenarios.act(alice.token, pid, "cancel", {"reason": "No longer needed"})
    assert by_customer["process"]["current"]["notify"] == []


async def test_anyone_in_the_sales_group_acts_as_the_sales_role(
    server: LiveServer, scenarios: ScenarioClient, factory: Factory
) -> None:
    people = await _people(factory, "alice", "bob", "carol")
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    async with server.runtime.db.transaction() as session:
        group = Group(workspace_id=alice.workspace_id, name="sales")
        session.add(group)
        await session.flush()
        session.add(GroupMember(group_id=group.id, user_id=bob.user_id))
    scenario = await scenarios.store_file(alice.token, "quote")
    process = await scenarios.start(alice.token, scenario["id"], {"customer": _as(alice)})
    request = {
        "company": "Acme",
        "contact": "Alice",
        "email": "a@example.com",
        "address": "Main St",
        "requirements": "X",
    }
    await scenarios.act(alice.token, process["id"], "request", request)
    refused = error_of(
        await scenarios.act(carol.token, process["id"], "create_quote", "cms:x", expect_errors=True)
    )
    assert refused["extensions"]["code"] == "FORBIDDEN"
    quoted = await scenarios.act(bob.token, process["id"], "create_quote", "cms:quotes/q.pdf")
    assert quoted["event"]["actor"]["key"] == "sales"

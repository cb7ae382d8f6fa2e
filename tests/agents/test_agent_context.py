"""One template context for every agent type, Huginn style: the incoming message's keys at the
top level (`{{ title }}`, as Huginn's and ActiveWorkflow's options write them) and flowql's own
names (`message`, `process`, `workflow`, `vars`), which win over a message key of the same name.
The same context reaches `run.options()`, per-result rendering and the engine's conditions."""

from __future__ import annotations

from flowql.agents.registry import REGISTRY
from tests.agents.conftest import make_run
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute

SHADOWING = {"title": "rain", "message": "not the message", "vars": "no", "workflow": "no"}


def test_run_options_see_message_keys_at_the_top_level_and_flowqls_names_win() -> None:
    run = make_run(
        "transform",
        {
            "payload": {
                "top": "{{ title }}",
                "nested": "{{ message.title }}",
                "message_is_the_message": "{{ message.message }}",
                "vars_is_flowqls": "{{ vars.size }}",
                "workflow": "{{ workflow.name }}",
            }
        },
        SHADOWING,
    )
    assert run.options()["payload"] == {
        "top": "rain",
        "nested": "rain",
        "message_is_the_message": "not the message",
        "vars_is_flowqls": 0,  # one `{{ expr }}` keeps its type
        "workflow": "wf",
    }


def test_template_context_over_other_data_replaces_the_message_keys() -> None:
    run = make_run("transform", {"payload": {"t": "{{ title }}"}}, {"title": "old", "gone": 1})
    context = run.template_context({"title": "new"})
    assert context["title"] == "new" and context["message"] == {"title": "new"}
    assert "gone" not in context
    assert context["workflow"]["name"] == "wf"
    assert run.options({"title": "new"})["payload"] == {"t": "new"}
    # The run's own context is not changed by a caller.
    run.template_context()["title"] = "changed"
    assert run.options()["payload"] == {"t": "old"}


def test_engine_only_keys_never_come_from_a_message() -> None:
    run = make_run("transform", {"payload": {}}, {"\x00credentials": {"x": "stolen"}, "a": 1})
    assert "\x00credentials" not in run.context
    assert run.context["a"] == 1


async def test_a_stateful_agent_renders_huginn_top_level_names() -> None:
    """agentsb's types (here change_detector's `property`) see `{{ title }}` too."""
    options = {"property": "{{ title }}", "expected_update_period_in_days": 1}
    first = make_run("change_detector", options, {"title": "a"})
    outcome = await REGISTRY["change_detector"].handler(first)
    assert [m.get("title") for m in outcome.emit] == ["a"]
    assert first.memory["last_property"] == "a"
    second = make_run("change_detector", options, {"title": "b"}, memory=first.memory)
    outcome = await REGISTRY["change_detector"].handler(second)
    assert [m.get("title") for m in outcome.emit] == ["b"]
    third = make_run("change_detector", options, {"title": "b"}, memory=second.memory)
    assert (await REGISTRY["change_detector"].handler(third)).emit == []


async def test_the_engine_gives_conditions_and_options_the_huginn_context(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "huginn context",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "rainy",
                "type": "filter",
                "sources": ["start"],
                "options": {"condition": "title == 'rain' and message.title == 'rain'"},
            },
            {
                "name": "shape",
                "type": "transform",
                "sources": ["rainy"],
                "options": {
                    "payload": {
                        "top": "{{ title }}",
                        "nested": "{{ message.title }}",
                        "workflow": "{{ workflow.name }}",
                        "message_key": "{{ message.message }}",
                    }
                },
            },
        ],
    )
    process = await execute(server, account.token, workflow["id"], SHADOWING)
    assert process["status"] == "COMPLETED", process
    assert process["output"] == {
        "top": "rain",
        "nested": "rain",
        "workflow": "huginn context",
        "message_key": "not the message",
    }
    dry = await execute(server, account.token, workflow["id"], {"title": "sun"})
    assert dry["status"] == "COMPLETED", dry
    assert dry["output"] in (None, {})

"""Huginn's scenario format (ActiveWorkflow's export): type names both ways, schedules, and
import/export through the API with everything Huginn keeps (schedule, propagate_immediately,
keep_events_for, disabled, links, control links, names); unsupported agents are refused all at
once, by their original type and name."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlmodel import select

from flowql.formats.huginn import flowql_type, huginn_type, schedule_cron
from flowql.models import Process, Trigger, TriggerType
from tests.conftest import Factory, LiveServer, error_of


@pytest.mark.parametrize(
    ("huginn", "flowql"),
    [
        ("Agents::HttpStatusAgent", "http_status"),
        ("Agents::EmailDigestAgent", "email_digest"),
        ("Agents::DeDuplicationAgent", "de_duplication"),
        ("Agents::JavaScriptAgent", "java_script"),
        ("Agents::CsvAgent", "csv"),
        ("Agents::RssAgent", "rss"),
        ("Agents::WebsiteAgent", "website"),
        ("Agents::TriggerAgent", "trigger"),
        ("Agents::CommanderAgent", "commander"),
        ("Agents::DataOutputAgent", "data_output"),
        ("Agents::HttpRequestAgent", "http_request"),
    ],
)
def test_type_names_map_both_ways(huginn: str, flowql: str) -> None:
    assert flowql_type(huginn) == flowql
    assert huginn_type(flowql) == huginn


@pytest.mark.parametrize(
    ("schedule", "cron"),
    [
        ("every_1m", "* * * * *"),
        ("every_30m", "*/30 * * * *"),
        ("every_1h", "0 * * * *"),
        ("every_12h", "0 */12 * * *"),
        ("every_1d", "0 0 * * *"),
        ("every_7d", "0 0 * * 0"),
        ("midnight", "0 0 * * *"),
        ("noon", "0 12 * * *"),
        ("7am", "0 7 * * *"),
        ("12am", "0 0 * * *"),
        ("12pm", "0 12 * * *"),
        ("5pm", "0 17 * * *"),
        ("6h", "0 6 * * *"),  # ActiveWorkflow's hour of the day
        ("22h", "0 22 * * *"),
        ("never", None),
        (None, None),
    ],
)
def test_schedules_as_cron(schedule: str | None, cron: str | None) -> None:
    assert schedule_cron(schedule) == cron


@pytest.mark.parametrize("schedule", ["every_3m", "13pm", "24h", "0am", "hourly"])
def test_unknown_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule_cron(schedule)


IMPORT = (
    "mutation($d: JSON!) { importWorkflow(definition: $d, publish: true) { id exportDefinition } }"
)


def scenario(agents: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "name": "scenario",
        "description": "from Huginn",
        "guid": uuid.uuid4().hex,
        "agents": agents,
        "links": extra.get("links", []),
        "control_links": extra.get("control_links", []),
    }


async def test_an_import_with_unsupported_agents_fails_whole_naming_every_one(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    definition = scenario(
        [
            {"type": "Agents::WeatherAgent", "name": "SF Weather", "options": {"api_key": "k"}},
            {
                "type": "Agents::HttpRequestAgent",
                "name": "call",
                "options": {"url": "https://a.example"},
            },
            {"type": "Agents::TwitterStreamAgent", "name": "Tweets", "options": {}},
            {"type": "Agents::SlackAgent", "name": "Ping Slack", "options": {}},
        ],
        links=[{"source": 0, "receiver": 1}],
    )
    body = await server.gql(IMPORT, {"d": definition}, token=account.token, expect_errors=True)
    extensions = error_of(body)
    assert extensions["code"] == "VALIDATION_ERROR"
    fields = extensions["fields"]
    assert set(fields) == {
        "definition.agents.0.type",
        "definition.agents.2.type",
        "definition.agents.3.type",
    }
    assert "Agents::WeatherAgent" in fields["definition.agents.0.type"]
    assert "SF Weather" in fields["definition.agents.0.type"]
    message = body["errors"][0]["message"]
    for named in ("Agents::WeatherAgent", "Agents::TwitterStreamAgent", "Agents::SlackAgent"):
        assert named in message
    assert "'trigger'" not in message
    listed = await server.gql("{ workflows { totalCount } }", token=account.token)
    assert listed["data"]["workflows"]["totalCount"] == 0, "nothing of a refused import is kept"


async def test_export_round_trips_everything_huginn_keeps(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    definition = scenario(
        [
            {
                "type": "Agents::ManualAgent",
                "name": "Start",
                "options": {},
                "keep_events_for": 0,
                "propagate_immediately": True,
            },
            {
                "type": "Agents::HttpRequestAgent",
                "name": "Status Check",
                "disabled": True,
                "options": {"url": "https://status.example/{{ message.path | uri_escape }}"},
                "schedule": "every_1h",
                "keep_events_for": 86400,
                "propagate_immediately": False,
            },
            {
                "type": "Agents::TransformAgent",
                "name": "Shape",
                "options": {"payload": {"up": "{{ message.status }}"}},
                "schedule": "7am",
                "keep_messages_for": 3600,  # ActiveWorkflow's spelling
            },
        ],
        links=[{"source": 0, "receiver": 1}, {"source": 1, "receiver": 2}],
        control_links=[{"controller": 2, "control_target": 1}],
    )
    body = await server.gql(IMPORT, {"d": definition}, token=account.token)
    exported = body["data"]["importWorkflow"]["exportDefinition"]
    agents = {a["name"]: a for a in exported["agents"]}
    assert [a["name"] for a in exported["agents"]] == ["Start", "Status Check", "Shape"]
    check = agents["Status Check"]
    assert check["type"] == "Agents::HttpRequestAgent"
    assert check["disabled"] is True
    assert check["schedule"] == "every_1h"
    assert check["propagate_immediately"] is False
    assert check["keep_events_for"] == check["keep_messages_for"] == 86400
    assert agents["Shape"]["keep_events_for"] == 3600 and agents["Shape"]["schedule"] == "7am"
    assert "schedule" not in agents["Start"]
    assert exported["links"] == [{"source": 0, "receiver": 1}, {"source": 1, "receiver": 2}]
    assert exported["control_links"] == [{"controller": 2, "control_target": 1}]
    # The schedules are live: each scheduled agent has a schedule trigger entering at it.
    workflow_id = uuid.UUID(body["data"]["importWorkflow"]["id"])
    async with server.runtime.db.read() as session:
        triggers = (
            await session.exec(select(Trigger).where(Trigger.workflow_id == workflow_id))
        ).all()
    schedules = {t.name: t for t in triggers if t.type == TriggerType.SCHEDULE}
    assert schedules["Status Check"].path == "0 * * * *"
    assert schedules["Status Check"].active is False  # the agent is disabled
    assert schedules["Shape"].path == "0 7 * * *" and schedules["Shape"].active is True
    # Imported again, the export is the same (but for ids and the export time).
    again = await server.gql(IMPORT, {"d": exported}, token=account.token)
    second = again["data"]["importWorkflow"]["exportDefinition"]

    def comparable(export: dict[str, Any]) -> dict[str, Any]:
        return {
            "agents": [{k: v for k, v in a.items() if k != "guid"} for a in export["agents"]],
            "links": export["links"],
            "control_links": export["control_links"],
            "name": export["name"],
            "description": export["description"],
        }

    assert comparable(second) == comparable(exported)


async def test_a_bad_schedule_or_control_link_in_an_import_is_named(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    bad_schedule = scenario(
        [{"type": "Agents::TransformAgent", "name": "T", "options": {}, "schedule": "every_3m"}]
    )
    body = await server.gql(IMPORT, {"d": bad_schedule}, token=account.token, expect_errors=True)
    extensions = error_of(body)
    assert extensions["code"] == "VALIDATION_ERROR"
    assert "every_3m" in extensions["fields"]["agents.0.schedule"]
    bad_link = scenario(
        [{"type": "Agents::TransformAgent", "name": "T", "options": {}}],
        control_links=[{"controller": 0, "control_target": 5}],
    )
    body = await server.gql(IMPORT, {"d": bad_link}, token=account.token, expect_errors=True)
    extensions = error_of(body)
    assert extensions["code"] == "VALIDATION_ERROR"
    assert "definition.control_links.0" in extensions["fields"]


async def test_a_huginn_webhook_agent_imports_and_answers_as_huginn_does(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    definition = scenario(
        [
            {
                "type": "Agents::WebhookAgent",
                "name": "Inbox",
                "options": {
                    "secret": "s3cr3t-token",
                    "expected_receive_period_in_days": 1,
                    "payload_path": "data",
                    "verbs": "post,put",
                    "response": "ok, thanks",
                    "code": "200",
                    "response_headers": {"X-Hook": "huginn"},
                },
            },
            {"type": "Agents::TransformAgent", "name": "Keep", "options": {"merge": True}},
        ],
        links=[{"source": 0, "receiver": 1}],
    )
    body = await server.gql(IMPORT, {"d": definition}, token=account.token)
    workflow_id = body["data"]["importWorkflow"]["id"]
    url = f"/hooks/{workflow_id}/s3cr3t-token"
    answer = await server.client.post(url, json={"data": {"x": 1}, "other": "dropped"})
    assert answer.status_code == 200
    assert answer.text == "ok, thanks"
    assert answer.headers["x-hook"] == "huginn"
    assert (await server.client.get(url)).status_code == 405
    assert (await server.client.post(f"/hooks/{workflow_id}/wrong")).status_code == 404
    async with server.runtime.db.read() as session:
        processes = (
            await session.exec(select(Process).where(Process.workflow_id == uuid.UUID(workflow_id)))
        ).all()
    assert [p.input for p in processes] == [{"x": 1}]
    # Exported, the webhook carries the `secret` Huginn requires: its path, never a shared
    # secret; imported back, it is a plain path again (no shared secret is asked for).
    exported = body["data"]["importWorkflow"]["exportDefinition"]
    [hook] = [a for a in exported["agents"] if a["type"] == "Agents::WebhookAgent"]
    assert hook["options"]["secret"] == hook["options"]["path"] == "s3cr3t-token"
    again = await server.gql(IMPORT, {"d": exported}, token=account.token)
    second_id = again["data"]["importWorkflow"]["id"]
    answer = await server.client.post(f"/hooks/{second_id}/s3cr3t-token", json={"data": {}})
    assert answer.status_code == 200, answer.text
    second = again["data"]["importWorkflow"]["exportDefinition"]
    [hook_again] = [a for a in second["agents"] if a["type"] == "Agents::WebhookAgent"]
    assert hook_again["options"] == hook["options"]


async def test_a_webhooks_shared_secret_is_never_exported(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    definition = scenario(
        [
            {
                "type": "Agents::WebhookAgent",
                "name": "Signed",
                "options": {"path": "signed", "secret": "shared-value", "hmac_secret": "k3y"},
            }
        ]
    )
    body = await server.gql(IMPORT, {"d": definition}, token=account.token)
    [hook] = body["data"]["importWorkflow"]["exportDefinition"]["agents"]
    assert hook["options"] == {"path": "signed", "secret": "signed"}
    assert "shared-value" not in str(body) and "k3y" not in str(body)


async def test_a_huginn_webhook_redirects_for_a_3xx_code(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    definition = scenario(
        [
            {
                "type": "Agents::WebhookAgent",
                "name": "Form post",
                "options": {
                    "secret": "form",
                    "response": "https://thanks.example/",
                    "code": 302,
                    "verbs": ["post"],
                },
            }
        ]
    )
    body = await server.gql(IMPORT, {"d": definition}, token=account.token)
    workflow_id = body["data"]["importWorkflow"]["id"]
    answer = await server.client.post(f"/hooks/{workflow_id}/form", data={"name": "A"})
    assert answer.status_code == 302
    assert answer.headers["location"] == "https://thanks.example/"


async def test_a_liquid_output_exports_without_its_secret_and_imports_again(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    definition = scenario(
        [
            {
                "type": "Agents::LiquidOutputAgent",
                "name": "Page",
                "options": {
                    "secret": "my-page-key",
                    "content": "{{ title }}",
                    "mode": "Last event in",
                },
            }
        ]
    )
    body = await server.gql(IMPORT, {"d": definition}, token=account.token)
    [page] = body["data"]["importWorkflow"]["exportDefinition"]["agents"]
    assert "my-page-key" not in str(body)
    fresh = page["options"]["secret"]
    assert len(fresh) >= 16 and "." not in fresh and "/" not in fresh
    again = await server.gql(
        IMPORT, {"d": body["data"]["importWorkflow"]["exportDefinition"]}, token=account.token
    )
    [page_again] = again["data"]["importWorkflow"]["exportDefinition"]["agents"]
    assert page_again["options"]["content"] == "{{ title }}"


async def test_an_import_is_a_draft_unless_published(server: LiveServer, factory: Factory) -> None:
    """Like every new workflow, an import's triggers fire only once it is published."""
    account = await factory.account()
    definition = scenario(
        [{"type": "Agents::WebhookAgent", "name": "hook", "options": {"secret": "draft-hook"}}]
    )
    draft = "mutation($d: JSON!) { importWorkflow(definition: $d) { id status } }"
    body = await server.gql(draft, {"d": definition}, token=account.token)
    workflow = body["data"]["importWorkflow"]
    assert workflow["status"] == "DRAFT"
    answer = await server.client.post(f"/hooks/{workflow['id']}/draft-hook", json={"a": 1})
    assert answer.status_code == 404
    live = "mutation($d: JSON!) { importWorkflow(definition: $d, publish: true) { id status } }"
    body = await server.gql(live, {"d": definition}, token=account.token)
    workflow = body["data"]["importWorkflow"]
    assert workflow["status"] == "PUBLISHED"
    answer = await server.client.post(f"/hooks/{workflow['id']}/draft-hook", json={"a": 1})
    assert answer.status_code == 202

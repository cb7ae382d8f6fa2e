"""Secret options of Huginn's agent types (the web agents' basic_auth, liquid_output's secret):
stored encrypted, shown as "********", handed to the running handler decrypted; and the
liquid_output page served at /liquid/{agent id}/{secret} as Huginn's LiquidOutputAgent does."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import select

from flowql.models import Agent
from flowql.services.workflows import REDACTED
from tests.agents.loopback import Loopback, running
from tests.conftest import Factory, LiveServer
from tests.engine.conftest import create_workflow, execute

AGENTS = "query($id: UUID!) { workflow(id: $id) { agents { id name options } } }"
UPDATE_AGENT = """
mutation($id: UUID!, $input: UpdateAgentInput!) { updateAgent(id: $id, input: $input) { id } }
"""


@pytest.fixture
def target() -> Iterator[Loopback]:
    yield from running()


async def stored_options(server: LiveServer, agent_id: str) -> dict[str, Any]:
    async with server.runtime.db.read() as session:
        agent = (await session.exec(select(Agent).where(Agent.id == uuid.UUID(agent_id)))).one()
        return dict(agent.options)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def shown_agents(server: LiveServer, token: str, workflow_id: str) -> dict[str, Any]:
    body = await server.gql(AGENTS, {"id": workflow_id}, token=token)
    return {a["name"]: a for a in body["data"]["workflow"]["agents"]}


async def test_basic_auth_is_sealed_hidden_and_reaches_the_request_decrypted(
    server: LiveServer, factory: Factory, target: Loopback
) -> None:
    url = target.serve("/in", '{"ok": true}', content_type="application/json")
    account = await factory.account()
    await server.gql(
        'mutation { createCredential(input: {name: "carol_pw", value: "cr3d"}) { id } }',
        token=account.token,
    )
    workflow = await create_workflow(
        server,
        account.token,
        "authenticated posts",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "as text",
                "type": "post",
                "sources": ["start"],
                "options": {"post_url": url, "content_type": "json", "basic_auth": "ada:s3cret"},
            },
            {
                "name": "with a credential",
                "type": "post",
                "sources": ["start"],
                "options": {
                    "post_url": url,
                    "content_type": "json",
                    "basic_auth": "carol:{% credential carol_pw %}",
                },
            },
            {
                "name": "as list",
                "type": "post",
                "sources": ["start"],
                "options": {
                    "post_url": url,
                    "content_type": "json",
                    "basic_auth": ["bob", "l1st-pw"],
                },
            },
        ],
    )
    shown = await shown_agents(server, account.token, workflow["id"])
    assert shown["as text"]["options"]["basic_auth"] == REDACTED
    assert shown["as list"]["options"]["basic_auth"] == REDACTED
    text_stored = await stored_options(server, shown["as text"]["id"])
    list_stored = await stored_options(server, shown["as list"]["id"])
    assert str(text_stored["basic_auth"]).startswith("enc:")
    assert str(list_stored["basic_auth"]).startswith("encjson:")
    assert "s3cret" not in str(text_stored) and "l1st-pw" not in str(list_stored)

    process = await execute(server, account.token, workflow["id"], {"n": 1})
    assert process["status"] == "COMPLETED", process
    sent = sorted(r.headers.get("Authorization", "") for r in target.requests)
    assert sent == sorted([basic("ada", "s3cret"), basic("bob", "l1st-pw"), basic("carol", "cr3d")])

    # Sending the placeholder back keeps the stored secret (and validates).
    await server.gql(
        UPDATE_AGENT,
        {
            "id": shown["as text"]["id"],
            "input": {"options": {**shown["as text"]["options"], "post_url": url + "?again"}},
        },
        token=account.token,
    )
    assert (await stored_options(server, shown["as text"]["id"]))["basic_auth"] == text_stored[
        "basic_auth"
    ]


async def test_liquid_output_serves_its_page_behind_its_secret(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "a page",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "page",
                "type": "liquid_output",
                "sources": ["start"],
                "options": {
                    "secret": "page-key",
                    "mode": "Merge events",
                    "content": "<h1>{{ title }}</h1><p>{{ body }}</p>",
                    "mime_type": "text/plain",
                    "response_headers": {"X-Page": "yes", "Cache-Control": "no-store"},
                },
            },
        ],
    )
    shown = await shown_agents(server, account.token, workflow["id"])
    page_id = shown["page"]["id"]
    assert shown["page"]["options"]["secret"] == REDACTED
    stored = await stored_options(server, page_id)
    assert str(stored["secret"]).startswith("enc:") and "page-key" not in str(stored)

    for payload in ({"title": "Hello", "body": "first"}, {"body": "second"}):
        process = await execute(server, account.token, workflow["id"], payload)
        assert process["status"] == "COMPLETED", process

    response = await server.client.get(f"/liquid/{page_id}/page-key")
    assert response.status_code == 200
    assert response.text == "<h1>Hello</h1><p>second</p>"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-page"] == "yes"
    assert response.headers["cache-control"] == "no-store"
    assert (await server.client.post(f"/liquid/{page_id}/page-key.html")).status_code == 200

    wrong = await server.client.get(f"/liquid/{page_id}/not-the-key")
    assert (wrong.status_code, wrong.text) == (401, "Not Authorized")
    wrong_json = await server.client.get(f"/liquid/{page_id}/not-the-key.json")
    assert (wrong_json.status_code, wrong_json.json()) == (401, {"error": "Not Authorized"})
    # The sealed value itself does not open the page.
    sealed = await server.client.get(f"/liquid/{page_id}/{stored['secret']}")
    assert sealed.status_code == 401
    for path in (f"/liquid/{uuid.uuid4()}/page-key", "/liquid/nope/page-key"):
        assert (await server.client.get(path)).status_code == 404
    # A data_output address is not a page.
    assert (await server.client.get(f"/feeds/{page_id}/page-key.json")).status_code == 404


async def test_data_output_secrets_are_sealed_hidden_and_still_open_the_feed(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "a feed",
        [
            {"name": "start", "type": "manual"},
            {
                "name": "feed",
                "type": "data_output",
                "sources": ["start"],
                "options": {"secrets": ["feed-key", "other-key"], "template": {"item": {}}},
            },
        ],
    )
    shown = await shown_agents(server, account.token, workflow["id"])
    feed_id = shown["feed"]["id"]
    assert shown["feed"]["options"]["secrets"] == REDACTED
    stored = await stored_options(server, feed_id)
    assert str(stored["secrets"]).startswith("encjson:") and "feed-key" not in str(stored)
    process = await execute(server, account.token, workflow["id"], {"title": "one"})
    assert process["status"] == "COMPLETED", process
    for key in ("feed-key", "other-key"):
        answer = await server.client.get(f"/feeds/{feed_id}/{key}.json")
        assert answer.status_code == 200, answer.text
    assert (await server.client.get(f"/feeds/{feed_id}/nope.json")).status_code == 404
    # The placeholder sent back keeps the secrets; a string that is not it is refused.
    await server.gql(
        UPDATE_AGENT,
        {"id": feed_id, "input": {"options": shown["feed"]["options"]}},
        token=account.token,
    )
    assert (await server.client.get(f"/feeds/{feed_id}/feed-key.json")).status_code == 200
    body = await server.gql(
        UPDATE_AGENT,
        {"id": feed_id, "input": {"options": {"secrets": "feed-key"}}},
        token=account.token,
        expect_errors=True,
    )
    assert body["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"

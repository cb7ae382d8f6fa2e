"""A trigger shows the full URL that fires it and how it answers: a webhook at once (202 and the
process id), an http trigger when its respond agent answers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowql.settings import Settings
from tests.api.addressed import server, settings
from tests.conftest import Factory, LiveServer, make_settings

__all__ = ["server", "settings"]

CREATE = """
mutation($input: CreateWorkflowInput!) {
  createWorkflow(input: $input) { id triggers { name type path url mode } }
}"""


async def test_trigger_urls_answer_as_their_mode_says(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    body = await server.gql(
        CREATE,
        {
            "input": {
                "name": "hooks",
                "status": "PUBLISHED",  # a draft's hooks do not fire
                "agents": [
                    {"name": "orders", "type": "webhook", "options": {"path": "orders/new"}},
                    {"name": "quote", "type": "http", "options": {"path": "quote"}},
                    {
                        "name": "answer",
                        "type": "respond",
                        "sources": ["quote"],
                        "options": {"body": {"price": "{{ message.qty | times: 3 }}"}},
                    },
                    {"name": "nightly", "type": "schedule", "options": {"cron": "0 3 * * *"}},
                ],
            }
        },
        token=account.token,
    )
    workflow = body["data"]["createWorkflow"]
    triggers = {t["name"]: t for t in workflow["triggers"]}
    base = f"{server.url}/hooks/{workflow['id']}"
    assert triggers["orders"]["url"] == f"{base}/orders/new"
    assert triggers["orders"]["mode"] == "ANSWERS_AT_ONCE"
    assert triggers["quote"]["url"] == f"{base}/quote"
    assert triggers["quote"]["mode"] == "WAITS_FOR_RESPOND"
    assert triggers["nightly"]["url"] is None and triggers["nightly"]["mode"] is None

    async with httpx.AsyncClient(timeout=30) as caller:  # the URL as given, nothing added
        at_once = await caller.post(triggers["orders"]["url"], json={"id": 7})
        assert at_once.status_code == 202
        assert set(at_once.json()) == {"process_id", "status"}
        answered = await caller.post(triggers["quote"]["url"], json={"qty": 4})
        assert answered.status_code == 200
        assert answered.json() == {"price": 12}


def test_public_url_setting(tmp_path: Path) -> None:
    everywhere = "0.0.0.0"  # a server listening on every interface is reached on loopback
    assert Settings(host=everywhere, port=9000).base_url == "http://127.0.0.1:9000"
    behind = make_settings("sqlite://", tmp_path, public_url="https://flows.example.com/")
    assert behind.base_url == "https://flows.example.com"
    with pytest.raises(ValueError, match="http"):
        Settings(public_url="flows.example.com")

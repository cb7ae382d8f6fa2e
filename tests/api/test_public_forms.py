"""Public forms: /forms/{id} serves an HTML page of the form's fields and takes submissions
(browser forms and JSON), with the same checks as submitForm; a form that is not public needs a
token that may submit it."""

from __future__ import annotations

import html
import re
from typing import Any

import httpx

from tests.api.addressed import server, settings
from tests.conftest import Account, Factory, LiveServer, error_of
from tests.engine.conftest import wait_status

__all__ = ["server", "settings"]

FIELDS = [
    {"name": "email", "type": "email", "required": True, "label": "Your email"},
    {"name": "message", "type": "textarea", "required": True},
    {"name": "seats", "type": "integer"},
    {"name": "budget", "type": "number"},
    {"name": "newsletter", "type": "boolean"},
    {"name": "plan", "type": "select", "options": ["free", "pro"]},
]
CREATE_FORM = """
mutation($input: CreateFormInput!) { createForm(input: $input) { id public publicUrl } }"""
SUBMISSIONS = """
query($id: UUID!) { form(id: $id) { submissions { nodes { data processId } } } }"""


async def make_form(
    server: LiveServer, account: Account, public: bool, name: str = "Contact us"
) -> dict[str, Any]:
    workflow = await server.gql(
        """mutation { createWorkflow(input: {name: "leads", status: PUBLISHED, agents: [
             {name: "contact", type: "form"},
             {name: "shape", type: "transform", sources: ["contact"],
              options: {payload: {who: "{{ message.email }}", seats: "{{ message.seats }}"}}}
           ]}) { id } }""",
        token=account.token,
    )
    body = await server.gql(
        CREATE_FORM,
        {
            "input": {
                "name": name,
                "description": "We answer within a day.",
                "fields": FIELDS,
                "public": public,
                "workflowId": workflow["data"]["createWorkflow"]["id"],
            }
        },
        token=account.token,
    )
    form: dict[str, Any] = body["data"]["createForm"]
    return form


async def submissions(server: LiveServer, account: Account, form_id: str) -> list[dict[str, Any]]:
    body = await server.gql(SUBMISSIONS, {"id": form_id}, token=account.token)
    nodes: list[dict[str, Any]] = body["data"]["form"]["submissions"]["nodes"]
    return nodes


async def test_public_form_page_and_browser_submission(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    form = await make_form(server, account, public=True)
    assert form["public"] is True
    assert form["publicUrl"] == f"{server.url}/forms/{form['id']}"

    async with httpx.AsyncClient(timeout=30) as visitor:  # no token at all
        page = await visitor.get(form["publicUrl"])
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        text = page.text
        assert "<script" not in text and "http" not in text.split("<body>")[1].replace(
            f'action="/forms/{form["id"]}"', ""
        )
        assert '<label for="f-email">Your email' in text
        assert '<input type="email" id="f-email" name="email"' in text
        assert '<textarea id="f-message" name="message"' in text
        assert '<input type="number" id="f-seats" name="seats" value="" step="1"' in text
        assert '<input type="checkbox" id="f-newsletter" name="newsletter" value="true"' in text
        assert '<option value="pro">pro</option>' in text
        assert f'<form method="post" action="/forms/{form["id"]}"' in text

        # Invalid: the page again, each problem at its field, what was typed kept.
        bad = await visitor.post(
            form["publicUrl"],
            data={"email": "not-an-email", "seats": "many", "plan": "gold", "budget": "2.5"},
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("text/html")
        assert 'role="alert"' in bad.text
        assert 'id="f-email-error">not a valid email address</p>' in bad.text
        assert 'aria-describedby="f-email-error"' in bad.text
        assert 'id="f-message-error">required</p>' in bad.text
        assert 'id="f-seats-error">must be an integer</p>' in bad.text
        assert 'id="f-plan-error">must be one of: free, pro</p>' in bad.text
        assert 'value="not-an-email"' in bad.text and 'value="2.5"' in bad.text
        assert await submissions(server, account, form["id"]) == []

        good = await visitor.post(
            form["publicUrl"],
            data={
                "email": "ada@example.com",
                "message": "Hello",
                "seats": "3",
                "budget": "2.5",
                "newsletter": "true",
                "plan": "pro",
            },
        )
        assert good.status_code == 200
        assert "your answers were received" in good.text

    stored = await submissions(server, account, form["id"])
    assert stored[0]["data"] == {
        "email": "ada@example.com",
        "message": "Hello",
        "seats": 3,
        "budget": 2.5,
        "newsletter": True,
        "plan": "pro",
    }
    # The submission started the form's workflow, as submitForm does.
    detail = await wait_status(
        server, account.token, stored[0]["processId"], {"COMPLETED", "FAILED"}
    )
    assert detail["status"] == "COMPLETED", detail
    assert detail["input"]["seats"] == 3


async def test_json_submissions_get_submit_forms_answers(
    server: LiveServer, factory: Factory
) -> None:
    account = await factory.account()
    form = await make_form(server, account, public=True)
    bad_data = {"email": "x", "seats": "3", "stray": 1}
    graphql = await server.gql(
        "mutation($f: UUID!, $d: JSON!) { submitForm(formId: $f, data: $d) { id } }",
        {"f": form["id"], "d": bad_data},
        token=account.token,
        expect_errors=True,
    )
    async with httpx.AsyncClient(timeout=30) as program:
        refused = await program.post(form["publicUrl"], json=bad_data)
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "VALIDATION_ERROR"
        assert error["fields"] == error_of(graphql)["fields"]  # the very same checks
        assert set(error["fields"]) == {"data.email", "data.message", "data.seats", "data.stray"}

        accepted = await program.post(
            form["publicUrl"], json={"email": "ada@example.com", "message": "Hi", "seats": 2}
        )
        assert accepted.status_code == 201
        assert accepted.json()["process_id"]
        not_json = await program.post(
            form["publicUrl"], content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400  # refused by the body guard, as everywhere
        assert "VALIDATION_ERROR" in not_json.text


async def test_private_form_needs_a_token_that_may_submit(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    form = await make_form(server, owner, public=False)
    url = form["publicUrl"]
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(url)).status_code == 404
        assert (await client.post(url, data={"email": "a@b.co", "message": "x"})).status_code == 404
        as_stranger = {"Authorization": f"Bearer {stranger.token}"}
        assert (await client.get(url, headers=as_stranger)).status_code == 404
        as_owner = {"Authorization": f"Bearer {owner.token}"}
        assert (await client.get(url, headers=as_owner)).status_code == 200
        sent = await client.post(url, json={"email": "a@b.co", "message": "x"}, headers=as_owner)
        assert sent.status_code == 201
        missing = await client.get(f"{server.url}/forms/{'0' * 8}-0000-0000-0000-{'0' * 12}")
        assert missing.status_code == 404
        assert (await client.get(f"{server.url}/forms/not-a-uuid")).status_code == 404

    # Made public: no token needed any more.
    await server.gql(
        "mutation($id: UUID!) { updateForm(id: $id, input: {public: true}) { id } }",
        {"id": form["id"]},
        token=owner.token,
    )
    async with httpx.AsyncClient(timeout=30) as client:
        assert (await client.get(url)).status_code == 200


async def test_page_escapes_and_refuses_other_sites(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    form = await make_form(server, account, public=True, name='<script>alert("x")</script>')
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(form["publicUrl"])
        assert "<script>" not in page.text
        assert html.escape('<script>alert("x")</script>') in page.text
        assert re.search(r"<title>&lt;script&gt;", page.text)
        forged = await client.post(
            form["publicUrl"],
            data={"email": "a@b.co", "message": "x"},
            headers={"Origin": "https://evil.example"},
        )
        assert forged.status_code == 403
        same_site = await client.post(
            form["publicUrl"],
            data={"email": "a@b.co", "message": "x"},
            headers={"Origin": server.url},
        )
        assert same_site.status_code == 200
    assert len(await submissions(server, account, form["id"])) == 1

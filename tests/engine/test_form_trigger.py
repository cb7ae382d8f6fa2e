"""A form submission starts the form's workflow at its form trigger, in the same transaction,
and credentials are injected into outbound calls by reference."""

from __future__ import annotations

import json

from tests.conftest import Factory, LiveServer
from tests.engine.conftest import Target, create_workflow, wait_status


async def test_submission_starts_the_forms_workflow(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    await server.gql(
        'mutation { createCredential(input: {name: "crm", type: "api_key", value: "tok-123"}) { id } }',
        token=account.token,
    )
    workflow = await create_workflow(
        server,
        account.token,
        "leads",
        [
            {"name": "contact form", "type": "form"},
            {
                "name": "to crm",
                "type": "http_request",
                "sources": ["contact form"],
                "options": {
                    "url": target.url + "/crm",
                    "method": "POST",
                    "credential": "crm",
                    "body": {"email": "{{ message.email }}"},
                },
            },
        ],
    )
    form = (
        await server.gql(
            """mutation($wf: UUID!) { createForm(input: {name: "Contact", workflowId: $wf, fields: [
             {name: "email", type: "email", required: true}, {name: "message", type: "textarea"}]}) { id } }""",
            {"wf": workflow["id"]},
            token=account.token,
        )
    )["data"]["createForm"]
    submitted = (
        await server.gql(
            "mutation($f: UUID!, $d: JSON!) { submitForm(formId: $f, data: $d) { id processId } }",
            {"f": form["id"], "d": {"email": "ada@example.com", "message": "hi"}},
            token=account.token,
        )
    )["data"]["submitForm"]
    assert submitted["processId"] is not None
    detail = await wait_status(
        server, account.token, submitted["processId"], {"COMPLETED", "FAILED"}
    )
    assert detail["status"] == "COMPLETED", detail
    assert detail["input"] == {"email": "ada@example.com", "message": "hi"}
    call = target.hits("/crm")[0]
    assert json.loads(call["body"]) == {"email": "ada@example.com"}
    assert call["headers"]["authorization"] == "Bearer tok-123"


async def test_invalid_submission_starts_nothing(server: LiveServer, factory: Factory) -> None:
    account = await factory.account()
    workflow = await create_workflow(server, account.token, "w", [{"name": "f", "type": "form"}])
    form = (
        await server.gql(
            """mutation($wf: UUID!) { createForm(input: {name: "C", workflowId: $wf,
             fields: [{name: "email", type: "email", required: true}]}) { id } }""",
            {"wf": workflow["id"]},
            token=account.token,
        )
    )["data"]["createForm"]
    bad = await server.gql(
        "mutation($f: UUID!, $d: JSON!) { submitForm(formId: $f, data: $d) { id } }",
        {"f": form["id"], "d": {"email": "not-an-email"}},
        token=account.token,
        expect_errors=True,
    )
    assert bad["errors"][0]["extensions"]["code"] == "VALIDATION_ERROR"
    assert "data.email" in bad["errors"][0]["extensions"]["fields"]
    listed = await server.gql("{ processes { totalCount } }", token=account.token)
    assert listed["data"]["processes"]["totalCount"] == 0


async def test_missing_credential_fails_the_step_clearly(
    server: LiveServer, factory: Factory, target: Target
) -> None:
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "w",
        [
            {
                "name": "call",
                "type": "http_request",
                "options": {"url": target.url + "/x", "credential": "nope"},
            },
        ],
    )
    result = await server.gql(
        "mutation($id: UUID!) { executeWorkflow(id: $id, wait: true) { status error } }",
        {"id": workflow["id"]},
        token=account.token,
    )
    process = result["data"]["executeWorkflow"]
    assert process["status"] == "FAILED" and "Credential not found" in process["error"]

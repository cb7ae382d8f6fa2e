"""Forms: typed fields, submissions validated against them, the submission hook and event."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from flowql.events.bus import BusEvent
from flowql.models import Role
from tests.conftest import Account, Factory, LiveServer, error_of, raw_rows

FIELDS = """
  id number workspaceId workflowId name description createdAt submissionsCount
  fields { name type required label options }
"""
SUBMISSION = "id number formId data processId createdAt"
CREATE = f"mutation ($input: CreateFormInput!) {{ createForm(input: $input) {{ {FIELDS} }} }}"
UPDATE = f"""
mutation ($id: UUID!, $input: UpdateFormInput!) {{ updateForm(id: $id, input: $input) {{ {FIELDS} }} }}"""
DELETE = "mutation ($id: UUID!) { deleteForm(id: $id) { id } }"
SUBMIT = f"""
mutation ($formId: UUID!, $data: JSON!) {{ submitForm(formId: $formId, data: $data) {{ {SUBMISSION} }} }}"""
GET = f"""
query ($id: UUID, $number: Int, $first: Int, $after: String) {{
  form(id: $id, number: $number) {{
    {FIELDS}
    submissions(first: $first, after: $after) {{
      totalCount pageInfo {{ hasNextPage endCursor }} nodes {{ {SUBMISSION} }}
    }}
  }}
}}"""
LIST = f"""
query ($filter: FormFilterInput) {{ forms(filter: $filter) {{ totalCount nodes {{ {FIELDS} }} }} }}"""
CREATE_WORKFLOW = 'mutation { createWorkflow(input: {name: "Leads", status: PUBLISHED}) { id } }'

CONTACT_FIELDS = [
    {"name": "email", "type": "email", "required": True, "label": "Your email"},
    {"name": "message", "type": "textarea", "required": True},
    {"name": "name", "type": "text"},
    {"name": "budget", "type": "number"},
    {"name": "seats", "type": "integer"},
    {"name": "newsletter", "type": "boolean"},
    {"name": "plan", "type": "select", "options": ["free", "pro"]},
    {"name": "start", "type": "date"},
    {"name": "site", "type": "url"},
    {"name": "phone", "type": "phone"},
]
GOOD = {
    "email": "user@example.com",
    "message": "Hello!",
    "name": "Ada",
    "budget": 12.5,
    "seats": 3,
    "newsletter": False,
    "plan": "pro",
    "start": "2024-02-29",
    "site": "https://example.com/about",
    "phone": "+1 (555) 010-9999",
}


async def create(server: LiveServer, account: Account, **values: Any) -> dict[str, Any]:
    values.setdefault("name", "Contact Form")
    values.setdefault("fields", CONTACT_FIELDS)
    body = await server.gql(CREATE, {"input": values}, token=account.token)
    created: dict[str, Any] = body["data"]["createForm"]
    return created


async def test_form_crud_with_fields_and_submissions(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    workflow = await server.gql(CREATE_WORKFLOW, token=owner.token)
    workflow_id = workflow["data"]["createWorkflow"]["id"]
    created = await create(server, owner, description="Talk to us", workflowId=workflow_id)
    assert created["workflowId"] == workflow_id
    assert created["submissionsCount"] == 0
    assert created["fields"][0] == {
        "name": "email",
        "type": "email",
        "required": True,
        "label": "Your email",
        "options": None,
    }
    assert created["fields"][6]["options"] == ["free", "pro"]

    for _ in range(3):
        await server.gql(SUBMIT, {"formId": created["id"], "data": GOOD}, token=owner.token)
    page = await server.gql(GET, {"number": created["number"], "first": 2}, token=owner.token)
    form = page["data"]["form"]
    assert form["submissionsCount"] == 3
    assert form["submissions"]["totalCount"] == 3
    assert form["submissions"]["pageInfo"]["hasNextPage"] is True
    assert form["submissions"]["nodes"][0]["data"] == GOOD
    assert form["submissions"]["nodes"][0]["formId"] == created["id"]
    rest = await server.gql(
        GET,
        {"id": created["id"], "first": 2, "after": form["submissions"]["pageInfo"]["endCursor"]},
        token=owner.token,
    )
    assert len(rest["data"]["form"]["submissions"]["nodes"]) == 1

    listed = await server.gql(LIST, {"filter": {"workflowId": workflow_id}}, token=owner.token)
    assert listed["data"]["forms"]["totalCount"] == 1
    assert listed["data"]["forms"]["nodes"][0]["submissionsCount"] == 3
    updated = await server.gql(
        UPDATE,
        {
            "id": created["id"],
            "input": {"name": "Short", "fields": [{"name": "q", "type": "text"}]},
        },
        token=owner.token,
    )
    assert updated["data"]["updateForm"]["name"] == "Short"
    assert updated["data"]["updateForm"]["fields"] == [
        {"name": "q", "type": "text", "required": False, "label": None, "options": None}
    ]
    await server.gql(DELETE, {"id": created["id"]}, token=owner.token)
    gone = await server.gql(GET, {"id": created["id"]}, token=owner.token, expect_errors=True)
    assert error_of(gone)["code"] == "NOT_FOUND"
    assert await raw_rows(server, "form_submissions") == []


async def test_a_submission_announces_itself(server: LiveServer, factory: Factory) -> None:
    owner = await factory.account()
    created = await create(server, owner)
    async with server.runtime.bus.subscribe(lambda e: e.topic == "form.submitted") as feed:
        body = await server.gql(SUBMIT, {"formId": created["id"], "data": GOOD}, token=owner.token)
        event: BusEvent = await asyncio.wait_for(anext(aiter(feed)), 5)
    submission_id = body["data"]["submitForm"]["id"]
    assert event.workspace_id == owner.workspace_id
    assert event.data == {"form_id": created["id"], "submission_id": submission_id}


INVALID_SUBMISSIONS = [
    ({**GOOD, "email": None}, {"data.email": "required"}),
    ({k: v for k, v in GOOD.items() if k != "message"}, {"data.message": "required"}),
    ({**GOOD, "message": ""}, {"data.message": "required"}),
    ({**GOOD, "email": "not-an-email"}, {"data.email": "not a valid email address"}),
    ({**GOOD, "budget": "12"}, {"data.budget": "must be a number"}),
    ({**GOOD, "budget": True}, {"data.budget": "must be a number"}),
    ({**GOOD, "seats": 1.5}, {"data.seats": "must be an integer"}),
    ({**GOOD, "newsletter": "yes"}, {"data.newsletter": "must be true or false"}),
    ({**GOOD, "plan": "enterprise"}, {"data.plan": "must be one of: free, pro"}),
    ({**GOOD, "start": "2023-02-29"}, {"data.start": "not a valid date (YYYY-MM-DD)"}),
    ({**GOOD, "start": "tomorrow"}, {"data.start": "not a valid date (YYYY-MM-DD)"}),
    ({**GOOD, "site": "ftp://example.com"}, {"data.site": "not a valid http(s) URL"}),
    ({**GOOD, "phone": "call me"}, {"data.phone": "not a valid phone number"}),
    ({**GOOD, "name": 42}, {"data.name": "must be a string"}),
    ({**GOOD, "admin": True}, {"data.admin": "unknown field"}),
    (
        {"email": "bad", "nope": 1},
        {
            "data.email": "not a valid email address",
            "data.message": "required",
            "data.nope": "unknown field",
        },
    ),
    ([1, 2], {"data": "must be an object"}),
]


@pytest.mark.parametrize(("data", "fields"), INVALID_SUBMISSIONS)
async def test_invalid_submissions_are_refused_naming_each_field(
    server: LiveServer, factory: Factory, data: Any, fields: dict[str, str]
) -> None:
    owner = await factory.account()
    created = await create(server, owner)
    body = await server.gql(
        SUBMIT, {"formId": created["id"], "data": data}, token=owner.token, expect_errors=True
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert error_of(body)["fields"] == fields
    assert await raw_rows(server, "form_submissions") == []


INVALID_FORMS = [
    ({"name": " "}, "name"),
    ({"description": "d" * 5001}, "description"),
    ({"fields": [{"name": "1st", "type": "text"}]}, "fields.0.name"),
    ({"fields": [{"name": "color", "type": "colour"}]}, "fields.0.type"),
    ({"fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "email"}]}, "fields.1.name"),
    ({"fields": [{"name": "plan", "type": "select"}]}, "fields.0.options"),
    ({"fields": [{"name": "plan", "type": "select", "options": ["a", "a"]}]}, "fields.0.options"),
    ({"fields": [{"name": "t", "type": "text", "options": ["a"]}]}, "fields.0.options"),
    ({"fields": [{"name": "t", "type": "text", "label": "l" * 201}]}, "fields.0.label"),
]


@pytest.mark.parametrize(("values", "field_name"), INVALID_FORMS)
async def test_invalid_form_input_is_refused_naming_the_field(
    server: LiveServer, factory: Factory, values: dict[str, Any], field_name: str
) -> None:
    owner = await factory.account()
    existing = await create(server, owner)
    before = await raw_rows(server, "forms")
    body = await server.gql(
        CREATE, {"input": {"name": "New", **values}}, token=owner.token, expect_errors=True
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    body = await server.gql(
        UPDATE, {"id": existing["id"], "input": values}, token=owner.token, expect_errors=True
    )
    assert error_of(body)["code"] == "VALIDATION_ERROR"
    assert field_name in error_of(body)["fields"]
    assert await raw_rows(server, "forms") == before


async def test_another_workspace_cannot_see_touch_or_submit_a_form(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    stranger = await factory.account()
    created = await create(server, owner, name="Owner Form")
    await server.gql(SUBMIT, {"formId": created["id"], "data": GOOD}, token=owner.token)
    before = (await raw_rows(server, "forms"), await raw_rows(server, "form_submissions"))

    listed = await server.gql(LIST, token=stranger.token)
    assert listed["data"]["forms"] == {"totalCount": 0, "nodes": []}
    attempts: list[tuple[str, dict[str, Any]]] = [
        (GET, {"id": created["id"]}),
        (GET, {"number": created["number"]}),
        (UPDATE, {"id": created["id"], "input": {"name": "mine"}}),
        (DELETE, {"id": created["id"]}),
        (SUBMIT, {"formId": created["id"], "data": GOOD}),
        (CREATE, {"input": {"name": "x", "workspaceId": str(owner.workspace_id)}}),
    ]
    for query, variables in attempts:
        body = await server.gql(query, variables, token=stranger.token, expect_errors=True)
        assert error_of(body)["code"] == "NOT_FOUND", query
        assert "Owner Form" not in json.dumps(body)
        assert "user@example.com" not in json.dumps(body)
    workflow = await server.gql(CREATE_WORKFLOW, token=owner.token)
    foreign = await server.gql(
        CREATE,
        {"input": {"name": "x", "workflowId": workflow["data"]["createWorkflow"]["id"]}},
        token=stranger.token,
        expect_errors=True,
    )
    assert list(error_of(foreign)["fields"]) == ["workflowId"]
    assert (await raw_rows(server, "forms"), await raw_rows(server, "form_submissions")) == before


async def test_members_build_forms_and_read_only_keys_cannot_submit(
    server: LiveServer, factory: Factory
) -> None:
    owner = await factory.account()
    member = await factory.account(role=Role.MEMBER, join=owner.workspace_id)
    created = await create(server, member)
    await server.gql(SUBMIT, {"formId": created["id"], "data": GOOD}, token=member.token)
    reader = await factory.api_key(owner, privileges=["form:read"])
    seen = await server.gql(GET, {"id": created["id"]}, token=reader)
    assert seen["data"]["form"]["submissionsCount"] == 1
    body = await server.gql(
        SUBMIT, {"formId": created["id"], "data": GOOD}, token=reader, expect_errors=True
    )
    assert error_of(body)["code"] == "FORBIDDEN"

"""Document 004: forms and submissions, credentials, integrations and webhooks."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from flowql.errors import ErrorCode, ValidationFailed
from flowql.rest_compat.base import Call, OperationFailed
from flowql.rest_compat.platform_v1_shared import (
    PAGE,
    PAGE_ARGS,
    PAGE_VARS,
    Body,
    Paging,
    iso,
    ok,
    parse_id,
    render_id,
    require,
    run,
)
from flowql.rest_compat.platform_v1_workflows import GET_WORKFLOW

FORM_FIELDS = (
    "number name description createdAt submissionsCount workflow { number } "
    "fields { name type required label options }"
)
SUBMISSION_FIELDS = "number data createdAt process { number }"
CREDENTIAL_FIELDS = "number name type createdAt updatedAt"
INTEGRATION_FIELDS = (
    "number name type settings hasCredentials createdAt lastTestedAt lastTestResult"
)
WEBHOOK_FIELDS = "number url events active description hasSecret createdAt"
FIELD_KEYS = ("name", "type", "required", "label", "options")

# -- shapes ------------------------------------------------------------------------------------


def form_json(form: dict[str, Any]) -> dict[str, Any]:
    workflow = form["workflow"]
    return {
        "id": render_id("form", form["number"]),
        "name": form["name"],
        "description": form["description"],
        "workflow_id": render_id("workflow", workflow["number"]) if workflow else None,
        "fields": [{k: f[k] for k in FIELD_KEYS} for f in form["fields"]],
        "submissions_count": form["submissionsCount"],
        "created_at": iso(form["createdAt"]),
    }


def submission_json(submission: dict[str, Any], form_number: int) -> dict[str, Any]:
    process = submission["process"]
    return {
        "id": render_id("submission", submission["number"]),
        "form_id": render_id("form", form_number),
        "data": submission["data"],
        "execution_id": render_id("execution", process["number"]) if process else None,
        "created_at": iso(submission["createdAt"]),
    }


def credential_json(credential: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": render_id("credential", credential["number"]),
        "name": credential["name"],
        "type": credential["type"],
        "created_at": iso(credential["createdAt"]),
        "updated_at": iso(credential["updatedAt"] or credential["createdAt"]),
    }


def integration_json(integration: dict[str, Any]) -> dict[str, Any]:
    result = integration["lastTestResult"]
    status = "untested" if result is None else ("ok" if result.get("ok") else "failing")
    return {
        "id": render_id("integration", integration["number"]),
        "name": integration["name"],
        "type": integration["type"],
        "status": status,
        "settings": integration["settings"],
        "has_credentials": integration["hasCredentials"],
        "created_at": iso(integration["createdAt"]),
        "last_tested_at": iso(integration["lastTestedAt"]),
    }


def webhook_json(webhook: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": render_id("webhook", webhook["number"]),
        "url": webhook["url"],
        "events": webhook["events"],
        "active": webhook["active"],
        "description": webhook["description"],
        "has_secret": webhook["hasSecret"],
        "created_at": iso(webhook["createdAt"]),
    }


# -- helpers -----------------------------------------------------------------------------------


async def listing(call: Call, privilege: str, field: str, fields: str) -> Any:
    """The connection page of a top-level list (newest first) and its meta."""
    require(call, privilege)
    paging = Paging.of(call)
    document = f"query({PAGE_VARS}) {{ {field}({PAGE_ARGS}) {{ {PAGE} nodes {{ {fields} }} }} }}"
    connection = (await run(call, document, paging.variables()))[field]
    return connection["nodes"], paging.meta(connection)


async def find(call: Call, field: str, kind: str, fields: str = "id number") -> dict[str, Any]:
    ident = parse_id(call.path["id"], kind)
    document = (
        f"query($id: UUID, $number: Int) {{ {field}(id: $id, number: $number) {{ {fields} }} }}"
    )
    found: dict[str, Any] = (await run(call, document, ident))[field]
    return found


async def delete(call: Call, kind: str, mutation: str) -> Response:
    ident = parse_id(call.path["id"], kind)
    document = (
        f"mutation($id: UUID, $number: Int) {{ {mutation}(id: $id, number: $number) {{ number }} }}"
    )
    row = (await run(call, document, ident))[mutation]
    return ok({"id": render_id(kind, row["number"]), "deleted": True})


# -- forms -------------------------------------------------------------------------------------


async def list_forms(call: Call) -> Response:
    nodes, meta = await listing(call, "form:read", "forms", FORM_FIELDS)
    return ok([form_json(f) for f in nodes], meta=meta)


async def get_form(call: Call) -> Response:
    return ok(form_json(await find(call, "form", "form", FORM_FIELDS)))


def _form_fields(raw: Any) -> list[dict[str, Any]]:
    problems: dict[str, str] = {}
    fields = []
    for index, spec in enumerate(raw):
        at = f"fields.{index}"
        if not isinstance(spec, dict):
            problems[at] = "must be an object"
            continue
        checks = Body(spec)
        field = {
            "name": checks.text("name", required=True),
            "type": checks.text("type", required=True),
            "required": bool(checks.flag("required")),
            "label": checks.text("label"),
            "options": checks.strings("options"),
        }
        problems.update({f"{at}.{k}": v for k, v in checks.problems.items()})
        fields.append(field)
    if problems:
        raise ValidationFailed(problems)
    return fields


async def create_form(call: Call) -> Response:
    body = Body(call.body)
    values = {
        "name": body.text("name", required=True),
        "description": body.text("description") or "",
        "fields": body.array("fields") or [],
    }
    workflow = body.text("workflow_id")
    body.done()
    values["fields"] = _form_fields(values["fields"])
    if workflow is not None:
        ident = parse_id(workflow, "workflow", "workflow_id")
        try:
            found = await run(call, GET_WORKFLOW.format("id"), ident)
        except OperationFailed as failed:
            if failed.code is not ErrorCode.NOT_FOUND:
                raise
            raise ValidationFailed.one("workflow_id", "no such workflow") from None
        values["workflowId"] = found["workflow"]["id"]
    document = (
        f"mutation($input: CreateFormInput!) {{ createForm(input: $input) {{ {FORM_FIELDS} }} }}"
    )
    data = await run(call, document, {"input": values})
    return ok(form_json(data["createForm"]), status=201)


async def submit_form(call: Call) -> Response:
    body = Body(call.body)
    submitted = body.mapping("data", required=True)
    body.done()
    ident = parse_id(call.path["id"], "form")
    document = (
        "mutation($id: UUID, $number: Int, $data: JSON!) { submitForm(formId: $id, "
        f"formNumber: $number, data: $data) {{ formNumber {SUBMISSION_FIELDS} }} }}"
    )
    submission = (await run(call, document, {**ident, "data": submitted}))["submitForm"]
    return ok(submission_json(submission, submission["formNumber"]), status=201)


async def list_submissions(call: Call) -> Response:
    paging = Paging.of(call)
    ident = parse_id(call.path["id"], "form")
    document = (
        f"query($id: UUID, $number: Int, {PAGE_VARS}) {{ form(id: $id, number: $number) "
        f"{{ number submissions({PAGE_ARGS}) {{ {PAGE} nodes {{ {SUBMISSION_FIELDS} }} }} }} }}"
    )
    form = (await run(call, document, {**ident, **paging.variables()}))["form"]
    connection = form["submissions"]
    return ok(
        [submission_json(s, form["number"]) for s in connection["nodes"]],
        meta=paging.meta(connection),
    )


# -- credentials -------------------------------------------------------------------------------


async def list_credentials(call: Call) -> Response:
    nodes, meta = await listing(call, "credential:read", "credentials", CREDENTIAL_FIELDS)
    return ok([credential_json(c) for c in nodes], meta=meta)


async def create_credential(call: Call) -> Response:
    body = Body(call.body)
    values = {
        "name": body.text("name", required=True),
        "type": body.text("type") or "secret",
        "value": body.text("value", required=True),
    }
    body.done()
    document = (
        "mutation($input: CreateCredentialInput!) "
        f"{{ createCredential(input: $input) {{ {CREDENTIAL_FIELDS} }} }}"
    )
    data = await run(call, document, {"input": values})
    return ok(credential_json(data["createCredential"]), status=201)


async def delete_credential(call: Call) -> Response:
    return await delete(call, "credential", "deleteCredential")


# -- integrations ------------------------------------------------------------------------------


async def list_integrations(call: Call) -> Response:
    nodes, meta = await listing(call, "integration:read", "integrations", INTEGRATION_FIELDS)
    return ok([integration_json(i) for i in nodes], meta=meta)


async def test_integration(call: Call) -> Response:
    ident = parse_id(call.path["id"], "integration")
    document = (
        "mutation($id: UUID, $number: Int) { testIntegration(id: $id, number: $number) "
        "{ number lastTestedAt lastTestResult } }"
    )
    tested = (await run(call, document, ident))["testIntegration"]
    result = tested["lastTestResult"] or {}
    return ok(
        {
            "id": render_id("integration", tested["number"]),
            "ok": bool(result.get("ok")),
            "status_code": result.get("status"),
            "error": result.get("error"),
            "tested_at": iso(tested["lastTestedAt"]),
        }
    )


# -- webhooks ----------------------------------------------------------------------------------


async def list_webhooks(call: Call) -> Response:
    nodes, meta = await listing(call, "webhook:read", "webhookSubscriptions", WEBHOOK_FIELDS)
    return ok([webhook_json(w) for w in nodes], meta=meta)


async def create_webhook(call: Call) -> Response:
    body = Body(call.body)
    values = {
        "url": body.text("url", required=True),
        "events": body.strings("events", required=True),
        "secret": body.text("secret"),
        "description": body.text("description") or "",
        "active": body.flag("active"),
    }
    body.done()
    if values["active"] is None:
        values["active"] = True
    document = (
        "mutation($input: CreateWebhookSubscriptionInput!) "
        f"{{ createWebhookSubscription(input: $input) {{ {WEBHOOK_FIELDS} }} }}"
    )
    data = await run(call, document, {"input": values})
    return ok(webhook_json(data["createWebhookSubscription"]), status=201)


async def delete_webhook(call: Call) -> Response:
    return await delete(call, "webhook", "deleteWebhookSubscription")

"""Document 004: forms and their submissions (a submission starts the form's workflow)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from flowql.errors import ValidationFailed
from flowql.rest_compat.base import Call, OperationFailed
from flowql.rest_compat.platform_v1.envelope import (
    PAGE,
    PAGE_ARGS,
    PAGE_VARS,
    Body,
    Paging,
    iso,
    listing,
    ok,
    operation,
    parse_id,
    render_id,
    run,
)

FORM_FIELDS = (
    "number name description createdAt submissionsCount workflow { number } "
    "fields { name type required label options }"
)
SUBMISSION_FIELDS = "number data createdAt process { number }"
FIELD_KEYS = ("name", "type", "required", "label", "options")


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


async def list_forms(call: Call) -> Response:
    nodes, meta = await listing(call, "form:read", "forms", FORM_FIELDS)
    return ok([form_json(f) for f in nodes], meta=meta)


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
        # One operation: createForm takes the workflow by number as well as by id.
        ref = parse_id(workflow, "workflow", "workflow_id")
        values.update({f"workflow{k.capitalize()}": v for k, v in ref.items()})
    document = (
        f"mutation($input: CreateFormInput!) {{ createForm(input: $input) {{ {FORM_FIELDS} }} }}"
    )
    try:
        data = await run(call, document, {"input": values})
    except OperationFailed as failed:
        fields = failed.details.get("fields")
        if isinstance(fields, dict) and {"workflow_id", "workflow_number", "workflowNumber"} & set(
            fields
        ):
            raise ValidationFailed.one("workflow_id", "no such workflow") from None
        raise
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


GET = operation("form", "form", FORM_FIELDS)

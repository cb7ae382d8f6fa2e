"""Document 004: the automation platform REST API v1, mounted at /v1.

Authentication: `Authorization: Bearer <API key>` (a user's access token works too).
Every success is `{"success": true, "data": ..., "meta": ...}` (`meta` on lists only); every
error is `{"success": false, "error": {"code", "message", "details"}}` with UNAUTHORIZED 401,
FORBIDDEN 403, NOT_FOUND 404, VALIDATION_ERROR **400** (never 422; `details.fields` maps each
invalid field to its problem), RATE_LIMITED 429 (with Retry-After and X-RateLimit-* headers),
INTERNAL_ERROR 500; an unsupported method answers 405 with VALIDATION_ERROR.

Ids: workflows `wf_<n>`, executions `exec_<n>`, forms `form_<n>`, submissions `sub_<n>`,
credentials `cred_<n>`, integrations `int_<n>`, webhooks `wh_<n>`; every `{id}` also accepts the
bare number or the object's UUID. A malformed id is VALIDATION_ERROR "Invalid <kind> ID"; an id of
another workspace is NOT_FOUND. Listing a resource without its read privilege is FORBIDDEN.

Lists are newest first. Every list takes `page` (from 1) and `limit` (default 20, at most 100),
or `cursor` (the previous page's `meta.next_cursor`) and `limit`; `meta` always holds `page` (null
when paging by cursor), `limit`, `total`, `next_cursor` and `has_more`.

Workflows: `nodes` are the workflow's agents, `{id, name, type, config, disabled, max_retries,
timeout_seconds, keep_messages_for}`, and a node's `id` is its (unique) name; `edges` are
`{source, target}` node ids. On create/update a node is named by `name`, else `id`, and edges may
point at either; what GET returns can be sent back unchanged (secret config values come back as
`********` and are kept). PATCH with only `nodes` keeps the edges between remaining nodes; with
only `edges` it keeps the nodes. Node `position` is not stored.

Execution: POST /workflows/{id}/execute answers 202 with the execution started (it runs in the
background; an `Idempotency-Key` header returns the same execution for 24 h). Execution statuses:
pending, running (also while waiting on a delay), completed, failed, cancelled. `started_at` is
when the execution was started (triggered), the same in every answer; `from`/`to` filter on it
(inclusive, ISO 8601; a date alone is midnight UTC); `status` takes a comma-separated list.

Credentials never return their value. A form submission's `data` is checked against the form's
field types (unknown fields are refused) and starts the form's workflow at its form trigger
(`execution_id`). POST /integrations/{id}/test really tests the integration (an `http` one is a
GET of its `settings.url`); a failed test is still a 200 with `ok: false`. DELETE answers 200 with
`{"id", "deleted": true}`.

Deprecation: a route being retired answers with `Deprecation` (RFC 9745) and `Sunset` (RFC 8594)
headers and is marked deprecated here, at least 12 months before its sunset;
GET /workflows/{id}/runs is such a route (use GET /workflows/{id}/executions).
"""

from __future__ import annotations

from typing import Any

from flowql.rest_compat.base import Endpoint, Shaper
from flowql.rest_compat.openapi import obj, query_param
from flowql.rest_compat.platform_v1 import credentials, forms, integrations, webhooks
from flowql.rest_compat.platform_v1 import workflows as wf
from flowql.rest_compat.platform_v1.envelope import (
    DELETED,
    ERROR_SCHEMA,
    PAGE_PARAMETERS,
    STRING,
    by_reference,
    deleted,
    error_format,
    in_rest_terms,
    request_body,
    respond,
    shaped,
)
from flowql.rest_compat.platform_v1.openapi import (
    CREDENTIAL,
    CREDENTIAL_INPUT,
    DEPRECATION,
    EXECUTION,
    EXECUTION_DETAIL,
    EXECUTION_FILTERS,
    FORM,
    FORM_INPUT,
    INTEGRATION,
    OBJECT,
    STARTED,
    SUBMISSION,
    TEST_RESULT,
    WEBHOOK,
    WEBHOOK_INPUT,
    WORKFLOW,
    WORKFLOW_INPUT,
    WORKFLOW_STATUS,
    WORKFLOW_SUMMARY,
    deprecated,
)


def route(
    method: str, path: str, summary: str, handler: Any, body: bool = False, **openapi: Any
) -> Endpoint:
    """A route whose answer takes more than one declared operation (bodies checked field by
    field, paging, a read that fills half a graph)."""
    return Endpoint(method, path, summary, handler=handler, json_body=body, openapi=openapi)


def one(
    method: str, path: str, summary: str, kind: str, document: str, shape: Shaper, **openapi: Any
) -> Endpoint:
    """The common case, declared: one GraphQL operation on the object `{id}` names (`wf_12`,
    `12` or a UUID) and its documented shape; errors in this API's field names and kinds."""
    return Endpoint(
        method,
        path,
        summary,
        document=document,
        variables=by_reference(kind),
        shape=shape,
        failure=in_rest_terms,
        openapi=openapi,
    )


ENDPOINTS = [
    route(
        "GET",
        "/workflows",
        "List workflows",
        wf.list_workflows,
        parameters=[
            query_param("status", WORKFLOW_STATUS, "Filter by status"),
            query_param("search", STRING, "Search by name"),
            *PAGE_PARAMETERS,
        ],
        responses=respond(200, WORKFLOW_SUMMARY, listing=True),
    ),
    route(
        "POST",
        "/workflows",
        "Create a workflow",
        wf.create_workflow,
        body=True,
        **request_body(WORKFLOW_INPUT),
        responses=respond(201, WORKFLOW, "Created"),
    ),
    one(
        "GET",
        "/workflows/{id}",
        "Get a workflow",
        "workflow",
        wf.GET,
        shaped("workflow", wf.workflow_json),
        responses=respond(200, WORKFLOW),
    ),
    route(
        "PATCH",
        "/workflows/{id}",
        "Update a workflow",
        wf.update_workflow,
        body=True,
        **request_body({**WORKFLOW_INPUT, "required": []}),
        responses=respond(200, WORKFLOW),
    ),
    one(
        "DELETE",
        "/workflows/{id}",
        "Delete a workflow",
        "workflow",
        wf.DELETE,
        deleted("workflow", "deleteWorkflow"),
        responses=respond(200, DELETED),
    ),
    route(
        "POST",
        "/workflows/{id}/execute",
        "Execute a workflow",
        wf.execute_workflow,
        body=True,
        **request_body(obj({"input": OBJECT}, required=[]), required=False),
        parameters=[
            {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "The same key within 24 h returns the same execution",
                "schema": {"type": "string", "maxLength": 200},
            }
        ],
        responses=respond(202, STARTED, "Execution started"),
    ),
    route(
        "GET",
        "/workflows/{id}/executions",
        "List a workflow's executions",
        wf.workflow_executions,
        parameters=EXECUTION_FILTERS,
        responses=respond(200, EXECUTION, listing=True),
    ),
    Endpoint(
        "GET",
        "/workflows/{id}/runs",
        "List a workflow's executions (deprecated alias)",
        handler=wf.workflow_executions,
        headers=DEPRECATION,
        openapi={
            "parameters": EXECUTION_FILTERS,
            **deprecated(respond(200, EXECUTION, listing=True)),
        },
    ),
    route(
        "GET",
        "/executions",
        "List executions",
        wf.list_executions,
        parameters=[
            query_param("workflow_id", STRING, "Only this workflow's executions"),
            *EXECUTION_FILTERS,
        ],
        responses=respond(200, EXECUTION, listing=True),
    ),
    one(
        "GET",
        "/executions/{id}",
        "Get an execution's status",
        "execution",
        wf.GET_EXECUTION,
        shaped("process", wf.execution_detail),
        responses=respond(200, EXECUTION_DETAIL),
    ),
    route(
        "GET",
        "/forms",
        "List forms",
        forms.list_forms,
        parameters=PAGE_PARAMETERS,
        responses=respond(200, FORM, listing=True),
    ),
    route(
        "POST",
        "/forms",
        "Create a form",
        forms.create_form,
        body=True,
        **request_body(FORM_INPUT),
        responses=respond(201, FORM, "Created"),
    ),
    one(
        "GET",
        "/forms/{id}",
        "Get a form",
        "form",
        forms.GET,
        shaped("form", forms.form_json),
        responses=respond(200, FORM),
    ),
    route(
        "POST",
        "/forms/{id}/submissions",
        "Submit a form",
        forms.submit_form,
        body=True,
        **request_body(obj({"data": OBJECT})),
        responses=respond(201, SUBMISSION, "Submitted; the form's workflow started"),
    ),
    route(
        "GET",
        "/forms/{id}/submissions",
        "Get a form's submissions",
        forms.list_submissions,
        parameters=PAGE_PARAMETERS,
        responses=respond(200, SUBMISSION, listing=True),
    ),
    route(
        "GET",
        "/credentials",
        "List credentials (never their values)",
        credentials.list_credentials,
        parameters=PAGE_PARAMETERS,
        responses=respond(200, CREDENTIAL, listing=True),
    ),
    route(
        "POST",
        "/credentials",
        "Create a credential",
        credentials.create_credential,
        body=True,
        **request_body(CREDENTIAL_INPUT),
        responses=respond(201, CREDENTIAL, "Created"),
    ),
    one(
        "DELETE",
        "/credentials/{id}",
        "Delete a credential",
        "credential",
        credentials.DELETE,
        deleted("credential", "deleteCredential"),
        responses=respond(200, DELETED),
    ),
    route(
        "GET",
        "/integrations",
        "List connected integrations",
        integrations.list_integrations,
        parameters=PAGE_PARAMETERS,
        responses=respond(200, INTEGRATION, listing=True),
    ),
    one(
        "POST",
        "/integrations/{id}/test",
        "Test an integration",
        "integration",
        integrations.TEST,
        shaped("testIntegration", integrations.test_result),
        responses=respond(200, TEST_RESULT, "Tested (see ok)"),
    ),
    route(
        "POST",
        "/webhooks",
        "Create a webhook",
        webhooks.create_webhook,
        body=True,
        **request_body(WEBHOOK_INPUT),
        responses=respond(201, WEBHOOK, "Created"),
    ),
    route(
        "GET",
        "/webhooks",
        "List webhooks",
        webhooks.list_webhooks,
        parameters=PAGE_PARAMETERS,
        responses=respond(200, WEBHOOK, listing=True),
    ),
    one(
        "DELETE",
        "/webhooks/{id}",
        "Delete a webhook",
        "webhook",
        webhooks.DELETE,
        deleted("webhook", "deleteWebhookSubscription"),
        responses=respond(200, DELETED),
    ),
]

PREFIX = "/v1"
TITLE = "Automation platform REST API v1 (flowql compatibility)"
DESCRIPTION = __doc__ or ""
ERROR = ERROR_SCHEMA
FORMAT = error_format

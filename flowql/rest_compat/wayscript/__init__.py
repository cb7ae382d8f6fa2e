"""Documents 000 and 001: WayScript's HTTP API and its classic "Run Program" API, mounted at
/compat/wayscript. The routes are declared in `wayscript_http` (000) and `wayscript_run` (001).

Choices where the documents are vague (also served as this mount's OpenAPI description):
"""

from __future__ import annotations

from flowql.rest_compat.wayscript import http as wayscript_http
from flowql.rest_compat.wayscript import run as wayscript_run
from flowql.rest_compat.wayscript.envelope import error_format
from flowql.rest_compat.wayscript.openapi import ERROR_SCHEMA

CHOICES = """
**Credentials (000).** Every route takes `Authorization: Bearer <token>`: the execution token
of a running process (`issueExecutionToken`, WayScript's `WAYSCRIPT_EXECUTION_USER_TOKEN`), a
user access token or a flowql API key (the "application key" of `users/self`). An expired or
invalid token is answered 401 on every route; `POST /auth/refresh` needs no valid bearer and
rotates an execution refresh token (reusing a rotated one revokes the whole family).

**Errors (000)** are the documented bare statuses (400 bad body, 401, 403, 404, 409 credentials
that cannot be decrypted, 429) with a short JSON reason: `{"error": "<message>", "code":
"<CODE>"}`. Another tenant's objects are 404, never 403.

**Shapes (000).** Ids are UUIDs; datetimes ISO 8601. `process` carries both the documented
`commpleted_date` and `completed_date`; `lair_id` is the workflow id; `service_id` and `port` are
null (flowql runs no services); `command` is the trigger's command. `event` is null for a process
without one and `lair_trigger` is null for a process not started by a trigger (e.g. run by hand).
`lair_trigger.type` is the trigger type in lower case (`webhook`, `http`, `schedule`, `manual`,
`form`); `settings` is its options and `data` is `{name, type, path, outputs, active}`. A lair's
`name` is a slug of the workflow name and `friendly_name` the name itself; `workspace_uuid`
repeats `workspace_id` (WayScript's Python SDK reads it); `endpoint` is the URL prefix where the
lair's `http`/`webhook` triggers answer (`<base>/hooks/<lair id>`). `users/self` is the user
behind the credential with the groups of that workspace the user belongs to: 404 when the
caller is not a member of the workspace or the credential has no user.

**Integration credentials (000).** `credentials` (a JSON string) is returned only to the
execution token of a running process of the integration's workspace, as WayScript hands them to
the process that needs them; for every other caller it is `null` (use `credentials_state`).
`settings` is always a JSON string.

**No-content routes (000).** `POST /webhooks/http-trigger/response/{process_id}` and
`POST /files/lairs/{lair_id}/secrets` answer 200 with `{}`. The http-trigger response (body `{data,
headers, status_code}`, status 200 when omitted) goes to the caller waiting at `/hooks/…` on
that process's `http` trigger; a second answer for the same process is 400. A lair secret is
stored encrypted as a secret of the workflow; 403 when the caller may not edit the workflow,
and always for an execution token (a running process never manages credentials).

**Run Program (001).** `POST /api?api_key=…&program_id=<workflow number>`. The function is a
`webhook` trigger of the workflow, by name; without `function` the only active one runs.
Repeated `variables` fill the trigger's declared `outputs` in order (more variables than outputs
is 400). Synchronous runs wait up to 300 s and answer `{"Success": "Program finished.",
"Result": [...]}` where `Result` lists the payloads emitted by the program's final agents (those
with no receivers), oldest first; a run still going after the wait answers 202 `{"Success":
"Program started."}`; a failed run answers 500 `{"Error": "Program failed: …"}`.
`run_async=True` answers `{"Success": "Program started."}` at once. Errors of this route are
WayScript-style `{"Error": "<message>"}`: 400 missing or bad parameters, several webhook
triggers and no `function` ("…Please specify which function you would like to run…"), or a
function without an active Webhook Trigger ("The function you specify must have an active
Webhook Trigger."); 401 missing or invalid API key; 403 a key that may not run programs; 404
unknown program.
"""

ENDPOINTS = [*wayscript_http.ENDPOINTS, *wayscript_run.ENDPOINTS]
PREFIX = "/compat/wayscript"
# Document 001 authenticates with `?api_key=…`.
QUERY_KEY_PATHS = (f"{PREFIX}/api",)
TITLE = "WayScript HTTP API and Run Program API (flowql compatibility)"
DESCRIPTION = (__doc__ or "") + CHOICES
ERROR = ERROR_SCHEMA
FORMAT = error_format

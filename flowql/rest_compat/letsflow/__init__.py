"""Document 003: LetsFlow's workflow engine API, mounted at /compat/letsflow.

Scenarios and processes are served in LetsFlow's own JSON (schemas.letsflow.io/v1.0/scenario
and /process), so a LetsFlow client reads them unchanged. The routes are declared in
`letsflow_scenarios` (scenarios, processes) and `letsflow_apikeys` (API keys).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from flowql.rest_compat.base import Call, Endpoint
from flowql.rest_compat.letsflow import apikeys as letsflow_apikeys
from flowql.rest_compat.letsflow import scenarios as letsflow_scenarios
from flowql.rest_compat.letsflow.envelope import (
    PREFIX,
    error_format,
    respond,
)
from flowql.rest_compat.letsflow.openapi import (
    DEMO_ACCOUNT_SCHEMA,
    ERROR_SCHEMA,
    INFO_SCHEMA,
    error_response,
    ok,
)

CHOICES = """
**Credentials.** `Authorization: Bearer <token>`: a flowql user access token (`login`) or a
flowql API key. Missing or invalid credentials are 401. `As-Actor: <actor key>` names the actor
to act as when the caller could be several (required then; 400 without it); an actor the caller
may not act as is 403. A user is an actor of a process when the actor record's `id` or `userId`
is the user's id.

**Errors** are JSON, shaped like LetsFlow's refused step: `{"error": {"message", "code",
"reason": [...], "fields"?, "eventId"?}}`. `reason` lists why (a skipped action's reasons; each
invalid field as `path: problem`). 400 invalid input or a refused action, 401, 403, 404 (also
another tenant's objects, malformed ids and unknown actions), 409 a process whose history no
longer replays, 429.

**`GET /info`** (public) is `{name, version, description, env}` (`env`: `development` or
`production`). **`GET /demo-accounts`** (public) lists, only in development with demo accounts
on, the demo accounts `[{id, name, email, roles, token}]` where `token` is a fresh access token
(the demo password is public anyway); otherwise 403 "Demo accounts are disabled", as LetsFlow.

**Scenarios.** `GET /scenarios` lists the enabled scenarios you may read, by title:
`[{id, name, title, description, tags}]`. `POST /scenarios` takes the scenario as JSON, or as YAML
with `Content-Type: application/yaml`; 201 with `Location: /compat/letsflow/scenarios/<id>` and
`{"id"}`. The id is derived from the normalised scenario, so storing it again (also the JSON or
YAML served back) gives the same id; re-storing does not re-enable a disabled scenario. An invalid
scenario is 400 naming the path. `GET /scenarios/{id}` serves the normalised scenario (LetsFlow
JSON), or YAML with LetsFlow's tags when `Accept` prefers `application/yaml`; a disabled one
carries `X-Disabled: true`. `DELETE /scenarios/{id}` disables it (204): it starts no new
processes, running ones go on. With several workspaces, add `?workspace=<uuid>` to the POSTs.

**Processes.** `GET /processes?page=1&all=false` lists 100 scenario processes per page (newest
first): `[{id, title, tags, scenario: {id, name, title, description, tags}, actors: [{key, ...}],
created, lastUpdated}]`. Without `all` only processes where you are an actor; a scope-limited API
key sees the processes of its scenarios. `all=true` is for admins (403 otherwise): callers
holding `member:write` (workspace owners and admins). `POST /processes` takes `{scenario, actors?,
action?, vars?}` where `action` is a key or `{key, response}` (performed as `As-Actor`); 201 with
the process (LetsFlow JSON) and `Location`. An unknown scenario or action, a disabled scenario or
a refused first action is 400 and nothing is stored. `GET /processes/{id}` is the process (a
projection of its hash-chained events). `POST /processes/{id}/{action}` takes the response as the
JSON body (any JSON; empty: none) and answers 204; an action that may not be performed now is
recorded in the process as a skipped event and answered 400 with the reasons in `reason` (and the
skipped `eventId`); 403 when you may not act (not an actor, outside an API key's scopes), 404 an
unknown process or action. Reading and listing follow flowql's workspace privileges
(`process:read`); members may read every process of their workspace.

**API keys.** Listed keys (also revoked ones) never carry the secret: `token` is the masked
`fql_<prefix>_****`; only the 201 answer of `POST /apikey` carries the whole token, once.
`privileges` is a list. LetsFlow's names map to flowql's (`apikey:issue`, `apikey:revoke` ->
`apikey:write`; `process:start`, `process:step` -> `process:run`); flowql's names are accepted too
and listed in LetsFlow's names where one exists. A key never holds more than its issuer.
Without privileges a key holds none. `processes` scopes are `[{scenario: <uuid>|null, actors,
actions}]` (null or empty lists: no limit). Without `expiration` or `expirationDays` a key
expires after 30 days, as in LetsFlow. `DELETE /apikey/{id}` revokes (204).
"""


INFO = "{ serverInfo { name version description env } }"
DEMO = "{ demoAccounts { id email name token } }"


async def info(call: Call) -> Response:
    return respond(call, (await call.run(INFO))["serverInfo"])


def demo_account(account: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": account["id"],
        "name": account["name"],
        "email": account["email"],
        "roles": ["admin"],
        "token": account["token"],
    }


async def demo_accounts(call: Call) -> Response:
    accounts = (await call.run(DEMO))["demoAccounts"]
    return respond(call, [demo_account(a) for a in accounts])


ENDPOINTS = [
    Endpoint(
        "GET",
        "/info",
        "Get system information",
        handler=info,
        public=True,
        openapi={"responses": ok(INFO_SCHEMA)},
    ),
    Endpoint(
        "GET",
        "/demo-accounts",
        "Get demo accounts",
        handler=demo_accounts,
        public=True,
        openapi={
            "responses": {
                **ok({"type": "array", "items": DEMO_ACCOUNT_SCHEMA}),
                "403": error_response("Demo accounts are disabled (not in development)"),
            }
        },
    ),
    *letsflow_scenarios.ENDPOINTS,
    *letsflow_apikeys.ENDPOINTS,
]

TITLE = "LetsFlow workflow engine API (flowql compatibility)"
DESCRIPTION = (__doc__ or "") + CHOICES
ERROR = ERROR_SCHEMA
FORMAT = error_format

__all__ = ["DESCRIPTION", "ENDPOINTS", "ERROR", "FORMAT", "PREFIX", "TITLE"]

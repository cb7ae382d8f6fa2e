"""The tenancy matrix: every GraphQL operation and REST route that takes an id, tried with the
other workspace's ids and numbers by every kind of caller; every try is refused and answers
nothing of the other workspace.

The operations are found by introspecting the schema (`flowql.schema.build_schema`) and each
REST mount's served `/openapi.json`, so a new operation is tried as soon as it exists. An id
argument is classified by the kind of row it names (its name, or the type the field returns);
one the matrix cannot classify fails the test until it is classified here or allow-listed
with a reason. One server and one database serve the whole matrix.

A try puts one foreign value (workspace B's UUID or number) in one id slot; every other
required argument gets a plausible value, ids from the caller's own workspace A, so the only
reason to refuse is the foreign id. Refused means: GraphQL error codes NOT_FOUND, FORBIDDEN or
UNAUTHORIZED (or VALIDATION_ERROR naming the foreign argument; list fields may answer an empty
page instead); REST 401, 403 or 404 (400/422 naming the foreign parameter; list routes may
answer an empty list). No answer may contain B's marker, UUIDs, e-mail addresses or secrets
(other than the value the caller itself sent), and B's data is unchanged at the end.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import graphql
import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
)

from flowql.rest_compat import FAMILIES
from flowql.schema import build_schema
from tests.security.live import ThreadedServer, report
from tests.security.tenancy_world import World, build_world

REFUSED_CODES = {"NOT_FOUND", "FORBIDDEN", "UNAUTHORIZED"}
REFUSED_STATUSES = {401, 403, 404}

# The kind of row a field's `id`/`number` names, by the type it returns.
TYPE_KINDS = {
    "Workspace": "workspace",
    "Workflow": "workflow",
    "Agent": "agent",
    "Trigger": "trigger",
    "Message": "message",
    "Process": "process",
    "Scenario": "scenario",
    "Integration": "integration",
    "Credential": "credential",
    "Form": "form",
    "FormSubmission": "submission",
    "WebhookSubscription": "webhook",
    "ApiKey": "apikey",
    "Group": "group",
    "User": "user",
    "Event": "event",
    "Invitation": "invitation",
    "AuditEntry": "audit",
}
# Fields whose `id` names a row of another type than the one they return.
FIELD_KINDS = {
    "verifyProcess": "process",
    "issueExecutionToken": "process",
    "processUpdated": "process",
    "processLogs": "process",
}
# The kind an argument names, by its name without the `Id`/`Ids`/`Number` suffix.
NAME_KINDS = {
    "workspace": "workspace",
    "workflow": "workflow",
    "agent": "agent",
    "source": "agent",
    "trigger": "trigger",
    "message": "message",
    "process": "process",
    "scenario": "scenario",
    "integration": "integration",
    "credential": "credential",
    "form": "form",
    "submission": "submission",
    "webhook": "webhook",
    "subscription": "webhook",
    "apiKey": "apikey",
    "group": "group",
    "user": "user",
    "member": "user",
    "event": "event",
    "invitation": "invitation",
    "audit": "audit",
    # a filter on any row (the audit log's targetId): one of the other workspace's rows
    "target": "workflow",
    # REST spellings: legacy names of the same rows (docs/architecture.md)
    "lair": "workflow",
    "program": "workflow",
    "execution": "process",
    "run": "process",
    "workspace_integration": "integration",
    "apikey": "apikey",
}
# Slots that look like ids but name nothing in flowql, each with the reason.
NOT_TENANT_IDS = {
    "externalAccountId": "the account's id in the integrated system: free text, not a row",
    "idempotencyKey": "a caller-chosen key, scoped to the caller's workspace by the service",
    "action": "a scenario action's key (REST path), not a row",
}
# JSON body properties (by their place in the body) that look like ids but are not rows.
NOT_TENANT_BODY_IDS = {
    ("nodes", 0, "id"): "a platform v1 node's id is its agent's name within the workflow",
}
# Slots that take any UUID, each with the reason: there the other workspace's id must be answered
# exactly as an id that names nothing, so the answer tells nothing about the other workspace.
ANY_ID_ACCEPTED = {
    ("Mutation.createApiKey", "input.processScopes.0.scenario"): (
        "a process scope names a scenario by its content hash, which may be stored later"
    ),
    ("POST /compat/letsflow/apikey", "body processes.0.scenario"): (
        "the same process scope, in LetsFlow's spelling"
    ),
}
# Operations the matrix does not try, each with the reason.
SKIPPED_OPERATIONS = {
    "Mutation.login": "takes no id",
}


# -- the GraphQL side ------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A place in an operation's arguments that holds an id: path from the field's arguments."""

    path: tuple[str | int, ...]
    kind: str | None
    form: str  # "uuid" | "number" | "string"
    is_list: bool
    required: bool

    @property
    def name(self) -> str:
        return ".".join(str(p) for p in self.path)


def unwrap(type_: Any) -> tuple[Any, bool, bool]:
    """(named type, non-null, is list)."""
    required = isinstance(type_, GraphQLNonNull)
    if required:
        type_ = type_.of_type
    is_list = isinstance(type_, GraphQLList)
    return graphql.get_named_type(type_), required, is_list


def slot_kind(field_name: str, field: GraphQLField, arg: str, top: bool) -> str | None:
    if top and arg in ("id", "number"):
        returned = graphql.get_named_type(field.type).name
        return FIELD_KINDS.get(field_name) or TYPE_KINDS.get(returned)
    stem = re.sub(r"(Ids|Id|Number|_id)$", "", arg)
    words = re.split(r"(?=[A-Z])", stem)
    for start in range(len(words)):  # actorUserId names a user, actorApiKeyId an API key
        tail = "".join(words[start:])
        kind = NAME_KINDS.get(tail[:1].lower() + tail[1:])
        if kind is not None:
            return kind
    return None


def id_slots(field_name: str, field: GraphQLField) -> list[Slot]:
    slots: list[Slot] = []

    def walk(
        args: dict[str, Any], prefix: tuple[str | int, ...], top: bool, seen: frozenset[str]
    ) -> None:
        for name, arg in args.items():
            named, required, is_list = unwrap(arg.type)
            path = (*prefix, name)
            if isinstance(named, GraphQLInputObjectType):
                if named.name not in seen:
                    inner: tuple[str | int, ...] = (*path, 0) if is_list else path
                    walk(named.fields, inner, False, seen | {named.name})
                continue
            form = None
            if named.name in ("UUID", "ID"):
                form = "uuid"
            elif named.name == "Int" and (name == "number" or name.endswith("Number")):
                form = "number"
            elif named.name == "String" and re.search(r"(Id|Ids)$", name):
                form = "string"
            if form is None:
                continue
            if name in NOT_TENANT_IDS:
                continue
            kind = slot_kind(field_name, field, name, top)
            slots.append(Slot(path, kind, form, is_list, required))

    walk(field.args, (), True, frozenset())
    return slots


def plausible_scalar(named: Any, name: str, world: World) -> Any:
    """A value the service would accept for a required non-id argument."""
    if isinstance(named, GraphQLEnumType):
        preferred = {"TriggerType": "MANUAL", "Role": "MEMBER"}.get(named.name)
        return preferred or next(iter(named.values))
    text = {
        "email": "nobody@example.com",
        "password": "not-the-password",
        "url": "https://example.com/hook",
        "type": "message",  # an agent type; a wrong one would fail the try loudly, not pass it
        "key": "SOME_KEY",
        "value": "some value",
        "action": "approve",
        "refreshToken": "not-a-token",
        "yaml": "",
    }
    if named.name == "String":
        return text.get(name, f"{world.marker} value")
    return {
        "Int": 200 if name == "status" else 1,
        "Float": 1.0,
        "Boolean": False,
        "JSON": {},
        "DateTime": "2099-01-01T00:00:00+00:00",
        "UUID": "00000000-0000-4000-8000-000000000000",
    }[named.name]


def plausible_overrides(field_name: str, own: World, server: ThreadedServer) -> dict[str, Any]:
    """Values no generic rule can make up: a definition the service would store."""
    if field_name == "storeScenario":
        return {"yaml": "states:\n  initial:\n    on: complete\n    goto: (done)\n"}
    if field_name == "importWorkflow":
        exported = server.gql(
            "query($id: UUID!) { workflow(id: $id) { exportDefinition } }",
            {"id": own.first("workflow").id},
            own.owner.token,
        )
        return {"definition": exported["workflow"]["exportDefinition"]}
    return {}


def own_value(slot: Slot, own: World, field_name: str) -> Any:
    kind = slot.kind or "workspace"
    rows = own.rows[kind]
    row = rows[-1] if kind == "process" and field_name == "performAction" else rows[0]
    if kind == "user":
        row = own.rows["user"][1]  # the member, never the caller itself
    value: Any = row.number if slot.form == "number" else row.id
    return [value] if slot.is_list else value


def referenced(name: str, siblings: Any) -> bool:
    """`xId` beside `xNumber` (issue 13): one of the pair is needed, so the id is filled; `put`
    drops it when the number is the slot under test."""
    return name.endswith("Id") and f"{name[:-2]}Number" in siblings


def fill(
    type_: GraphQLInputType,
    name: str,
    world: World,
    field_name: str,
    slots: dict[tuple[str | int, ...], Slot],
    path: tuple[str | int, ...],
) -> Any:
    """A value for one required argument (or input field), recursively."""
    named, _, is_list = unwrap(type_)
    if isinstance(named, GraphQLInputObjectType):
        value = {
            key: fill(
                f.type, key, world, field_name, slots, (*path, 0, key) if is_list else (*path, key)
            )
            for key, f in named.fields.items()
            if (isinstance(f.type, GraphQLNonNull) and f.default_value is graphql.Undefined)
            or referenced(key, named.fields)
        }
        return [value] if is_list else value
    if path in slots:
        return own_value(slots[path], world, field_name)
    scalar = plausible_scalar(named, name, world)
    return [scalar] if is_list else scalar


def put(
    container: dict[str, Any],
    path: tuple[str | int, ...],
    value: Any,
    fields: dict[str, Any],
    world: World,
    field_name: str,
    slots: dict[tuple[str | int, ...], Slot],
    prefix: tuple[str | int, ...] = (),
) -> None:
    """Set `value` at `path`, creating the input objects (with their required fields) on the way."""
    key = path[0]
    assert isinstance(key, str)
    if len(path) == 1:
        container[key] = value
        if key.endswith("Number"):
            container.pop(f"{key[:-6]}Id", None)
        return
    named, _, is_list = unwrap(fields[key].type)
    if container.get(key) is None:
        container[key] = fill(fields[key].type, key, world, field_name, slots, (*prefix, key))
    inner = container[key][0] if is_list else container[key]
    rest = path[2:] if is_list else path[1:]
    inner_prefix = (*prefix, key, 0) if is_list else (*prefix, key)
    put(inner, rest, value, named.fields, world, field_name, slots, inner_prefix)


def selection(type_: Any, depth: int = 0) -> str:
    """Every leaf field without required arguments (one level into objects and pages)."""
    named = graphql.get_named_type(type_)
    if not isinstance(named, GraphQLObjectType):
        return ""
    parts = []
    for name, field in named.fields.items():
        if any(
            isinstance(a.type, GraphQLNonNull) and a.default_value is graphql.Undefined
            for a in field.args.values()
        ):
            continue
        inner = graphql.get_named_type(field.type)
        if isinstance(inner, (GraphQLScalarType, GraphQLEnumType)):
            parts.append(name)
        elif depth == 0 and (
            name in ("nodes", "apiKey", "process", "event", "user")
            or named.name.endswith("Connection")
        ):
            sub = selection(field.type, depth + 1)
            if sub:
                parts.append(f"{name} {sub}")
    return "{ " + " ".join(parts) + " }"


@dataclass
class Attempt:
    operation: str
    slot: str
    caller: str
    query: str
    variables: dict[str, Any]
    sent: set[str]


def graphql_attempts(
    schema: GraphQLSchema,
    own: World,
    other: World,
    server: ThreadedServer,
    unclassified: list[str],
    keywords: tuple[str, ...] = ("query", "mutation"),
) -> Iterator[tuple[Attempt, GraphQLField]]:
    types = {
        "query": schema.query_type,
        "mutation": schema.mutation_type,
        "subscription": schema.subscription_type,
    }
    for keyword in keywords:
        root = types[keyword]
        assert root is not None
        for field_name, field in root.fields.items():
            operation = f"{root.name}.{field_name}"
            if operation in SKIPPED_OPERATIONS:
                continue
            slots = id_slots(field_name, field)
            for slot in slots:
                if slot.kind is None or slot.kind not in other.rows:
                    unclassified.append(f"{operation}({slot.name})")
            by_path = {s.path: s for s in slots}
            overrides = plausible_overrides(field_name, own, server) if slots else {}
            for slot in slots:
                if slot.kind is None or slot.kind not in other.rows:
                    continue
                for row in other.rows[slot.kind]:
                    foreign: Any = row.number if slot.form == "number" else row.id
                    base: dict[str, Any] = {}
                    for name, arg in field.args.items():
                        if name in overrides:
                            base[name] = overrides[name]
                        elif (
                            isinstance(arg.type, GraphQLNonNull)
                            and arg.default_value is graphql.Undefined
                        ) or (name == "id" and "number" in field.args and slot.path != ("number",)):
                            # An object addressed by `id` or `number` needs one of them.
                            base[name] = fill(arg.type, name, own, field_name, by_path, (name,))
                        elif referenced(name, field.args):
                            # So does a `xId`/`xNumber` pair.
                            base[name] = fill(arg.type, name, own, field_name, by_path, (name,))
                    put(
                        base,
                        slot.path,
                        [foreign] if slot.is_list else foreign,
                        field.args,
                        own,
                        field_name,
                        by_path,
                    )
                    used = list(base)
                    header = ", ".join(f"${n}: {field.args[n].type}" for n in used)
                    args = ", ".join(f"{n}: ${n}" for n in used)
                    query = (
                        f"{keyword}{f'({header})' if header else ''} "
                        f"{{ {field_name}{f'({args})' if args else ''} {selection(field.type)} }}"
                    )
                    for caller in own.callers:
                        yield (
                            Attempt(operation, slot.name, caller, query, base, {str(foreign)}),
                            field,
                        )


def outcome(body: Any) -> tuple[str, ...]:
    errors = body.get("errors") if isinstance(body, dict) else None
    return tuple(str((e.get("extensions") or {}).get("code")) for e in errors or []) or ("ok",)


def leaks(text: str, other: World, sent: set[str]) -> list[str]:
    return sorted(n for n in other.needles() - sent if n and n in text)


def judge_graphql(attempt: Attempt, field: GraphQLField, status: int, body: Any) -> str | None:
    """None when refused properly, else what went wrong."""
    if status >= 500:
        return f"HTTP {status}"
    errors = body.get("errors") if isinstance(body, dict) else None
    if errors:
        for error in errors:
            code = (error.get("extensions") or {}).get("code")
            if code in REFUSED_CODES:
                continue
            fields = (error.get("extensions") or {}).get("fields") or {}
            last = attempt.slot.split(".")[-1]
            if code == "VALIDATION_ERROR" and any(last in str(k) for k in fields):
                continue
            return f"answered {code}: {error.get('message')} {fields or ''}"
        return None
    data = (body.get("data") or {}).get(attempt.operation.split(".")[1])
    if isinstance(data, dict) and "totalCount" in data:
        return None if data["totalCount"] == 0 else f"listed {data['totalCount']} rows"
    if data in (None, [], {}):
        return None
    return "accepted"


# -- the REST side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    name: str
    location: str  # path | query | body
    kind: str | None
    schema: dict[str, Any]
    pointer: tuple[str | int, ...] = ()  # where in the JSON body


def rest_kind(name: str, path: str) -> str | None:
    """`agent_id` names an agent; `id` names what the segment before it lists (`/lairs/{id}`)."""
    if name != "id":
        return NAME_KINDS.get(re.sub(r"(_id|Id)$", "", name))
    before = path.split("/{id}")[0].rstrip("/").split("/")[-1].replace("-", "_")
    for stem in (before, before[:-1], before[:-2]):  # apikey, workflows, processes
        if stem in NAME_KINDS:
            return NAME_KINDS[stem]
    return None


def is_rest_id(name: str, schema: dict[str, Any]) -> bool:
    if name in NOT_TENANT_IDS:
        return False
    return (
        name == "id"
        or name.endswith("_id")
        or schema.get("format") == "uuid"
        or name in ("workspace", "scenario")
    )


def body_slots(
    schema: dict[str, Any], pointer: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """The id-like properties of a JSON body, anywhere in it (`processes.0.scenario`)."""
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if is_rest_id(name, prop) and prop.get("type") not in ("object", "array"):
            if (*pointer, name) not in NOT_TENANT_BODY_IDS:
                yield (*pointer, name), prop
        elif prop.get("type") == "array" and isinstance(prop.get("items"), dict):
            yield from body_slots(prop["items"], (*pointer, name, 0))
        elif prop.get("type") == "object":
            yield from body_slots(prop, (*pointer, name))


def set_pointer(
    body: Any, pointer: tuple[str | int, ...], value: Any, schema: dict[str, Any]
) -> Any:
    """`body` with `value` at `pointer`, made of minimal samples of the schema on the way."""
    if not pointer:
        return value
    key, rest = pointer[0], pointer[1:]
    if isinstance(key, int):
        items = schema.get("items", {})
        inner = body[0] if isinstance(body, list) and body else json_sample(items)
        return [set_pointer(inner, rest, value, items)]
    prop = (schema.get("properties") or {}).get(key, {})
    container = dict(body) if isinstance(body, dict) else {}
    container[key] = set_pointer(container.get(key), rest, value, prop)
    return container


def json_sample(schema: dict[str, Any], name: str = "") -> Any:
    """A minimal value for a JSON Schema (required properties only)."""
    if "enum" in schema:
        return schema["enum"][0]
    if "oneOf" in schema:
        return json_sample(schema["oneOf"][0], name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: json_sample(props.get(k, {}), k) for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(int(schema.get("minimum", 1)), 1) if name != "status_code" else 200
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return False
    if schema.get("format") == "uri" or name == "url":
        return "https://example.com/hook"
    if kind == "string":
        return {"refresh_token": "not-a-token"}.get(name, "value")
    return {}


@dataclass
class RestAttempt:
    method: str
    url: str
    caller: str
    params: dict[str, str]
    body: Any
    slot: str
    sent: set[str]
    is_list: bool
    route: str


def rest_attempts(
    specs: dict[str, dict[str, Any]], own: World, other: World, unclassified: list[str]
) -> Iterator[RestAttempt]:
    for prefix, spec in specs.items():
        for path, operations in spec["paths"].items():
            for method, operation in operations.items():
                slots: list[Param] = []
                for p in operation.get("parameters", []):
                    if p["in"] in ("path", "query") and is_rest_id(p["name"], p.get("schema", {})):
                        slots.append(
                            Param(
                                p["name"], p["in"], rest_kind(p["name"], path), p.get("schema", {})
                            )
                        )
                body_schema = (
                    operation.get("requestBody", {})
                    .get("content", {})
                    .get("application/json", {})
                    .get("schema")
                )
                for pointer, prop in body_slots(body_schema or {}):
                    name = str(pointer[-1])
                    slots.append(Param(name, "body", rest_kind(name, path), prop, pointer))
                for slot in slots:
                    if slot.kind is None or slot.kind not in other.rows:
                        unclassified.append(
                            f"{method.upper()} {prefix}{path} ({slot.location} {slot.name})"
                        )
                if not slots:
                    continue
                # every other path/query parameter the route needs, with the caller's own values
                base_path: dict[str, str] = {}
                base_query: dict[str, str] = {}
                for p in operation.get("parameters", []):
                    slot = next(
                        (s for s in slots if s.name == p["name"] and s.location == p["in"]), None
                    )
                    if slot is not None and slot.kind in own.rows:
                        value = own.first(slot.kind)
                        text = (
                            str(value.number)
                            if p.get("schema", {}).get("type") == "integer"
                            else value.id
                        )
                    else:
                        text = str(json_sample(p.get("schema", {}), p["name"]))
                    if p["in"] == "path":
                        base_path[p["name"]] = text
                    elif p["in"] == "query" and (p.get("required") or slot is not None):
                        base_query[p["name"]] = text
                base_body = json_sample(body_schema) if body_schema else None
                for slot in slots:
                    if slot.kind is None or slot.kind not in other.rows:
                        continue
                    for row in other.rows[slot.kind]:
                        forms = (
                            [str(row.number)]
                            if slot.schema.get("type") == "integer"
                            else [row.id]
                            if slot.schema.get("format") == "uuid"
                            else [row.id, str(row.number)]
                        )
                        for form in forms:
                            path_values = dict(base_path)
                            query = dict(base_query)
                            body = json.loads(json.dumps(base_body))
                            if slot.location == "path":
                                path_values[slot.name] = form
                            elif slot.location == "query":
                                query[slot.name] = form
                            else:
                                body = set_pointer(body, slot.pointer, form, body_schema or {})
                            url = prefix + path.format(**path_values)
                            for caller in own.callers:
                                yield RestAttempt(
                                    method.upper(),
                                    url,
                                    caller,
                                    query,
                                    body,
                                    f"{slot.location} {'.'.join(map(str, slot.pointer)) or slot.name}",
                                    {form},
                                    method == "get" and not path.endswith("}"),
                                    f"{method.upper()} {prefix}{path}",
                                )


def judge_rest(attempt: RestAttempt, status: int, text: str) -> str | None:
    if status >= 500:
        return f"HTTP {status}"
    if status in REFUSED_STATUSES:
        return None
    name = attempt.slot.split(" ")[1].split(".")[-1]
    if status in (400, 422) and name in text:
        return None
    if 200 <= status < 300 and attempt.is_list:
        body = json.loads(text) if text else None
        items = body.get("data") if isinstance(body, dict) else body
        if items in ([], None) or (isinstance(items, dict) and not items):
            return None
        return f"listed rows: {text[:200]}"
    return f"answered {status}: {text[:300]}"


def changes(before: Any, after: Any, path: str = "") -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(set(before) | set(after))
        return [c for k in keys for c in changes(before.get(k), after.get(k), f"{path}.{k}")]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [
            c
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for c in changes(b, a, f"{path}[{i}]")
        ]
    if before == after or path.endswith(".exported_at"):  # an export is stamped when read
        return []
    return [f"{path}: {before!r} -> {after!r}"]


def snapshot(server: ThreadedServer, schema: GraphQLSchema, world: World) -> dict[str, Any]:
    """Every list the workspace's owner can read, every leaf of every row (and the members)."""
    assert schema.query_type is not None
    lists = [
        f"{name} {selection(field.type)}"
        for name, field in schema.query_type.fields.items()
        if graphql.get_named_type(field.type).name.endswith("Connection")
        and not any(isinstance(a.type, GraphQLNonNull) for a in field.args.values())
    ]
    members = "viewer { workspaces { members { userId role } groups { id name members { id } } } }"
    return server.gql("{ " + " ".join([*lists, members]) + " }", token=world.owner.token)


# -- the matrix ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def worlds(threaded_server: ThreadedServer) -> tuple[World, World]:
    return build_world(threaded_server, "A"), build_world(threaded_server, "B")


def test_no_operation_or_route_reaches_another_workspace(
    threaded_server: ThreadedServer, worlds: tuple[World, World]
) -> None:
    server = threaded_server
    own, other = worlds
    schema = build_schema()._schema
    before = snapshot(server, schema, other)
    unclassified: list[str] = []
    failures: list[str] = []
    operations: set[str] = set()
    tries = 0

    for attempt, field in graphql_attempts(schema, own, other, server, unclassified):
        response = server.post(attempt.query, attempt.variables, own.callers[attempt.caller])
        tries += 1
        operations.add(attempt.operation)
        try:
            body = response.json()
        except ValueError:
            body = None
        verdict = judge_graphql(attempt, field, response.status_code, body)
        if (attempt.operation, attempt.slot) in ANY_ID_ACCEPTED:
            unknown = json.loads(
                json.dumps(attempt.variables).replace(next(iter(attempt.sent)), str(uuid.uuid4()))
            )
            control = server.post(attempt.query, unknown, own.callers[attempt.caller])
            same = outcome(response.json()) == outcome(control.json())
            verdict = (
                None
                if same
                else f"answers {outcome(body)}, an unknown id {outcome(control.json())}"
            )
        leaked = leaks(response.text, other, attempt.sent)
        if verdict or leaked:
            failures.append(
                f"{attempt.operation} [{attempt.slot}] as {attempt.caller}: "
                f"{verdict or ''}{' leaked ' + str(leaked) if leaked else ''}"
            )

    specs = {
        family.PREFIX: server.client.get(f"{family.PREFIX}/openapi.json").json()
        for family in FAMILIES
    }
    routes: set[str] = set()
    for rest in rest_attempts(specs, own, other, unclassified):
        response = server.client.request(
            rest.method,
            rest.url,
            params=rest.params,
            json=rest.body if rest.body is not None else None,
            headers={"Authorization": f"Bearer {own.callers[rest.caller]}"},
        )
        tries += 1
        routes.add(rest.route)
        verdict = judge_rest(rest, response.status_code, response.text)
        if (rest.route, rest.slot) in ANY_ID_ACCEPTED:
            unknown = json.loads(json.dumps(rest.body).replace(*rest.sent, str(uuid.uuid4())))
            control = server.client.request(
                rest.method,
                rest.url,
                params=rest.params,
                json=unknown,
                headers={"Authorization": f"Bearer {own.callers[rest.caller]}"},
            )
            same = response.status_code == control.status_code
            verdict = (
                None if same else f"{response.status_code}, an unknown id {control.status_code}"
            )
        leaked = leaks(response.text, other, rest.sent)
        if verdict or leaked:
            failures.append(
                f"{rest.method} {rest.url} [{rest.slot}] as {rest.caller}: "
                f"{verdict or ''}{' leaked ' + str(leaked) if leaked else ''}"
            )

    after = snapshot(server, schema, other)
    report(
        f"tenancy matrix: {tries} tries ({len(operations)} GraphQL operations, {len(routes)} REST "
        f"routes) x {len(own.callers)} callers x foreign ids/numbers; {len(failures)} failures"
    )
    problems = [f"cannot classify {slot}" for slot in sorted(set(unclassified))]
    changed = changes(before, after)
    if changed:
        problems.append(f"the other workspace changed: {changed}")
    assert not problems + failures, f"{len(problems + failures)} problems:\n" + "\n".join(
        problems + failures
    )


def test_an_id_argument_the_matrix_cannot_classify_is_reported() -> None:
    schema = graphql.build_schema(
        """type Gizmo { id: ID! }
           type Query { gizmo(id: UUID!): Gizmo!  workflow(id: UUID, number: Int): Gizmo! }
           type Mutation { frobnicate(gizmoId: UUID!, externalAccountId: String): Gizmo! }
           scalar UUID"""
    )
    assert schema.query_type is not None and schema.mutation_type is not None
    slots = {
        name: [(s.name, s.kind) for s in id_slots(name, field)]
        for root in (schema.query_type, schema.mutation_type)
        for name, field in root.fields.items()
    }
    assert slots == {
        "gizmo": [("id", None)],
        "workflow": [("id", None), ("number", None)],
        "frobnicate": [("gizmoId", None)],
    }


# -- live feeds ------------------------------------------------------------------------------

FEED_HEADERS = {"Accept": 'multipart/mixed;subscriptionSpec="1.0", application/json'}
OWN_FEED = "subscription($w: UUID) { processEvents(workflowId: $w) { id input } }"


@dataclass
class Feed:
    """One multipart subscription, read in a thread until the stream ends or is closed."""

    label: str
    query: str
    variables: dict[str, Any]
    token: str
    sent: set[str]
    status: int = 0
    text: str = ""
    response: httpx.Response | None = None
    opened: threading.Event = dataclasses.field(default_factory=threading.Event)

    def listen(self, client: httpx.Client) -> None:
        headers = {**FEED_HEADERS, "Authorization": f"Bearer {self.token}"}
        body = {"query": self.query, "variables": self.variables}
        try:
            with client.stream("POST", "/graphql", json=body, headers=headers) as response:
                self.status, self.response = response.status_code, response
                self.opened.set()
                for chunk in response.iter_text():
                    self.text += chunk
        except (httpx.HTTPError, RuntimeError, ValueError, AttributeError):
            pass  # closed from the test once the other workspace has acted
        finally:
            self.opened.set()

    def payloads(self) -> list[dict[str, Any]]:
        found = []
        for part in self.text.split("--graphql"):
            content = part.partition("\r\n\r\n")[2].strip()
            if content.startswith("{"):
                message = json.loads(content)
                found.append(message.get("payload", message))
        return found


def test_no_live_feed_reaches_another_workspace(
    threaded_server: ThreadedServer, worlds: tuple[World, World]
) -> None:
    """Every subscription that takes an id, opened with the other workspace's ids while that
    workspace runs its workflow and acts on its scenario process: refused or silent."""
    server = threaded_server
    own, other = worlds
    schema = build_schema()._schema
    unclassified: list[str] = []
    feeds = [
        Feed(
            f"{a.operation} [{a.slot}] as {a.caller}",
            a.query,
            a.variables,
            own.callers[a.caller],
            a.sent,
        )
        for a, _ in graphql_attempts(schema, own, other, server, unclassified, ("subscription",))
    ]
    control = Feed(
        "own workflow", OWN_FEED, {"w": own.first("workflow").id}, own.owner.token, set()
    )
    threads = [threading.Thread(target=f.listen, args=(server.client,)) for f in [*feeds, control]]
    for thread in threads:
        thread.start()
    for feed in [*feeds, control]:
        assert feed.opened.wait(30), feed.label
    time.sleep(0.5)  # the feeds subscribe to the bus after their headers are sent: no event says so
    for world in (other, own):
        server.gql(
            "mutation($id: UUID!, $n: JSON) { executeWorkflow(id: $id, input: $n, wait: true) { id } }",
            {"id": world.first("workflow").id, "n": {"secret": f"{world.marker} live"}},
            world.owner.token,
        )
    server.gql(
        """mutation($id: UUID!, $r: JSON) { performAction(input: {processId: $id, action: "submit",
             response: $r}) { process { id } } }""",
        {"id": other.rows["process"][-1].id, "r": {"amount": 1, "reason": f"{other.marker} live"}},
        other.owner.token,
    )
    deadline = time.monotonic() + 10  # our own run, started last, reaches the control feed
    while own.marker not in control.text and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # what the other workspace did has had as long to arrive as our own
    for feed in [*feeds, control]:
        if feed.response is not None:
            feed.response.close()
    for thread in threads:
        thread.join(10)

    failures = [f"cannot classify {slot}" for slot in sorted(set(unclassified))]
    for feed in feeds:
        codes = {
            (error.get("extensions") or {}).get("code")
            for payload in feed.payloads()
            for error in payload.get("errors") or []
        }
        data = [p["data"] for p in feed.payloads() if p.get("data")]
        leaked = leaks(feed.text, other, feed.sent)
        if feed.status >= 500 or codes - REFUSED_CODES or data or leaked:
            failures.append(
                f"{feed.label}: HTTP {feed.status}, codes {codes}, data {data}, leaked {leaked}"
            )
    report(
        f"tenancy matrix, live feeds: {len(feeds)} subscriptions on the other workspace's ids; {len(failures)} failures"
    )
    assert own.marker in control.text, "the control feed saw nothing: the feeds were not listening"
    assert not failures, "\n".join(failures)

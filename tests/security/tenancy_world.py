"""Two workspaces with one of each kind of object, made through the API as their owners would.

Every name, payload and secret of a workspace carries its marker (`zzA…`, `zzB…`), so a response
that leaks anything of the other workspace is found by searching its text for the marker, the
other workspace's UUIDs and its tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowql.models import Role
from tests.conftest import Account
from tests.security.live import ThreadedServer

SCENARIO = (Path(__file__).parent.parent / "scenarios" / "data" / "approval.yaml").read_text()


@dataclass(frozen=True)
class Row:
    id: str
    number: int


@dataclass
class World:
    """One workspace: its people, one row of each kind, and the callers it can hand out."""

    marker: str
    owner: Account
    member: Account
    rows: dict[str, list[Row]] = field(default_factory=dict)
    callers: dict[str, str] = field(default_factory=dict)
    secrets: set[str] = field(default_factory=set)

    def add(self, kind: str, row: dict[str, Any]) -> None:
        self.rows.setdefault(kind, []).append(Row(str(row["id"]), int(row["number"])))

    def first(self, kind: str) -> Row:
        return self.rows[kind][0]

    def needles(self) -> set[str]:
        """What must never appear in an answer to the other workspace's callers."""
        ids = {row.id for rows in self.rows.values() for row in rows}
        return {self.marker, self.owner.email, self.member.email, *ids, *self.secrets}


def build_world(server: ThreadedServer, label: str) -> World:
    marker = f"zz{label}{uuid.uuid4().hex[:10]}"
    owner = server.account(workspace=f"{marker} workspace")
    member = server.account(join=owner, role=Role.MEMBER)
    world = World(marker=marker, owner=owner, member=member)
    token = owner.token

    def gql(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        return server.gql(query, variables, token)

    ws = gql(
        "query($id: UUID!) { workspace(id: $id) { id number } }", {"id": str(owner.workspace_id)}
    )
    world.add("workspace", ws["workspace"])
    for account in (owner, member):
        viewer = server.gql("{ viewer { user { id number } } }", token=account.token)
        world.add("user", viewer["viewer"]["user"])

    workflow = gql(
        """mutation($i: CreateWorkflowInput!) { createWorkflow(input: $i) {
             id number agents { id number name } triggers { id number } } }""",
        {
            "i": {
                "name": f"{marker} workflow",
                "description": f"{marker} plans",
                "variables": {"plan": f"{marker} variable"},
                "agents": [
                    {
                        "name": "hook",
                        "type": "webhook",
                        "options": {"path": "in", "secret": f"{marker}-hook-secret"},
                    },
                    {"name": "emit", "type": "message", "sources": ["hook"]},
                ],
            }
        },
    )["createWorkflow"]
    world.add("workflow", workflow)
    for agent in sorted(workflow["agents"], key=lambda a: a["name"] != "emit"):
        world.add("agent", agent)
    for trigger in workflow["triggers"]:
        world.add("trigger", trigger)
    world.secrets.add(f"{marker}-hook-secret")

    process = gql(
        """mutation($id: UUID!, $n: JSON) {
             executeWorkflow(id: $id, input: $n, wait: true, waitTimeout: 20) { id number status } }""",
        {"id": workflow["id"], "n": {"secret": f"{marker} input"}},
    )["executeWorkflow"]
    assert process["status"] == "COMPLETED", process
    world.add("process", process)
    messages = gql(
        "query($id: UUID!) { messages(filter: {processId: $id}) { nodes { id number } } }",
        {"id": process["id"]},
    )["messages"]["nodes"]
    assert messages
    for message in messages:
        world.add("message", message)
    event = gql(
        "query($id: UUID!) { process(id: $id) { event { id number } } }", {"id": process["id"]}
    )
    world.add("event", event["process"]["event"])

    definition = SCENARIO.replace("title: Expense approval", f"title: {marker} approval")
    scenario = gql(
        "mutation($y: String) { storeScenario(yaml: $y) { id number } }", {"y": definition}
    )["storeScenario"]
    world.add("scenario", scenario)
    started = gql(
        "mutation($i: StartProcessInput!) { startProcess(input: $i) { id number } }",
        {
            "i": {
                "scenarioId": scenario["id"],
                "actors": {
                    "requester": {"userId": str(owner.user_id)},
                    "approver": {"userId": str(member.user_id), "title": f"{marker} approver"},
                },
            }
        },
    )["startProcess"]
    world.add("process", started)

    world.add(
        "integration",
        gql(
            "mutation($i: CreateIntegrationInput!) { createIntegration(input: $i) { id number } }",
            {
                "i": {
                    "name": f"{marker} integration",
                    "type": "http",
                    "settings": {"url": "https://example.com/status"},
                    "credentials": {"token": f"{marker}-integration-secret"},
                }
            },
        )["createIntegration"],
    )
    world.secrets.add(f"{marker}-integration-secret")
    world.add(
        "credential",
        gql(
            "mutation($i: CreateCredentialInput!) { createCredential(input: $i) { id number } }",
            {"i": {"name": f"{marker} credential", "value": f"{marker}-credential-secret"}},
        )["createCredential"],
    )
    world.add(
        "credential",
        gql(
            """mutation($w: UUID!, $v: String!) {
                 setWorkflowSecret(workflowId: $w, key: "TOKEN", value: $v) { id number } }""",
            {"w": workflow["id"], "v": f"{marker}-workflow-secret"},
        )["setWorkflowSecret"],
    )
    world.secrets |= {f"{marker}-credential-secret", f"{marker}-workflow-secret"}

    form = gql(
        "mutation($i: CreateFormInput!) { createForm(input: $i) { id number } }",
        {
            "i": {
                "name": f"{marker} form",
                "workflowId": workflow["id"],
                "fields": [{"name": "note", "type": "text"}],
            }
        },
    )["createForm"]
    world.add("form", form)
    world.add(
        "submission",
        gql(
            "mutation($f: UUID!, $d: JSON!) { submitForm(formId: $f, data: $d) { id number } }",
            {"f": form["id"], "d": {"note": f"{marker} submitted"}},
        )["submitForm"],
    )
    world.add(
        "webhook",
        gql(
            """mutation($i: CreateWebhookSubscriptionInput!) {
                 createWebhookSubscription(input: $i) { id number } }""",
            {
                "i": {
                    "url": "https://example.com/flowql-events",
                    "events": ["form.submitted"],
                    "secret": f"{marker}-webhook-secret",
                    "description": f"{marker} webhook",
                    "active": False,
                }
            },
        )["createWebhookSubscription"],
    )
    world.secrets.add(f"{marker}-webhook-secret")

    key = gql(
        """mutation($i: CreateApiKeyInput!) {
             createApiKey(input: $i) { token apiKey { id number } } }""",
        {"i": {"name": f"{marker} key"}},
    )["createApiKey"]
    world.add("apikey", key["apiKey"])
    scoped = gql(
        """mutation($i: CreateApiKeyInput!) {
             createApiKey(input: $i) { token apiKey { id number } } }""",
        {
            "i": {
                "name": f"{marker} scoped key",
                "processScopes": [
                    {"scenario": scenario["id"], "actors": ["approver"], "actions": ["approve"]}
                ],
            }
        },
    )["createApiKey"]
    world.add("apikey", scoped["apiKey"])

    group = gql(
        "mutation($w: UUID!, $n: String!) { createGroup(workspaceId: $w, name: $n) { id number } }",
        {"w": str(owner.workspace_id), "n": f"{marker} group"},
    )["createGroup"]
    world.add("group", group)
    gql(
        "mutation($g: UUID!, $u: UUID!) { addGroupMember(groupId: $g, userId: $u) { id } }",
        {"g": group["id"], "u": str(member.user_id)},
    )

    mutations = gql("{ __schema { mutationType { fields { name } } } }")
    if "inviteMember" in {f["name"] for f in mutations["__schema"]["mutationType"]["fields"]}:
        invitation = gql(
            """mutation($w: UUID!, $e: String!) {
                 inviteMember(workspaceId: $w, email: $e) { id number } }""",
            {"w": str(owner.workspace_id), "e": f"invitee-{marker.lower()}@example.com"},
        )["inviteMember"]
        world.add("invitation", invitation)

    execution = gql(
        "mutation($id: UUID!) { issueExecutionToken(id: $id) { accessToken refreshToken } }",
        {"id": process["id"]},
    )["issueExecutionToken"]

    world.callers = {
        "user token": owner.token,
        "API key": key["token"],
        "scoped API key": scoped["token"],
        "execution token": execution["accessToken"],
    }
    world.secrets |= {
        key["token"],
        scoped["token"],
        execution["accessToken"],
        execution["refreshToken"],
        owner.token,
        owner.refresh_token,
        member.token,
        member.refresh_token,
    }
    return world

"""Filter inputs are declared once: each GraphQL filter input is derived from its service's
filter dataclass (same fields, same order), and turns back into that dataclass."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import Any

import strawberry

import flowql.schema  # noqa: F401  (registers the enums the filters use)
from flowql.models import ProcessStatus
from flowql.schema.apikeys import ApiKeyFilterInput
from flowql.schema.audit import AuditFilterInput
from flowql.schema.filters import FilterInput, filter_input
from flowql.schema.forms import FormFilterInput
from flowql.schema.integrations import CredentialFilterInput, IntegrationFilterInput
from flowql.schema.messages import AgentFilterInput, MessageFilterInput
from flowql.schema.processes import ProcessFilterInput
from flowql.schema.scenarios import ScenarioFilterInput
from flowql.schema.webhooks import WebhookDeliveryFilterInput, WebhookSubscriptionFilterInput
from flowql.schema.workflows import WorkflowFilterInput
from flowql.services.apikeys import ApiKeyFilter
from flowql.services.audit import AuditFilter
from flowql.services.credentials import CredentialFilter
from flowql.services.forms import FormFilter
from flowql.services.integrations import IntegrationFilter
from flowql.services.messages import AgentFilter, MessageFilter
from flowql.services.processes import ProcessFilter
from flowql.services.scenarios.store import ScenarioFilter
from flowql.services.webhooks import DeliveryFilter, SubscriptionFilter
from flowql.services.workflows import WorkflowFilter

PAIRS: list[tuple[type[Any], type[Any], set[str]]] = [
    (ApiKeyFilterInput, ApiKeyFilter, {"workspace_id"}),
    (AuditFilterInput, AuditFilter, {"workspace_id"}),
    (FormFilterInput, FormFilter, set()),
    (IntegrationFilterInput, IntegrationFilter, set()),
    (CredentialFilterInput, CredentialFilter, set()),
    (AgentFilterInput, AgentFilter, set()),
    (MessageFilterInput, MessageFilter, set()),
    (ProcessFilterInput, ProcessFilter, set()),
    (ScenarioFilterInput, ScenarioFilter, set()),
    (WebhookSubscriptionFilterInput, SubscriptionFilter, set()),
    (WebhookDeliveryFilterInput, DeliveryFilter, set()),
    (WorkflowFilterInput, WorkflowFilter, set()),
]


def test_every_filter_input_has_its_dataclass_fields_in_order() -> None:
    for graphql_input, source, excluded in PAIRS:
        assert issubclass(graphql_input, FilterInput)
        names = [f.name for f in dataclasses.fields(graphql_input)]
        expected = [f.name for f in dataclasses.fields(source) if f.name not in excluded]
        assert names == expected, graphql_input.__name__
        assert isinstance(graphql_input().to_filter(), source)


def test_to_filter_keeps_values_and_turns_absent_lists_into_empty_ones() -> None:
    workspace = uuid.uuid4()
    empty = ProcessFilterInput().to_filter()
    assert empty == ProcessFilter()
    given = ProcessFilterInput(statuses=[ProcessStatus.RUNNING], workflow_number=3)  # type: ignore[call-arg]
    assert given.to_filter() == ProcessFilter(statuses=[ProcessStatus.RUNNING], workflow_number=3)
    assert AuditFilterInput().to_filter(workspace_id=workspace) == AuditFilter(
        workspace_id=workspace
    )


@dataclass
class ThingFilter:
    workspace_id: uuid.UUID | None = None
    tags: list[str] = field(default_factory=list)
    color: str | None = field(default=None, metadata={"description": "Any CSS color."})


@filter_input(ThingFilter, exclude=["workspace_id"])
class ThingFilterInput(FilterInput[ThingFilter]):
    pass


@strawberry.type
class ThingQuery:
    @strawberry.field
    def things(self, filter: ThingFilterInput | None = None) -> str:
        return repr((filter or ThingFilterInput()).to_filter(workspace_id=None))


def test_a_field_added_to_the_dataclass_appears_in_graphql() -> None:
    schema = strawberry.Schema(ThingQuery)
    sdl = str(schema)
    assert 'input ThingFilterInput {\n  tags: [String!] = null\n\n  """Any CSS color."""\n' in sdl
    assert "workspaceId" not in sdl
    result = schema.execute_sync('{ things(filter: {color: "red"}) }')
    assert result.errors is None
    assert result.data == {"things": repr(ThingFilter(tags=[], color="red"))}

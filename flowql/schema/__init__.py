"""The one Strawberry schema: Query, Mutation (and later Subscription) merged from domain modules."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from flowql.errors import DomainError
from flowql.schema import (
    agent_types,
    apikeys,
    audit,
    auth,
    forms,
    health,
    integrations,
    messages,
    processes,
    scenarios,
    subscriptions,
    triggers,
    webhooks,
    workflows,
    workspaces,
)
from flowql.schema.documents import CachedDocuments, DocumentStore
from flowql.schema.errors import ErrorCodes
from flowql.schema.limits import GraphQLLimits, RequestLimits
from flowql.schema.subscriptions import SharedEventExecution

# Each domain's Query, Mutation and Subscription (those it has), merged in this order.
DOMAINS: tuple[ModuleType, ...] = (
    auth,
    workspaces,
    workflows,
    triggers,
    messages,
    processes,
    scenarios,
    integrations,
    forms,
    webhooks,
    apikeys,
    audit,
    health,
    subscriptions,
    agent_types,
)


def _parts(kind: str) -> tuple[type[Any], ...]:
    parts: list[type[Any]] = []
    for module in DOMAINS:
        part: type[Any] | None = getattr(module, kind, None)
        definition = getattr(part, "__strawberry_definition__", None)
        if part is not None and definition is not None and definition.fields:
            parts.append(part)
    return tuple(parts)


class FlowqlSchema(strawberry.Schema):
    # The parsed, validated documents this schema reuses (build_schema sets it).
    documents: DocumentStore | None = None

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        # Expected failures (not found, forbidden, invalid input, malformed requests) are
        # answers, not incidents: only unexpected exceptions are logged.
        unexpected = [
            e
            for e in errors
            if e.original_error is not None and not isinstance(e.original_error, DomainError)
        ]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(production: bool = False) -> strawberry.Schema:
    query = merge_types("Query", _parts("Query"))
    mutation = merge_types("Mutation", _parts("Mutation"))
    subscriptions = _parts("Subscription")
    subscription = merge_types("Subscription", subscriptions) if subscriptions else None
    documents = DocumentStore()
    schema = FlowqlSchema(
        query=query,
        mutation=mutation,
        subscription=subscription,
        execution_context_class=SharedEventExecution,  # one execution per shared feed event
        extensions=[
            lambda: CachedDocuments(documents),
            lambda: ErrorCodes(production=production),
            # Size, tokens, depth, aliases, repeated fields, root fields, cost and introspection,
            # from the request's settings (these defaults when executed without a server).
            lambda: RequestLimits(limits=GraphQLLimits(hide_suggestions=production)),
        ],
    )
    schema.documents = documents
    return schema

"""Every GraphQL error leaves with `extensions.code`; unexpected ones are masked in production."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.error import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.types.execution import ExecutionResult as StrawberryExecutionResult

from flowql.errors import DomainError, ErrorCode

logger = logging.getLogger("flowql.graphql")


class ErrorCodes(SchemaExtension):
    def __init__(self, *, production: bool = False) -> None:
        self.production = production

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if isinstance(result, GraphQLExecutionResult | StrawberryExecutionResult) and result.errors:
            result.errors = [coded_error(e, self.production) for e in result.errors]


def coded_error(error: GraphQLError, production: bool) -> GraphQLError:
    original = error.original_error
    while isinstance(original, GraphQLError) and original.original_error is not None:
        original = original.original_error
    extensions: dict[str, Any]
    message = error.message
    if isinstance(original, DomainError):
        extensions = original.extensions()
    elif original is None or isinstance(original, GraphQLError):
        # Parse, validation and variable-coercion errors: the request itself is malformed.
        extensions = {"code": ErrorCode.VALIDATION_ERROR.value}
        existing = error.extensions or {}
        if "code" in existing and existing["code"] in ErrorCode.__members__:
            extensions = dict(existing)
    else:
        logger.error("unexpected error in GraphQL execution", exc_info=original)
        extensions = {"code": ErrorCode.INTERNAL_ERROR.value}
        if production:
            message = "Internal server error."
    return GraphQLError(
        message=message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=original if isinstance(original, DomainError) else None,
        extensions=extensions,
    )

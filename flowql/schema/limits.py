"""What one GraphQL document may ask for, checked before the work it would cause.

`RequestLimits` (a schema extension) parses the document itself, within a size and token budget,
and measures it before graphql-core validates it (validation of thousands of repeated fields is
quadratic: seconds of CPU). Then it validates, off the event loop for large documents, with field
suggestions hidden in production. Every refusal is a GraphQL error with a stable code:

- VALIDATION_ERROR with `limit` naming what was exceeded (`documentBytes`, `tokens`, `depth`,
  `aliases`, `duplicateFields`, `rootFields`, `cost`, `fragmentNesting`, `numbers`), `maximum`
  and, where measured, `actual`;
- FORBIDDEN with `limit: "introspection"` when `__schema` / `__type` is asked for by a caller
  the `FLOWQL_GRAPHQL_INTROSPECTION` setting does not let in (`__typename` is always allowed).

Cost counts every field selected, multiplied by the sizes of the lists above it: a `first` or
`last` argument (a variable's value, else the argument's default, else a page of 20; at most `MAX_PAGE`)
sizes the list it applies to; a list without one counts as `ASSUMED_LIST_SIZE`. Introspection
fields count toward neither depth nor cost (they are gated by the setting instead, and nest at
most `INTROSPECTION_DEPTH`).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    parse,
    validate,
)
from graphql.language import Visitor, visit
from strawberry.extensions import SchemaExtension

from flowql.errors import ErrorCode
from flowql.resolvers.pagination import DEFAULT_PAGE, MAX_PAGE
from flowql.settings import Exposure, Settings

ASSUMED_LIST_SIZE = 10
INTROSPECTION_DEPTH = 16
MAX_FRAGMENT_NESTING = 32
# Documents larger than this are parsed and validated in a worker thread.
INLINE_BYTES = 4096
INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
ADMIN_ROLES = frozenset({"owner", "admin"})
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
# Only a literal with a long exponent or 309+ digits can overflow a float.
_HUGE_NUMBER = re.compile(r"[eE][+]?\d{3,}|\d{309,}")


@dataclass(frozen=True)
class GraphQLLimits:
    max_document_bytes: int = 64 * 1024
    max_tokens: int = 5000
    max_depth: int = 12
    max_aliases: int = 50
    max_duplicate_fields: int = 20
    max_root_fields: int = 20
    max_cost: int = 50_000
    introspection: Exposure = Exposure.ON
    hide_suggestions: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> GraphQLLimits:
        return cls(
            max_document_bytes=settings.graphql_max_document_bytes,
            max_tokens=settings.graphql_max_tokens,
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_duplicate_fields=settings.graphql_max_duplicate_fields,
            max_root_fields=settings.graphql_max_root_fields,
            max_cost=settings.graphql_max_cost,
            introspection=settings.graphql_introspection or Exposure.ON,
            hide_suggestions=settings.is_production,
        )


class LimitExceeded(Exception):
    def __init__(self, limit: str, message: str, maximum: int, actual: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit
        self.message = message
        self.maximum = maximum
        self.actual = actual

    def error(self) -> GraphQLError:
        extensions: dict[str, Any] = {
            "code": ErrorCode.VALIDATION_ERROR.value,
            "limit": self.limit,
            "maximum": self.maximum,
        }
        if self.actual is not None:
            extensions["actual"] = self.actual
        return GraphQLError(self.message, extensions=extensions)


# -- measuring a parsed document ----------------------------------------------------------------


@dataclass
class Tally:
    cost: int = 0
    depth: int = 0
    aliases: int = 0
    introspection: bool = False


Flat = dict[int, tuple[FieldNode, Any, int]]


class Measure:
    """One pass over the document with fragments expanded by reference (memoised), so a
    fragment spread a thousand times, or fragments of fragments, cost their size once."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        limits: GraphQLLimits,
    ) -> None:
        self.schema = schema
        self.limits = limits
        self.variables = variables or {}
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.flat_fragments: dict[str, Flat] = {}
        self.tallies: dict[tuple[int, str, int | None], Tally] = {}

    def operation(self, operation: OperationDefinitionNode) -> Tally:
        root = self.schema.get_root_type(operation.operation)
        flat = self.flatten(operation.selection_set, root, frozenset())
        # Fields with one response key run once: count the keys.
        roots = len(
            {(f.alias or f.name).value for f, _, _ in flat.values() if f.name.value != "__typename"}
        )
        if roots > self.limits.max_root_fields:
            raise LimitExceeded(
                "rootFields",
                f"the operation selects {roots} root fields; at most "
                f"{self.limits.max_root_fields} are allowed",
                self.limits.max_root_fields,
                roots,
            )
        tally = self.level(flat, None, 1)
        if tally.depth > self.limits.max_depth:
            raise self.too_deep(tally.depth)
        if tally.aliases > self.limits.max_aliases:
            raise LimitExceeded(
                "aliases",
                f"the operation uses {tally.aliases} aliases; at most "
                f"{self.limits.max_aliases} are allowed",
                self.limits.max_aliases,
                tally.aliases,
            )
        if tally.cost > self.limits.max_cost:
            raise LimitExceeded(
                "cost",
                f"the operation could resolve about {tally.cost} fields; at most "
                f"{self.limits.max_cost} are allowed (ask for smaller pages with first/last)",
                self.limits.max_cost,
                tally.cost,
            )
        return tally

    def too_deep(self, depth: int | None = None) -> LimitExceeded:
        return LimitExceeded(
            "depth",
            f"the operation nests fields deeper than {self.limits.max_depth} levels",
            self.limits.max_depth,
            depth,
        )

    def flatten(self, selection_set: SelectionSetNode, parent: Any, path: frozenset[str]) -> Flat:
        """The fields selected at one level (inline fragments and spreads merged), by node."""
        flat: Flat = {}
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                _add(flat, selection, parent, 1)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                kind = self.schema.get_type(condition.name.value) if condition else parent
                for field, field_parent, count in self.flatten(
                    selection.selection_set, kind, path
                ).values():
                    _add(flat, field, field_parent, count)
            elif isinstance(selection, FragmentSpreadNode):
                for field, field_parent, count in self.fragment(selection.name.value, path):
                    _add(flat, field, field_parent, count)
        return flat

    def fragment(self, name: str, path: frozenset[str]) -> Iterator[tuple[FieldNode, Any, int]]:
        definition = self.fragments.get(name)
        if definition is None or name in path:  # unknown or cyclic: validation says so
            return iter(())
        if len(path) >= MAX_FRAGMENT_NESTING:
            raise LimitExceeded(
                "fragmentNesting",
                f"fragments nest deeper than {MAX_FRAGMENT_NESTING} levels",
                MAX_FRAGMENT_NESTING,
            )
        if name not in self.flat_fragments:
            kind = self.schema.get_type(definition.type_condition.name.value)
            self.flat_fragments[name] = self.flatten(definition.selection_set, kind, path | {name})
        return iter(self.flat_fragments[name].values())

    def level(self, flat: Flat, pending: int | None, depth: int) -> Tally:
        keys: Counter[str] = Counter()
        total = Tally()
        for field, parent, count in flat.values():
            key = (field.alias or field.name).value
            keys[key] += count
            name = field.name.value
            introspection = name in INTROSPECTION_FIELDS
            total.introspection |= introspection
            total.aliases += count if field.alias else 0
            if name.startswith("__"):
                if introspection and field.selection_set:
                    child = self.introspection(field.selection_set, 1)
                    total.aliases += count * child.aliases
                total.cost += count
                continue
            definition = _field(parent, name)
            field_type = definition.type if definition is not None else None
            is_list, named = _unwrap(field_type)
            size = self.size_argument(field, definition)
            multiplier = 1
            if is_list:
                multiplier = size if size is not None else (pending or ASSUMED_LIST_SIZE)
            child_pending = size if not is_list else None
            child = Tally()
            if field.selection_set is not None:
                if depth > self.limits.max_depth:
                    raise self.too_deep()
                child = self.children(field.selection_set, named, child_pending, depth + 1)
                total.depth = max(total.depth, 1 + child.depth)
            total.cost += count * multiplier * (1 + child.cost)
            total.aliases += count * child.aliases
            total.introspection |= child.introspection
        if keys:
            key, repeats = keys.most_common(1)[0]
            if repeats > self.limits.max_duplicate_fields:
                raise LimitExceeded(
                    "duplicateFields",
                    f"{key!r} is selected {repeats} times in one selection; at most "
                    f"{self.limits.max_duplicate_fields} are allowed",
                    self.limits.max_duplicate_fields,
                    repeats,
                )
        return total

    def children(
        self, selection_set: SelectionSetNode, parent: Any, pending: int | None, depth: int
    ) -> Tally:
        memo = (id(selection_set), getattr(parent, "name", ""), pending)
        if memo not in self.tallies:
            flat = self.flatten(selection_set, parent, frozenset())
            self.tallies[memo] = self.level(flat, pending, depth)
        return self.tallies[memo]

    def introspection(self, selection_set: SelectionSetNode, depth: int) -> Tally:
        """Inside `__schema` / `__type`: only nesting and aliases are bounded."""
        if depth > INTROSPECTION_DEPTH:
            raise LimitExceeded(
                "depth",
                f"the introspection query nests deeper than {INTROSPECTION_DEPTH} levels",
                INTROSPECTION_DEPTH,
            )
        tally = Tally(introspection=True)
        flat = self.flatten(selection_set, None, frozenset())
        for field, _, count in flat.values():
            tally.aliases += count if field.alias else 0
            if field.selection_set is not None:
                child = self.introspection(field.selection_set, depth + 1)
                tally.aliases += count * child.aliases
        return tally

    def size_argument(self, field: FieldNode, definition: Any) -> int | None:
        """The list size a `first` / `last` argument asks for (None: the field has neither)."""
        declared = getattr(definition, "args", {}) or {}
        for name in ("first", "last"):
            if name not in declared:
                continue
            value: Any = None
            given = next((a for a in field.arguments or () if a.name.value == name), None)
            if given is None:
                value = declared[name].default_value
            elif isinstance(given.value, IntValueNode):
                value = int(given.value.value)
            elif isinstance(given.value, VariableNode):
                value = self.variables.get(given.value.name.value)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(0, min(value, MAX_PAGE))
            if given is not None or name == "first":
                return DEFAULT_PAGE
        return None


def _add(flat: Flat, field: FieldNode, parent: Any, count: int) -> None:
    key = id(field)
    if key in flat:
        flat[key] = (field, parent, flat[key][2] + count)
    else:
        flat[key] = (field, parent, count)


def _field(parent: Any, name: str) -> Any:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None


def _unwrap(field_type: Any) -> tuple[bool, Any]:
    is_list = False
    while isinstance(field_type, GraphQLNonNull | GraphQLList):
        is_list |= isinstance(field_type, GraphQLList)
        field_type = field_type.of_type
    return is_list, field_type


class _Numbers(Visitor):
    """Float literals that are not finite numbers (`1e999` is infinity): nothing stores them."""

    def __init__(self) -> None:
        super().__init__()
        self.bad: str | None = None

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
        if self.bad is None and not math.isfinite(float(node.value)):
            self.bad = node.value


def measure(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    limits: GraphQLLimits,
) -> bool:
    """Raise LimitExceeded for the first limit the document breaks; True when it introspects."""
    source = document.loc.source.body if document.loc is not None else ""
    if not source or _HUGE_NUMBER.search(source):
        numbers = _Numbers()
        visit(document, numbers)
        if numbers.bad is not None:
            raise LimitExceeded("numbers", f"number {numbers.bad[:40]} is out of range", 0)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        named = [o for o in operations if o.name and o.name.value == operation_name]
        operations = named or operations
    check = Measure(schema, document, variables, limits)
    introspects = False
    for operation in operations:
        introspects |= check.operation(operation).introspection
    return introspects


def admits(exposure: Exposure, principal: Any) -> bool:
    """Whether a developer feature set to `exposure` is open to `principal`: `admins` means a
    user who owns or administers a workspace (roles come only with a user's own credential)."""
    if exposure is Exposure.ADMINS:
        roles = getattr(principal, "roles", None) or {}
        return any(str(role) in ADMIN_ROLES for role in roles.values())
    return exposure is Exposure.ON


def may_introspect(limits: GraphQLLimits, context: Any) -> bool:
    return admits(limits.introspection, getattr(context, "principal", None))


def hide_suggestions(message: str) -> str:
    return _SUGGESTION.sub("", message)


# -- the extension ------------------------------------------------------------------------------


class RequestLimits(SchemaExtension):
    """Parses, measures and validates every operation (HTTP, WebSocket, REST in process)."""

    def __init__(self, *, limits: GraphQLLimits | None = None) -> None:
        self.default_limits = limits or GraphQLLimits()
        self._limits: GraphQLLimits | None = None

    @property
    def limits(self) -> GraphQLLimits:
        """The server's settings (from the request's context), else the defaults."""
        if self._limits is None:
            runtime = getattr(self.execution_context.context, "runtime", None)
            settings = getattr(runtime, "settings", None)
            self._limits = (
                GraphQLLimits.from_settings(settings)
                if isinstance(settings, Settings)
                else self.default_limits
            )
        return self._limits

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if self.limits.hide_suggestions and result is not None and result.errors:
            for error in result.errors:
                error.message = hide_suggestions(error.message)

    async def on_parse(self) -> AsyncIterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query is not None:
            context.graphql_document = await parse_document(context.query, self.limits)
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None:
            limits = self.limits
            try:
                introspects = measure(
                    context.schema._schema,
                    document,
                    context.variables,
                    context.operation_name,
                    limits,
                )
            except LimitExceeded as exceeded:
                context.pre_execution_errors = [exceeded.error()]
            else:
                if introspects and not may_introspect(limits, context.context):
                    context.pre_execution_errors = [introspection_refused(limits)]
                elif context.pre_execution_errors is None:
                    context.pre_execution_errors = await validate_document(
                        context.schema._schema,
                        document,
                        list(context.validation_rules),
                        limits.hide_suggestions,
                        len(context.query or ""),
                    )
        yield


def introspection_refused(limits: GraphQLLimits) -> GraphQLError:
    who = "workspace owners and admins" if limits.introspection is Exposure.ADMINS else "nobody"
    return GraphQLError(
        f"GraphQL introspection is disabled on this server (allowed for {who})",
        extensions={"code": ErrorCode.FORBIDDEN.value, "limit": "introspection"},
    )


async def parse_document(query: str, limits: GraphQLLimits) -> DocumentNode:
    size = len(query.encode("utf-8", "surrogatepass"))
    if size > limits.max_document_bytes:
        raise LimitExceeded(
            "documentBytes",
            f"the GraphQL document is {size} bytes; at most {limits.max_document_bytes} "
            "are allowed",
            limits.max_document_bytes,
            size,
        ).error()
    try:
        if size > INLINE_BYTES:
            return await asyncio.to_thread(parse, query, max_tokens=limits.max_tokens)
        return parse(query, max_tokens=limits.max_tokens)
    except GraphQLError as error:
        extensions: dict[str, Any] = {"code": ErrorCode.VALIDATION_ERROR.value}
        if "tokens. Parsing aborted" in error.message:
            extensions.update(limit="tokens", maximum=limits.max_tokens)
        raise GraphQLError(
            error.message,
            source=error.source,
            positions=error.positions,
            extensions=extensions,
        ) from None
    except RecursionError:
        raise LimitExceeded(
            "depth", "the GraphQL document nests too deeply to parse", limits.max_depth
        ).error() from None


async def validate_document(
    schema: GraphQLSchema,
    document: DocumentNode,
    rules: list[Any],
    hide: bool,
    size: int,
) -> list[GraphQLError]:
    if size > INLINE_BYTES:
        return await asyncio.to_thread(validate, schema, document, rules, None, hide)
    return validate(schema, document, rules, hide_suggestions=hide)

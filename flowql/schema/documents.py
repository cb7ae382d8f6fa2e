"""Parse and validate each distinct document once: dashboards send the same few queries again
and again, and parsing plus validation (with the limiter rules) costs more than a small read.

Strawberry's ParserCache and ValidationCache key validation on the rule classes, and the limiter
extensions make new rule classes per request, so their cache would never hit; this one keys on
the document text alone. That is sound because one schema always validates with the same rules:
a document that passed once passes again. Only valid documents are kept (invalid ones are
answered afresh, so junk cannot crowd the cache out), in a bounded LRU shared by the schema.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from enum import EnumMeta
from operator import attrgetter
from typing import Any, cast

from graphql import (
    DocumentNode,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import Executor, to_nodes
from graphql.pyutils import Path, gather_with_cancel
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema_converter import CustomGraphQLEnumType

# Documents longer than this are parsed every time: dashboards' queries are far shorter, and a
# long document is the kind an abusive client varies.
MAX_CACHED_LENGTH = 20_000


class DocumentStore:
    """query text -> its parsed document, for documents that validated."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()

    def get(self, query: str) -> DocumentNode | None:
        document = self._documents.get(query)
        if document is not None:
            self._documents.move_to_end(query)
        return document

    def put(self, query: str, document: DocumentNode) -> None:
        if len(query) > MAX_CACHED_LENGTH:
            return
        self._documents[query] = document
        self._documents.move_to_end(query)
        while len(self._documents) > self.size:
            self._documents.popitem(last=False)

    def __len__(self) -> int:
        return len(self._documents)


class CachedDocuments(SchemaExtension):
    """Reuses the parsed document of a query text seen (and validated) before, and skips its
    validation; a new text is parsed and validated as usual, then remembered if valid."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.hit = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is None:
            document = self.store.get(context.query)
            if document is not None:
                context.graphql_document = document
                self.hit = True
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.hit:
            context.pre_execution_errors = []  # validated when it was cached
        yield
        if not self.hit and context.pre_execution_errors == [] and context.query:
            assert context.graphql_document is not None
            self.store.put(context.query, context.graphql_document)


# -- executing: leaf fields without graphql-core's per-field machinery --------------------------

_Fast = tuple[Callable[[Any], Any], Callable[[Any], Any], bool]  # read, coerce, non-null
# (how, what): ("leaf", _Fast) or ("direct", the resolver function), or None: graphql-core's path
_Plan = list[tuple[str, FieldDetailsList, tuple[str, Any] | None]]

CONTEXT_ONLY = "_flowql_context_only"


def context_only(resolver: Callable[..., Any]) -> Callable[..., Any]:
    """Marks a synchronous resolver method `(self, info)` (or `(self)`) without arguments that
    reads nothing of `info` but `info.context`: FastLeaves then calls it directly with graphql-core's own
    ResolveInfo (which has `context`), without Strawberry's per-call wrapping."""
    setattr(resolver, CONTEXT_ONLY, True)
    return resolver


def _basic_leaf(schema: GraphQLSchema, parent: GraphQLObjectType, details: Any) -> _Fast | None:
    """(reader of the value, leaf type, non-null) of a field that is a plain attribute of a leaf type with
    no arguments (Strawberry's resolver-less fields), else None."""
    node = details[0].node
    field = schema.get_field(parent, node.name.value)
    if field is None or field.args or node.arguments:
        return None
    resolve = field.resolve
    if resolve is None or getattr(resolve, "__name__", "") != "_get_basic_result":
        return None
    basic = resolve
    read: Callable[[Any], Any] = lambda source: basic(source, None)  # noqa: E731
    definition = (field.extensions or {}).get("strawberry-definition")
    if (
        definition is not None
        and definition.default_resolver is getattr
        and not definition.base_resolver
    ):
        # What Strawberry's basic resolver does (`getattr(source, python_name)`), in one call.
        read = attrgetter(definition.python_name)
    kind, non_null = field.type, False
    if isinstance(kind, GraphQLNonNull):
        kind, non_null = kind.of_type, True
    if not is_leaf_type(kind):
        return None
    return read, _coercer(kind), non_null


def _coercer(kind: GraphQLLeafType) -> Callable[[Any], Any]:
    """`kind.coerce_output_value`; for a Strawberry enum, its members' names looked up in a
    table made once (Strawberry compares the value with each of the enum's, every time)."""
    coerce = kind.coerce_output_value
    wrapped = getattr(kind, "wrapped_cls", None)
    if not isinstance(kind, CustomGraphQLEnumType) or not isinstance(wrapped, EnumMeta):
        return coerce
    names: dict[Any, str] = {}
    members: list[Any] = list(wrapped)
    for member in members:
        name = next((n for n, v in kind.values.items() if member.value == v.value), None)
        if name is not None:
            names[member] = name

    def coerce_enum(value: Any) -> Any:
        if isinstance(value, wrapped):
            name = names.get(value)
            if name is not None:
                return name
        return coerce(value)

    return coerce_enum


def _direct(schema: GraphQLSchema, parent: GraphQLObjectType, details: Any) -> Any:
    """The function of a `context_only` resolver with nothing around it, else None."""
    node = details[0].node
    field = schema.get_field(parent, node.name.value)
    if field is None or field.args or node.arguments:
        return None
    definition = (field.extensions or {}).get("strawberry-definition")
    resolver = getattr(definition, "base_resolver", None)
    if (
        definition is None
        or resolver is None
        or definition.extensions
        or getattr(definition, "permission_classes", ())
    ):
        return None
    function = resolver.wrapped_func
    if not getattr(function, CONTEXT_ONLY, False) or resolver.is_async:
        return None
    code = getattr(function, "__code__", None)
    if code is not None and code.co_argcount == 1:  # `(self)`: no info at all
        return lambda source, _info: function(source)
    return function


def _how(schema: GraphQLSchema, parent: GraphQLObjectType, details: Any) -> tuple[str, Any] | None:
    leaf = _basic_leaf(schema, parent, details)
    if leaf is not None:
        return ("leaf", leaf)
    function = _direct(schema, parent, details)
    return None if function is None else ("direct", function)


class FastLeaves:
    """An executor mixin: a selection's plain leaf fields (`id`, `status`, `createdAt`, …: a
    Strawberry field without a resolver, of a scalar or enum type, without arguments) are read
    and coerced in a tight loop, without building a ResolveInfo, a Path and a completion per
    field; on a dashboard page they are most of its hundreds of fields. Anything unusual (no
    value for a non-null field, a value that does not coerce, an exception, an awaitable) runs
    the field through graphql-core's own `execute_field` instead, so errors, paths and nulls
    come out exactly as before. Other fields always take graphql-core's path."""

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        executor = cast(Executor[Any], self)
        manager = executor.middleware_manager  # Strawberry always passes one, often empty
        if manager is not None and getattr(manager, "_middleware_resolvers", True) is not None:
            return super().execute_fields(  # type: ignore[misc]
                parent_type, source_value, path, grouped_field_set, position_context
            )
        plans: dict[int, tuple[GroupedFieldSet, _Plan]] | None = self.__dict__.get("_leaf_plans")
        if plans is None:
            plans = self.__dict__["_leaf_plans"] = {}
        entry = plans.get(id(grouped_field_set))
        if entry is None or entry[0] is not grouped_field_set:
            plan: _Plan = [
                (name, details, _how(executor.schema, parent_type, details))
                for name, details in grouped_field_set.items()
            ]
            entry = plans[id(grouped_field_set)] = (grouped_field_set, plan)
        results: dict[str, Any] = {}
        is_awaitable = executor.is_awaitable
        awaitable_fields: list[str] = []
        try:
            for name, details, how in entry[1]:
                if how is not None and how[0] == "direct":
                    result = _execute_direct(
                        executor,
                        how[1],
                        parent_type,
                        source_value,
                        details,
                        path,
                        name,
                        position_context,
                    )
                    results[name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(name)
                    continue
                if how is not None:
                    read, coerce, non_null = how[1]
                    try:
                        value = read(source_value)
                        if value is None:
                            if not non_null:
                                results[name] = None
                                continue
                        elif not isinstance(value, Exception) and not is_awaitable(value):
                            coerced = coerce(value)
                            if coerced is not None and coerced is not Undefined:
                                results[name] = coerced
                                continue
                    except Exception:  # noqa: S110 - graphql-core's path reports it below
                        pass
                result = executor.execute_field(
                    parent_type,
                    source_value,
                    details,
                    Path(path, name, parent_type.name),
                    position_context,
                )
                if result is not Undefined:
                    results[name] = result
                    if is_awaitable(result):
                        awaitable_fields.append(name)
        except Exception:
            if awaitable_fields:
                executor.settle_in_background([results[field] for field in awaitable_fields])
            raise
        if not awaitable_fields:
            return results

        async def get_results() -> dict[str, Any]:
            if len(awaitable_fields) == 1:
                field = awaitable_fields[0]
                results[field] = await results[field]
            else:
                awaited = await gather_with_cancel(*(results[f] for f in awaitable_fields))
                results.update(zip(awaitable_fields, awaited, strict=True))
            return results

        return get_results()


def _execute_direct(
    executor: Executor[Any],
    function: Callable[..., Any],
    parent_type: GraphQLObjectType,
    source: Any,
    details: FieldDetailsList,
    path: Path | None,
    name: str,
    position_context: Any,
) -> Any:
    """graphql-core's `execute_field` for a `context_only` resolver, calling it directly."""
    field_def = executor.schema.get_field(parent_type, details[0].node.name.value)
    assert field_def is not None
    return_type = field_def.type
    field_path = Path(path, name, parent_type.name)
    info = executor.build_resolve_info(field_def, to_nodes(details), parent_type, field_path)
    try:
        result = function(source, info)
        if executor.is_awaitable(result):
            return executor.complete_awaitable_value(
                return_type, details, info, field_path, result, position_context
            )
        completed = _SLOW
        if position_context is None and not any(d.node.directives for d in details):
            completed = _complete_objects(executor, return_type, details, field_path, result)
        if completed is _SLOW:
            completed = executor.complete_value(
                return_type, details, info, field_path, result, position_context
            )
        if executor.is_awaitable(completed):

            async def await_completed() -> Any:
                try:
                    return await completed
                except Exception as raw_error:
                    executor.handle_field_error(raw_error, return_type, details, field_path)
                    return None

            return await_completed()
    except Exception as raw_error:
        executor.handle_field_error(raw_error, return_type, details, field_path)
        return None
    return completed


_SLOW: Any = object()  # "not a shape _complete_objects takes: graphql-core's complete_value"


def _complete_objects(
    executor: Executor[Any],
    return_type: Any,
    details: FieldDetailsList,
    path: Path,
    result: Any,
) -> Any:
    """graphql-core's `complete_value` for the common shapes of a resolver's result (an object,
    or a list of objects, of an object type without `is_type_of`, no @defer below): the
    objects' fields are executed at once, without the five calls per object of the general
    path. Anything else (a null where one is not allowed, an exception, an awaitable, another
    iterable, an abstract type) returns _SLOW before any field is executed."""
    kind, non_null = return_type, False
    if isinstance(kind, GraphQLNonNull):
        kind, non_null = kind.of_type, True
    if result is None:
        return _SLOW if non_null else None
    is_awaitable = executor.is_awaitable
    if isinstance(kind, GraphQLList):
        item_type = kind.of_type
        object_type = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if type(result) is not list or not _plain_object_type(object_type):
            return _SLOW
        for item in result:
            if item is None or isinstance(item, Exception) or is_awaitable(item):
                return _SLOW
        grouped = _grouped(executor, object_type, details)
        if grouped is None:
            return _SLOW
        completed: list[Any] = []
        awaitable_indices: list[int] = []
        for index, item in enumerate(result):
            item_path = Path(path, index, None)
            try:
                value = executor.execute_fields(object_type, item, item_path, grouped, None)
                if is_awaitable(value):
                    value = _settled(executor, value, item_type, details, item_path)
                    awaitable_indices.append(index)
            except Exception as raw_error:
                executor.handle_field_error(raw_error, item_type, details, item_path)
                value = None
            completed.append(value)
        if not awaitable_indices:
            return completed

        async def get_completed() -> list[Any]:
            awaited = await gather_with_cancel(*(completed[i] for i in awaitable_indices))
            for index, value in zip(awaitable_indices, awaited, strict=True):
                completed[index] = value
            return completed

        return get_completed()
    if not _plain_object_type(kind) or isinstance(result, Exception) or is_awaitable(result):
        return _SLOW
    grouped = _grouped(executor, kind, details)
    if grouped is None:
        return _SLOW
    return executor.execute_fields(kind, result, path, grouped, None)


def _plain_object_type(kind: Any) -> bool:
    return isinstance(kind, GraphQLObjectType) and kind.is_type_of is None


def _grouped(
    executor: Executor[Any], object_type: GraphQLObjectType, details: FieldDetailsList
) -> GroupedFieldSet | None:
    grouped, new_defer_usages = executor.collect_subfields(object_type, details)[:2]
    return None if new_defer_usages else grouped


async def _settled(
    executor: Executor[Any],
    value: Any,
    item_type: Any,
    details: FieldDetailsList,
    item_path: Path,
) -> Any:
    try:
        return await value
    except Exception as raw_error:
        executor.handle_field_error(raw_error, item_type, details, item_path)
        return None


def with_fast_leaves(executor_class: type[Any]) -> type[Any]:
    """`executor_class` with `FastLeaves` in front (once)."""
    if issubclass(executor_class, FastLeaves):
        return executor_class
    return type(f"FastLeaves{executor_class.__name__}", (FastLeaves, executor_class), {})

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
from collections.abc import Iterator

from graphql import DocumentNode
from strawberry.extensions import SchemaExtension

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

"""Automatic persisted queries (Apollo's protocol): a dashboard sends the sha256 of its document
instead of the document, and the server keeps hash -> document.

A request with `extensions.persistedQuery = {version: 1, sha256Hash}` and no `query` runs the
document registered under that hash; when the server does not know it, the answer is the error
`PersistedQueryNotFound` and the client sends the hash and the document together, which registers
it (the hash must match the document). Queries can then go as short GETs that caches may keep.
Each server keeps its own bounded registry in memory, so a restart or another replica only costs
one round trip of re-registration.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from typing import Any

from strawberry.http import GraphQLRequestData

from flowql.errors import ErrorCode

NOT_FOUND = "PersistedQueryNotFound"


class PersistedQueryError(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def as_error(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "extensions": {"code": ErrorCode.VALIDATION_ERROR.value, "reason": self.reason},
        }


class PersistedQueries:
    """sha256 hex digest -> document, least recently used dropped past `size`."""

    def __init__(self, size: int = 1000, max_document_length: int = 100_000) -> None:
        self.size = size
        self.max_document_length = max_document_length
        self._documents: OrderedDict[str, str] = OrderedDict()

    def resolve(self, data: GraphQLRequestData) -> GraphQLRequestData:
        """The request with its document filled in from (or registered into) the registry."""
        persisted = (data.extensions or {}).get("persistedQuery")
        if persisted is None:
            return data
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise PersistedQueryError(
                "Unsupported persistedQuery version: only version 1 is supported.",
                "PERSISTED_QUERY_VERSION",
            )
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or len(digest) != 64:
            raise PersistedQueryError(
                "persistedQuery.sha256Hash must be a sha256 hex digest.", "PERSISTED_QUERY_HASH"
            )
        digest = digest.lower()
        if data.query is None:
            document = self._documents.get(digest)
            if document is None:
                raise PersistedQueryError(NOT_FOUND, "PERSISTED_QUERY_NOT_FOUND")
            self._documents.move_to_end(digest)
            return dataclasses.replace(data, query=document)
        if hashlib.sha256(data.query.encode()).hexdigest() != digest:
            raise PersistedQueryError(
                "provided sha256Hash does not match the query", "PERSISTED_QUERY_HASH_MISMATCH"
            )
        if len(data.query) <= self.max_document_length:
            self._documents[digest] = data.query
            self._documents.move_to_end(digest)
            while len(self._documents) > self.size:
                self._documents.popitem(last=False)
        return data

    def __len__(self) -> int:
        return len(self._documents)

"""REST compatibility mounts: each documented route becomes a GraphQL operation run in process.

The app asks this package for what it needs at its edges: which paths take an API key in the
query string (document 001) and how each mount formats an error (for rate limits).
"""

from __future__ import annotations

from flowql.rest_compat.errors import ERROR_FORMATS, QUERY_KEY_PATHS

__all__ = ["ERROR_FORMATS", "QUERY_KEY_PATHS"]

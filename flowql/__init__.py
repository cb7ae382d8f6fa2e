"""flowql: a GraphQL-first automation backend."""

__version__ = "0.1.0"

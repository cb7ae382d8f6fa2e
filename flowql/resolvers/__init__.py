"""Thin resolvers: read arguments, call a service, hand rows back to the schema. Loaders live here."""

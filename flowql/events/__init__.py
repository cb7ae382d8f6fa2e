"""The event bus behind subscriptions and webhooks: memory (embedded) or PostgreSQL LISTEN/NOTIFY."""

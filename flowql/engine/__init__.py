"""Runs processes: agent types, the runner, triggers, dispatchers, outgoing webhook deliveries."""

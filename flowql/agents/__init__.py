"""Agent types: their options, what each does when it runs, and the templates options hold.

A leaf room below services and the engine: services validate options with the registry, the
engine runs handlers; nothing here imports either.
"""

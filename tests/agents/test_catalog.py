"""Every registered agent type declares, where it is declared, an example that makes a valid
agent and what it emits; the catalog (`agentTypes`) shows exactly those (no server here)."""

from __future__ import annotations

import json

import pytest

from flowql.agents.registry import REGISTRY, validate_options
from flowql.resolvers.agent_types import describe


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_type_has_a_valid_example_and_emits(name: str) -> None:
    agent_type = REGISTRY[name]
    assert agent_type.example, f"{name}: no example"
    validate_options(name, agent_type.example)  # raises ValidationFailed with the fields
    assert agent_type.emits.strip(), f"{name}: no emits"
    # The catalog serves it as JSON, unchanged.
    assert json.loads(json.dumps(agent_type.example)) == agent_type.example
    info = describe(agent_type)
    assert info.example == agent_type.example
    assert info.emits == agent_type.emits


def test_the_registry_is_the_catalog() -> None:
    # Both flowql's own types and the Huginn/ActiveWorkflow ones are covered.
    assert {"webhook", "http_request", "website", "java_script", "commander"} <= set(REGISTRY)
    assert len(REGISTRY) >= 39

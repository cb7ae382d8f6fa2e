"""What the implicit parts (LetsFlow's normalisation) make of odd `actor`/`by` items: objects
(data functions, or bad items) never break it; a bad definition is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from flowql.errors import ValidationFailed
from flowql.services.scenarios.validate import check


def test_an_object_as_by_is_refused_not_a_crash() -> None:
    """The workflow fuzzer's example (tests/security/test_fuzz_validators.py), reduced: a
    transition's `by` is an object, and its action is implicit. Before the fix, implicit.py
    hashed the object (TypeError: unhashable type: 'dict') and the API answered 500."""
    definition: dict[str, Any] = {
        "title": "{{ x",
        "states": {
            "initial": {
                "transitions": [
                    {"on": "3 days", "by": {"review": {"number": None}}, "goto": "(done)"},
                ]
            }
        },
    }
    with pytest.raises(ValidationFailed) as refused:
        check(definition)
    assert refused.value.fields == {
        "definition.actions.3 days.actor": "unknown actor {'review': {'number': None}}",
        "definition.states.initial.transitions.0.by": "unknown actor {'review': {'number': None}}",
    }


def test_an_object_among_by_names_with_a_star_is_refused() -> None:
    definition = {
        "states": {
            "initial": {
                "transitions": [
                    {"on": "go", "by": ["*", "service:bot", {"a": 1}], "goto": "(done)"},
                ]
            }
        }
    }
    with pytest.raises(ValidationFailed) as refused:
        check(definition)
    assert "definition.states.initial.transitions.0.by" in refused.value.fields


def test_a_data_function_actor_still_notifies_the_named_service() -> None:
    definition = {
        "actions": {"go": {"actor": ["service:bot", {"<ref>": "vars.who"}]}},
        "states": {
            "initial": {
                "transitions": [{"on": "go", "by": ["service:bot"], "goto": "(done)"}],
            }
        },
    }
    normalized = check(definition)
    notify = normalized.scenario["states"]["initial"]["notify"]
    assert notify == [{"service": "bot", "after": 0, "if": True, "trigger": "go"}]

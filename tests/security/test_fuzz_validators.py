"""Property tests on the validators: whatever a caller sends as a scenario (JSON or YAML), a
workflow's agents or an agent's options, the answer is a clean result or VALIDATION_ERROR, never
another exception (which the API would answer as INTERNAL_ERROR).

The inputs are shaped like the real thing (scenario keys, states with transitions, agent types
from the registry with their option names) with wrong types, templates, functions and junk
mixed in, so generation reaches deep into the validators. The scenario and workflow inputs go
through the services that store them (`store_scenario`, `create_workflow`, in a transaction
rolled back), so everything between the validator and the database is covered too.

Bounded for CI like the GraphQL fuzzer: fixed example counts, no shrinking; FLOWQL_FUZZ_EXAMPLES
multiplies the budget, FLOWQL_FUZZ_SEED picks another seed.
"""

from __future__ import annotations

import contextlib
import copy
import os
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from flowql.agents.registry import REGISTRY, validate_options
from flowql.auth.principal import Principal
from flowql.errors import ValidationFailed
from flowql.services.auth import authenticate
from flowql.services.scenarios import store_scenario
from flowql.services.scenarios.loader import parse_yaml
from flowql.services.scenarios.store import parse_definition
from flowql.services.scenarios.validate import check
from flowql.services.workflows import AgentSpec, create_workflow
from tests.conftest import Account
from tests.security.live import ThreadedServer, report

SCALE = float(os.environ.get("FLOWQL_FUZZ_EXAMPLES", "1"))
SEED = int(os.environ.get("FLOWQL_FUZZ_SEED", "20261128"))
SCENARIO_DATA = Path(__file__).parent.parent / "scenarios" / "data"

pytestmark = pytest.mark.slow


class Rollback(Exception):
    """Raised after a successful attempt so that nothing it stored is kept."""


@dataclass
class Outcomes:
    tried: int = 0
    accepted: int = 0
    refused: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # exception -> the input

    def record(self, given: Any, attempt: Callable[[], Any]) -> None:
        self.tried += 1
        try:
            attempt()
        except (Rollback, ValidationFailed) as exc:
            if isinstance(exc, ValidationFailed):
                self.refused += 1
            else:
                self.accepted += 1
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            key = f"{type(exc).__name__} at {where.filename.split('flowql/')[-1]}:{where.lineno}: {exc}"
            self.failures.setdefault(key[:300], repr(given)[:2000])
        else:
            self.accepted += 1

    def summary(self, name: str) -> str:
        return (
            f"{name}: {self.tried} inputs ({self.accepted} accepted, {self.refused} "
            f"VALIDATION_ERROR), {len(self.failures)} failures"
        )

    def assert_clean(self) -> None:
        assert not self.failures, "\n\n".join(
            f"{k}\n--- input: {v}" for k, v in self.failures.items()
        )


def bounded(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def decorate(test: Callable[..., None]) -> Callable[..., None]:
        return seed(SEED)(
            settings(
                max_examples=max(1, int(examples * SCALE)),
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )(test)
        )

    return decorate


# -- input shapes ----------------------------------------------------------------------------

WORDS = [
    "initial", "review", "(done)", "(cancelled)", "*", "~", "service:bot", "submit", "approve",
    "requester", "approver", "vars.x", "current.response", "actor", "5m", "3 days", "PT1H",
    "{{ vars.x }}", "{{ x", "{% if %}", "{% for x in y %}", "<ref>", "!ref", "string", "number",
    "object", "array", "true", "null", "-1", "1e999", "", " ", "\u0000", "\ud7ff", "é" * 50,
]  # fmt: skip


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(WORDS),
    )


def anything() -> st.SearchStrategy[Any]:
    keys = st.one_of(st.text(max_size=8), st.sampled_from(WORDS))
    return st.recursive(
        scalars(),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
        ),
        max_leaves=12,
    )


def either(*shapes: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the expected shape, sometimes anything at all."""
    return st.one_of(*shapes, anything())


def function() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from(["<ref>", "<tpl>", "<select>", "<sum>", "<eval>"]),
        either(
            st.sampled_from(WORDS), st.dictionaries(st.sampled_from(["$", "*", "a"]), anything())
        ),
        min_size=1,
        max_size=1,
    )


def names() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(WORDS), st.text(max_size=10))


def schema_like() -> st.SearchStrategy[Any]:
    return either(
        st.sampled_from(["string", "number", "integer", "boolean", "object", "array", "nope"]),
        st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["string", "object", "array", "number", "x"]),
                "properties": st.dictionaries(
                    names(), either(st.sampled_from(["string", "number"]))
                ),
                "required": st.lists(names(), max_size=2),
                "items": either(st.sampled_from(["string"])),
                "$ref": st.sampled_from(["#/definitions/x", "https://example.com/s", "actor"]),
            },
        ),
    )


def parts() -> dict[str, st.SearchStrategy[Any]]:
    """Strategies for one actor, action and state (and the other top-level keys)."""
    actor = either(
        st.fixed_dictionaries(
            {}, optional={"title": names(), "role": names(), "properties": schema_like()}
        )
    )
    action = either(
        st.fixed_dictionaries(
            {},
            optional={
                "actor": either(names(), st.lists(names(), max_size=3)),
                "title": either(names(), function()),
                "description": either(names(), function()),
                "response": schema_like(),
                "update": either(
                    names(),
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "set": names(),
                            "value": either(function()),
                            "mode": st.sampled_from(["replace", "merge", "append", "x"]),
                            "if": either(function()),
                        },
                    ),
                    st.lists(st.fixed_dictionaries({"set": names()}), max_size=2),
                ),
                "if": either(function()),
            },
        )
    )
    transition = st.fixed_dictionaries(
        {},
        optional={
            "on": either(names()),
            "goto": either(names()),
            "after": either(names()),
            "if": either(function()),
            "by": either(names(), st.lists(names(), max_size=2)),
        },
    )
    state = either(
        st.fixed_dictionaries(
            {},
            optional={
                "on": either(names()),
                "goto": either(names()),
                "after": either(names()),
                "title": either(names(), function()),
                "instructions": either(st.dictionaries(names(), either(names(), function()))),
                "notify": either(
                    names(),
                    st.lists(
                        either(
                            st.fixed_dictionaries(
                                {"service": names()},
                                optional={"after": names(), "trigger": names()},
                            )
                        )
                    ),
                ),
                "transitions": either(st.lists(transition, max_size=3)),
                "actions": either(st.lists(names(), max_size=2)),
            },
        )
    )
    return {
        "actors": actor,
        "actions": action,
        "states": state,
        "vars": schema_like(),
        "result": schema_like(),
        "title": either(names()),
        "tags": either(st.lists(names(), max_size=2)),
    }


def made_up() -> st.SearchStrategy[Any]:
    part = parts()
    return either(
        st.fixed_dictionaries(
            {},
            optional={
                "$schema": either(
                    st.sampled_from(
                        [
                            "https://schemas.letsflow.io/v1.0/scenario",
                            "https://schemas.letsflow.io/v1.0.0/scenario",
                            "x",
                        ]
                    )
                ),
                "name": names(),
                "title": names(),
                "description": names(),
                "version": either(st.sampled_from(["1.0", "2"])),
                "tags": either(st.lists(names(), max_size=2)),
                "actors": either(st.dictionaries(names(), part["actors"], max_size=3)),
                "actions": either(st.dictionaries(names(), part["actions"], max_size=4)),
                "states": either(st.dictionaries(names(), part["states"], min_size=1, max_size=4)),
                "vars": either(st.dictionaries(names(), schema_like(), max_size=2)),
                "result": schema_like(),
                "id": anything(),
            },
        )
    )


# The tutorial scenarios (valid), each changed in a few places: reaches the checks that only
# run once a definition is well-formed.
BASES = [parse_yaml(path.read_text()) for path in sorted(SCENARIO_DATA.glob("*.yaml"))]


def changed_bases() -> st.SearchStrategy[Any]:
    part = parts()
    change = st.sampled_from(sorted(part)).flatmap(
        lambda section: st.tuples(st.just(section), st.one_of(st.none(), names()), part[section])
    )

    def apply(base: dict[str, Any], changes: list[tuple[str, str | None, Any]]) -> Any:
        scenario = copy.deepcopy(base)
        for section, key, value in changes:
            if key is None or not isinstance(scenario.get(section), dict):
                scenario[section] = value
            else:
                scenario[section][key] = value
        return scenario

    return st.builds(apply, st.sampled_from(BASES), st.lists(change, max_size=3))


def scenarios() -> st.SearchStrategy[Any]:
    return st.one_of(changed_bases(), made_up())


YAML_LINES = [
    "states:", "  initial:", "    on: complete", "    goto: (done)", "    after: 5 minutes",
    "actors:", "  user: {}", "  bot: !required string", "actions:", "  complete:",
    "    actor: user", "    response: !required number", "    update: !ref current.response",
    "    title: !tpl '{{ vars.x }}'", "    if: !select {$: x, a: 1}", "    if: !eval 1 + 1",
    "a: &anchor {x: 1}", "b: *anchor", "c: *missing", "<<: *anchor", "d: !!python/object:os.system",
    "e: !!binary aGVsbG8=", "e: !!set {a, b}", "e: !!timestamp 2001-12-14", "f: [1, 2", "g: {", "h: '", "- item", "\t- tab", "title: \"\\ud800\"",
    "name: 1.0", "version: 1.0", "key: value: other", "? complex", ": key", "%YAML 1.2", "---",
    "...", "x: !!float .nan", "y: !!int 0x_", "z: 1e999",
]  # fmt: skip


def spliced(text: str, at: int, lines: list[str]) -> str:
    kept = text.splitlines()
    at = at % (len(kept) + 1)
    return "\n".join([*kept[:at], *lines, *kept[at:]])


def yaml_texts() -> st.SearchStrategy[str]:
    sources = [path.read_text() for path in sorted(SCENARIO_DATA.glob("*.yaml"))]
    return st.one_of(
        scenarios().map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
        st.builds(
            spliced,
            st.sampled_from(sources),
            st.integers(0, 200),
            st.lists(st.sampled_from(YAML_LINES), min_size=1, max_size=3),
        ),
        st.lists(st.sampled_from(YAML_LINES), max_size=12).map("\n".join),
        st.text(max_size=60),
    )


def agent_specs() -> st.SearchStrategy[list[AgentSpec]]:
    def options_for(type_name: str) -> st.SearchStrategy[Any]:
        agent_type = REGISTRY.get(type_name)
        known = list(agent_type.options.model_fields) if agent_type else []
        keys = st.sampled_from(known) if known else names()
        # a JSON object: the schema refuses any other options before they reach the service
        return st.dictionaries(
            st.one_of(keys, names()), either(names(), st.lists(names(), max_size=2)), max_size=5
        )

    def one(names_: list[str]) -> st.SearchStrategy[AgentSpec]:
        return st.sampled_from([*REGISTRY, "nope", ""]).flatmap(
            lambda type_name: st.builds(
                AgentSpec,
                name=st.one_of(st.sampled_from(names_), st.text(max_size=8)),
                type=st.just(type_name),
                options=options_for(type_name),
                sources=st.lists(
                    st.one_of(st.sampled_from(names_), st.text(max_size=4)), max_size=3
                ),
                disabled=st.booleans(),
                keep_messages_for=st.one_of(st.none(), st.integers(-(2**31), 2**31 - 1)),
                max_retries=st.integers(-(2**31), 2**31 - 1),
                timeout_seconds=st.one_of(st.none(), st.floats(allow_nan=False)),
            )
        )

    pool = ["hook", "a", "b", "c", " a ", "A"]
    return st.lists(one(pool), max_size=5)


# -- the properties --------------------------------------------------------------------------


def principal_of(server: ThreadedServer, account: Account) -> Principal:
    async def load() -> Principal:
        async with server.runtime.db.read() as session:
            return await authenticate(session, server.runtime.settings, account.token)

    return server.run(load())


def rolled_back(
    server: ThreadedServer, work: Callable[[Any], Coroutine[Any, Any, Any]]
) -> Callable[[], None]:
    async def attempt() -> None:
        async with server.runtime.db.transaction() as session:
            await work(session)
            raise Rollback

    return lambda: server.run(attempt())


@pytest.fixture(scope="module")
def author(threaded_server: ThreadedServer) -> Principal:
    return principal_of(threaded_server, threaded_server.account())


def scenario_property(
    server: ThreadedServer, author: Principal, name: str, form: str, inputs: st.SearchStrategy[Any]
) -> Outcomes:
    outcomes = Outcomes()

    @bounded(200)
    @given(given_input=inputs)
    def stored(given_input: Any) -> None:
        async def work(session: Any) -> None:
            await store_scenario(session, author, **{form: given_input})

        outcomes.record({form: given_input}, rolled_back(server, work))

    stored()
    report(outcomes.summary(name))
    return outcomes


def test_any_scenario_definition_is_stored_or_refused_with_validation_error(
    threaded_server: ThreadedServer, author: Principal
) -> None:
    outcomes = scenario_property(
        threaded_server, author, "scenario validator property (JSON)", "definition", scenarios()
    )
    outcomes.assert_clean()


# Found by the YAML property, in services/scenarios/loader.py, which abuse-input is rewriting
# (and fixes there): routed, not fixed here. While they are seen, the test is an xfail naming
# them; any other failure fails it, and once they are gone it passes.
YAML_FINDINGS = {
    "ReaderError": "a control character (e.g. \\x1a, \\x85) in the text: parse_yaml builds its "
    "loader outside the try that turns yaml errors into LoadError",
    "UnicodeEncodeError": 'an escaped lone surrogate ("\\ud800") reaches the stored definition, '
    "whose hash (store.scenario_id) cannot encode it",
}
YAML_FINDING = (
    "storeScenario(yaml:) and POST /compat/letsflow/scenarios answer INTERNAL_ERROR (500) for: "
    + "; ".join(f"{name}: {what}" for name, what in YAML_FINDINGS.items())
)


def test_any_scenario_yaml_is_stored_or_refused_with_validation_error(
    threaded_server: ThreadedServer, author: Principal
) -> None:
    outcomes = scenario_property(
        threaded_server, author, "scenario validator property (YAML)", "yaml_text", yaml_texts()
    )
    if outcomes.failures and all(k.startswith(tuple(YAML_FINDINGS)) for k in outcomes.failures):
        pytest.xfail(YAML_FINDING)
    outcomes.assert_clean()


@pytest.mark.parametrize("value", ["!!binary aGVsbG8=", "!!set {a, b}", "!!timestamp 2001-12-14"])
def test_yaml_values_json_cannot_hold_are_a_validation_error(value: str) -> None:
    """Found by the YAML property: bytes, sets and dates broke the scenario's hash (TypeError,
    answered INTERNAL_ERROR)."""
    text = f"states:\n  initial:\n    on: complete\n    goto: (done)\nextra: {value}\n"
    with pytest.raises(ValidationFailed) as refused:
        parse_definition(None, text)
    assert refused.value.fields == {"yaml": "only JSON values: no binary, set or date"}


def test_a_timeout_transition_with_an_action_named_empty_is_validated() -> None:
    """Found by the scenario property: the implicit-notify pass read `by` of a timeout
    transition, which has none (KeyError, answered INTERNAL_ERROR)."""
    definition = {
        "actions": {"": {}},
        "states": {"initial": {"after": "5 minutes", "goto": "(done)"}},
    }
    with contextlib.suppress(ValidationFailed):
        check(definition)


def test_any_workflow_graph_is_created_or_refused_with_validation_error(
    threaded_server: ThreadedServer, author: Principal
) -> None:
    outcomes = Outcomes()

    @bounded(150)
    @given(
        agents=agent_specs(),
        variables=either(st.dictionaries(names(), anything())),
        description=st.text(max_size=30),  # a String in the schema
    )
    def created(agents: list[AgentSpec], variables: Any, description: str) -> None:
        async def work(session: Any) -> None:
            await create_workflow(
                session,
                author,
                threaded_server.runtime.box,
                workspace_id=None,
                name="fuzzed",
                description=description,
                variables=variables,
                agents=agents,
            )

        outcomes.record(
            {"agents": agents, "variables": variables, "description": description},
            rolled_back(threaded_server, work),
        )

    created()
    report(outcomes.summary("workflow validator property"))
    outcomes.assert_clean()


def test_any_agent_options_are_parsed_or_refused_with_validation_error() -> None:
    outcomes = Outcomes()

    @bounded(400)
    @given(data=st.data())
    def parsed(data: st.DataObject) -> None:
        type_name = data.draw(st.sampled_from([*REGISTRY, "nope"]))
        agent_type = REGISTRY.get(type_name)
        known = list(agent_type.options.model_fields) if agent_type else ["x"]
        options = data.draw(
            either(
                st.dictionaries(st.one_of(st.sampled_from(known), names()), anything(), max_size=6)
            )
        )
        outcomes.record(
            {"type": type_name, "options": options}, lambda: validate_options(type_name, options)
        )

    parsed()
    report(outcomes.summary("agent options validator property"))
    outcomes.assert_clean()

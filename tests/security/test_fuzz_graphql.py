"""GraphQL fuzzing against a real server: documents generated from the schema (hypothesis-graphql),
valid ones and ones with one violation, sent as an owner, an API key, an execution token and
anonymously. Whatever is sent, the answer is never a 5xx nor INTERNAL_ERROR, and every error
carries one of the stable codes.

Bounded for CI: a fixed number of examples per strategy and no shrinking (each failure is kept
as found, the distinct ones listed at the end). FLOWQL_FUZZ_EXAMPLES multiplies the budget for
a deeper local run; FLOWQL_FUZZ_SEED picks another fixed seed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import graphql
import httpx
import hypothesis_graphql as hg
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from flowql.errors import ErrorCode
from flowql.schema import build_schema
from tests.security.live import ThreadedServer, report
from tests.security.tenancy_world import World, build_world

SCALE = float(os.environ.get("FLOWQL_FUZZ_EXAMPLES", "1"))
SEED = int(os.environ.get("FLOWQL_FUZZ_SEED", "20261128"))
STABLE_CODES = {code.value for code in ErrorCode} - {ErrorCode.INTERNAL_ERROR.value}
TIMEOUT = 20.0

pytestmark = pytest.mark.slow


@dataclass
class Findings:
    sent: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # what went wrong -> the document

    def check(self, document: str, response: httpx.Response | None) -> None:
        self.sent += 1
        problem = self.problem(response)
        if problem is not None:
            self.failures.setdefault(problem, document)

    @staticmethod
    def problem(response: httpx.Response | None) -> str | None:
        if response is None:
            return f"no answer within {TIMEOUT:.0f} s"
        if response.status_code >= 500:
            return f"HTTP {response.status_code}: {response.text[:200]}"
        try:
            body = response.json()
        except ValueError:
            return (
                f"HTTP {response.status_code} with a body that is not JSON: {response.text[:200]}"
            )
        for error in (body.get("errors") or []) if isinstance(body, dict) else []:
            code = (error.get("extensions") or {}).get("code")
            if code not in STABLE_CODES:
                return f"error code {code!r}: {error.get('message', '')[:200]}"
        return None


def names() -> st.SearchStrategy[str]:
    return st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,8}\Z")


def json_values() -> st.SearchStrategy[graphql.ValueNode]:
    """Any JSON literal, with the hostile ones a JSON column must refuse or survive."""
    leaves = st.one_of(
        st.just(graphql.NullValueNode()),
        st.booleans().map(lambda b: graphql.BooleanValueNode(value=b)),
        st.integers().map(nodes.Int),
        st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
        st.sampled_from(["1e999", "-1e999", "1e-999"]).map(
            lambda v: graphql.FloatValueNode(value=v)
        ),
        st.text(max_size=20).map(nodes.String),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4).map(
                lambda items: graphql.ListValueNode(values=tuple(items))
            ),
            st.dictionaries(names(), inner, max_size=4).map(
                lambda d: graphql.ObjectValueNode(
                    fields=tuple(
                        graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=v)
                        for k, v in d.items()
                    )
                )
            ),
        ),
        max_leaves=12,
    )


def custom_scalars(world: World) -> dict[str, st.SearchStrategy[graphql.ValueNode]]:
    ids = sorted({row.id for rows in world.rows.values() for row in rows})
    return {
        "UUID": st.one_of(st.sampled_from(ids), st.uuids().map(str), st.text(max_size=40)).map(
            nodes.String
        ),
        "DateTime": st.one_of(
            st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30)
        ).map(nodes.String),
        "JSON": json_values(),
    }


@pytest.fixture(scope="module")
def fuzz_world(threaded_server: ThreadedServer) -> World:
    return build_world(threaded_server, "F")


def run_fuzzer(
    name: str,
    strategy: st.SearchStrategy[str],
    examples: int,
    server: ThreadedServer,
    world: World,
) -> Findings:
    findings = Findings()
    callers = [*world.callers.values(), None]

    @seed(SEED)
    @settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(document=strategy, caller=st.sampled_from(callers))
    def fuzz(document: str, caller: str | None) -> None:
        headers = {"Authorization": f"Bearer {caller}"} if caller else {}
        try:
            response: httpx.Response | None = server.client.post(
                "/graphql", json={"query": document}, headers=headers, timeout=TIMEOUT
            )
        except httpx.TimeoutException:
            response = None
        findings.check(document, response)

    fuzz()
    report(
        f"graphql fuzz ({name}): {findings.sent} requests sent, {len(findings.failures)} failures"
    )
    return findings


def assert_clean(findings: Findings) -> None:
    assert not findings.failures, "\n\n".join(
        f"{problem}\n--- sent:\n{document}" for problem, document in findings.failures.items()
    )


STRATEGIES: dict[str, tuple[Callable[..., st.SearchStrategy[str]], hg.Mode, int]] = {
    # mutations first, so the queries read back whatever the fuzzed mutations stored
    "mutations": (hg.mutations, hg.Mode.POSITIVE, 160),
    "queries": (hg.queries, hg.Mode.POSITIVE, 120),
    "invalid queries": (hg.queries, hg.Mode.NEGATIVE, 40),
    "invalid mutations": (hg.mutations, hg.Mode.NEGATIVE, 40),
}


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_graphql_fuzzing_never_answers_5xx_or_an_unstable_code(
    threaded_server: ThreadedServer, fuzz_world: World, kind: str
) -> None:
    make, mode, examples = STRATEGIES[kind]
    schema = build_schema()._schema
    strategy = make(schema, custom_scalars=custom_scalars(fuzz_world), mode=mode)
    assert_clean(run_fuzzer(kind, strategy, examples, threaded_server, fuzz_world))


# -- what the fuzzer found, kept as plain regression tests -------------------------------------


def test_agent_options_that_are_not_an_object_are_refused(
    threaded_server: ThreadedServer, fuzz_world: World
) -> None:
    """Found by the mutation fuzzer: a list as an agent's options answered INTERNAL_ERROR."""
    token = fuzz_world.owner.token
    workflow = threaded_server.post(
        """mutation($o: JSON) { createWorkflow(input: {name: "w",
             agents: [{name: "a", type: "message", options: $o}]}) { id } }""",
        {"o": [{"x": 1}, [2]]},
        token,
    ).json()
    agent = threaded_server.post(
        """mutation($w: UUID!, $o: JSON) { createAgent(input: {workflowId: $w, name: "b",
             type: "message", options: $o}) { id } }""",
        {"w": fuzz_world.first("workflow").id, "o": "text"},
        token,
    ).json()
    for body in (workflow, agent):
        extensions = body["errors"][0]["extensions"]
        assert extensions["code"] == "VALIDATION_ERROR", body
        assert extensions["fields"] == {"options": "must be an object"}, body

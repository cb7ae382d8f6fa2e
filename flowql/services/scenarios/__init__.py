"""Scenarios: LetsFlow's human-in-the-loop processes, in LetsFlow's own format.

- `loader`, `normalize`, `validate`, `schemas`: definitions as YAML or JSON -> normalised JSON.
- `expressions`: data functions (`<ref>` JMESPath, `<tpl>` Mustache, `<select>`).
- `state`, `process`: a process as a deterministic, hash-chained projection of its events.
- `store`: immutable storage, ids from the hash of the normalised definition.
- `runner`, `access`, `history`, `hooks`: a scenario process's start (reached through
  services.processes.start_process, the one start of every kind of process), performing
  actions, timeouts, verification, who may act as whom, and hooks for code that reacts to
  entered states.
"""

from flowql.services.scenarios.access import system_principal
from flowql.services.scenarios.hooks import StateEntered, StateEnteredHook
from flowql.services.scenarios.runner import (
    ActionOutcome,
    ActionSkipped,
    fire_due_timeouts,
    perform_action,
    perform_action_in,
    verify_process,
)
from flowql.services.scenarios.store import (
    ScenarioFilter,
    disable_scenario,
    get_scenario,
    list_statement,
    scenario_notices,
    scenario_yaml,
    store_scenario,
)

__all__ = [
    "ActionOutcome",
    "ActionSkipped",
    "ScenarioFilter",
    "StateEntered",
    "StateEnteredHook",
    "disable_scenario",
    "fire_due_timeouts",
    "get_scenario",
    "list_statement",
    "perform_action",
    "perform_action_in",
    "scenario_notices",
    "scenario_yaml",
    "store_scenario",
    "system_principal",
    "verify_process",
]

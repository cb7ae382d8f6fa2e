"""`java_script`: Huginn's and ActiveWorkflow's JavaScriptAgent, run in an embedded V8 isolate
(mini-racer), one fresh isolate per run.

The script defines `Agent.check` and/or `Agent.receive` (or plain `check()` / `receive()`
functions); flowql calls `receive` for a message and `check` when the agent's schedule fires.
Inside, `this` (and the global `Agent`) offers the Huginn/ActiveWorkflow API:

- `createMessage(payload)` / `createEvent(payload)`: emit a message (an object);
- `incomingMessage()` / `incomingEvent()`: `{payload}` of the message being received (null on
  check); `incomingMessages()` / `incomingEvents()`: the same as a list;
- `memory()`, `memory(key)`, `memory(key, value)`, `setMemory(object)`, `deleteKey(key)`:
  the agent's memory, kept across runs (JSON);
- `options()`, `options(key)`: the agent's options, Liquid-rendered over the message (`code`
  itself is not a template);
- `credential(name)`: a credential's value, only for names listed in the `credentials` option
  (read once before the script runs; setting credentials is not offered);
- `log(text)`, `error(text)`: lines in the step's log; `escapeHtml`, `unescapeHtml`.

The isolate has no I/O: V8 offers no `require`, `fetch`, `XMLHttpRequest`, file system or
network, and flowql adds nothing but the API above (mini-racer's `setTimeout` is removed). Binary
buffers (`ArrayBuffer`, typed arrays, `WebAssembly`) are removed too: their memory lies outside
V8's heap, where `max_memory_mb` cannot stop it. A
script that runs past `timeout_seconds` or allocates past `max_memory_mb` is stopped and the step
fails with a clear error; a thrown error fails the step too. Memory changes and messages of a
failed run are discarded.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import suppress
from typing import Any, Literal

from py_mini_racer import MiniRacer
from py_mini_racer._exc import (
    JSEvalException,
    JSOOMException,
    JSTimeoutException,
    MiniRacerBaseException,
)
from pydantic import ConfigDict, Field

from flowql.agents.base import AgentRun, AgentType, Kind, Options, Outcome, StepFailed
from flowql.agents.stateful import render_with
from flowql.auth.privileges import require_for_process

MAX_TIMEOUT_SECONDS = 30.0
MAX_MEMORY_MB = 256
# What one run may hand back (messages, logs and memory together, as JSON).
MAX_RESULT_BYTES = 8 * 1024 * 1024
MAX_MESSAGES_PER_RUN = 1000
MAX_LOG_LINES = 200


class JavaScriptOptions(Options):
    code: str = Field(min_length=1, max_length=200_000, description="The script")
    language: Literal["JavaScript", "javascript"] = Field(
        default="JavaScript", description="Only JavaScript (Huginn's CoffeeScript is not offered)"
    )
    timeout_seconds: float = Field(default=5, gt=0, le=MAX_TIMEOUT_SECONDS)
    max_memory_mb: int = Field(default=64, ge=16, le=MAX_MEMORY_MB)
    credentials: list[str] = Field(
        default_factory=list, max_length=20, description="Credentials `credential(name)` may read"
    )
    expected_receive_period_in_days: float | None = Field(default=None, ge=0)
    expected_update_period_in_days: float | None = Field(default=None, ge=0)
    # Any other key is the script's own option, read with `this.options(key)`.
    model_config = ConfigDict(extra="allow")


_SETUP = r"""
(function (g, input) {
  g.setTimeout = undefined;
  g.clearTimeout = undefined;
  g.__timer_manager = undefined;
  // Binary buffers live outside V8's heap, beyond max_memory's reach: not offered.
  ["ArrayBuffer", "SharedArrayBuffer", "DataView", "Atomics", "WebAssembly", "Int8Array",
   "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array", "Uint32Array",
   "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array"
  ].forEach(function (name) { delete g[name]; });
  var messages = [], logs = [], memory = input.memory, options = input.options;
  var credentials = input.credentials, incoming = input.incoming;
  var limits = input.limits;
  function clone(value) { return value === undefined ? null : JSON.parse(JSON.stringify(value)); }
  function noop() {}
  function Agent() {}
  Agent.createMessage = function (payload) {
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      throw new TypeError("createMessage needs an object");
    }
    if (messages.length >= limits.messages) {
      throw new RangeError("more than " + limits.messages + " messages in one run");
    }
    var copy = clone(payload);
    messages.push(copy);
    return clone(copy);
  };
  Agent.createEvent = Agent.createMessage;
  Agent.incomingMessage = function () { return incoming === null ? null : clone(incoming); };
  Agent.incomingEvent = Agent.incomingMessage;
  Agent.incomingMessages = function () { return incoming === null ? [] : [clone(incoming)]; };
  Agent.incomingEvents = Agent.incomingMessages;
  Agent.memory = function (key, value) {
    if (key !== undefined && value !== undefined) { memory[key] = clone(value); return; }
    if (key !== undefined) { return clone(memory[key]); }
    return clone(memory);
  };
  Agent.setMemory = function (object) {
    if (object === null || typeof object !== "object" || Array.isArray(object)) {
      throw new TypeError("setMemory needs an object");
    }
    memory = clone(object);
  };
  Agent.deleteKey = function (key) { var old = memory[key]; delete memory[key]; return clone(old); };
  Agent.options = function (key) { return key === undefined ? clone(options) : clone(options[key]); };
  Agent.credential = function (name, value) {
    if (value !== undefined) { throw new Error("credentials cannot be set from a script"); }
    if (!Object.prototype.hasOwnProperty.call(credentials, name)) {
      throw new Error("credential " + JSON.stringify(name) + " is not listed in the credentials option");
    }
    return credentials[name];
  };
  function line(prefix, text) {
    if (logs.length < limits.logs) { logs.push(prefix + String(text)); }
  }
  Agent.log = function (text) { line("", text); };
  Agent.error = function (text) { line("error: ", text); };
  var entities = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  Agent.escapeHtml = function (text) {
    return String(text).replace(/[&<>"']/g, function (c) { return entities[c]; });
  };
  Agent.unescapeHtml = function (text) {
    return String(text).replace(/&(amp|lt|gt|quot|#39|#x27|apos);/g, function (m, name) {
      return {amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'", "#x27": "'", apos: "'"}[name];
    });
  };
  Agent.check = noop;
  Agent.receive = noop;
  g.Agent = Agent;
  Object.defineProperty(g, "__flowql_run", {
    value: function (name) {
      var fn = Agent[name];
      if (fn === noop && typeof g[name] === "function") { fn = g[name]; }
      fn.call(Agent);
    },
  });
  Object.defineProperty(g, "__flowql_result", {
    value: function () {
      return JSON.stringify({messages: messages, logs: logs, memory: memory});
    },
  });
})(globalThis, JSON.parse(%s));
"""


def _execute(source: str, setup_input: dict[str, Any], mode: str, timeout: float, mb: int) -> Any:
    """Run the script in a fresh isolate (a worker thread); the result JSON or a StepFailed."""
    deadline = time.monotonic() + timeout
    limit = mb * 1024 * 1024
    with MiniRacer() as isolate:
        isolate.eval(_SETUP % json.dumps(json.dumps(setup_input)))

        def run(code: str) -> Any:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JSTimeoutException
            return isolate.eval(code, timeout_sec=left, max_memory=limit)

        try:
            run(source)
            run(f"__flowql_run({json.dumps(mode)})")
            result = run("__flowql_result()")
        except JSTimeoutException:
            # Let V8 report the cancelled evaluation before the isolate closes (else mini-racer
            # calls back into its closed event loop).
            with suppress(MiniRacerBaseException):
                isolate.eval("0")
            raise StepFailed(f"JavaScript ran longer than {timeout:g}s: stopped") from None
        except JSOOMException:
            raise StepFailed(f"JavaScript used more than {mb} MB of memory: stopped") from None
        except JSEvalException as exc:
            raise StepFailed(f"JavaScript error: {_first_lines(str(exc))}") from None
        except MiniRacerBaseException as exc:
            raise StepFailed(f"JavaScript failed: {type(exc).__name__}: {exc}") from None
    return result


def _first_lines(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[:3])[:1000]


async def java_script(run: AgentRun) -> Outcome:
    options = JavaScriptOptions.model_validate(run.agent.options)
    script_options = render_with(
        run, {key: value for key, value in run.agent.options.items() if key != "code"}
    )
    credentials: dict[str, str] = {}
    if options.credentials:
        require_for_process(run.process.privileges, "credential:read", "use credentials")
        for name in options.credentials:
            credentials[name] = await run.resolve_credential(name)
    setup = {
        "memory": dict(run.memory),
        "options": script_options,
        "credentials": credentials,
        "incoming": {"payload": dict(run.payload)} if run.mode == "receive" else None,
        "limits": {"messages": MAX_MESSAGES_PER_RUN, "logs": MAX_LOG_LINES},
    }
    result = await asyncio.to_thread(
        _execute, options.code, setup, run.mode, options.timeout_seconds, options.max_memory_mb
    )
    if not isinstance(result, str) or len(result) > MAX_RESULT_BYTES:
        raise StepFailed("JavaScript handed back too much (messages, logs and memory)")
    done = json.loads(result)
    memory = done.get("memory")
    run.memory.clear()
    run.memory.update(memory if isinstance(memory, dict) else {})
    return Outcome(emit=list(done["messages"]), logs=[str(line) for line in done["logs"]])


# Huginn's JavaScriptAgent default code, for the catalog's example.
_EXAMPLE_CODE = """\
Agent.check = function() {
  if (this.options('make_event')) {
    this.createEvent({ 'message': 'I made an event!' });
    var callCount = this.memory('callCount') || 0;
    this.memory('callCount', callCount + 1);
  }
};

Agent.receive = function() {
  var events = this.incomingEvents();
  for (var i = 0; i < events.length; i++) {
    this.createEvent({ 'message': 'I got an event!', 'event_was': events[i].payload });
  }
};
"""


TYPES: tuple[AgentType, ...] = (
    AgentType(
        "java_script",
        Kind.ACTION,
        JavaScriptOptions,
        "Runs a JavaScript `receive` (per message) or `check` (on schedule) in a sandboxed V8 "
        "isolate with time and memory limits; it can emit messages, keep memory and log",
        java_script,
        emits="Whatever the script creates with createMessage / createEvent",
        example={"code": _EXAMPLE_CODE, "expected_receive_period_in_days": "2"},
    ),
)

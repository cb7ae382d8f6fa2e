"""java_script: Huginn's / ActiveWorkflow's JavaScriptAgent API in a real V8 isolate
(mini-racer), its limits (time, memory) and its sandbox (no I/O)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from flowql.agents.base import StepFailed
from flowql.agents.registry import validate_options
from flowql.errors import ValidationFailed
from flowql.formats.huginn import flowql_type
from tests.agents.conftest import RunAgent

# ActiveWorkflow's default script, as its agent ships it.
AW_DEFAULT = """
Agent.check = function() {
  if (this.options('make_message')) {
    this.createMessage({ 'message': 'I made a message!' });
    var callCount = this.memory('callCount') || 0;
    this.memory('callCount', callCount + 1);
  }
};

Agent.receive = function() {
  var message = this.incomingMessage();
  this.createMessage({ 'message': 'I got a message!', 'message_was': message.payload });
}
"""


def test_class_name_maps_to_java_script() -> None:
    assert flowql_type("Agents::JavaScriptAgent") == "java_script"


async def test_activeworkflow_default_script_check_and_receive(run_agent: RunAgent) -> None:
    options = {"code": AW_DEFAULT, "make_message": True}
    memory: dict[str, Any] = {}
    for count in (1, 2):
        outcome = await run_agent("java_script", options, memory=memory, mode="check")
        assert outcome.emit == [{"message": "I made a message!"}]
        memory = json.loads(json.dumps(memory))
        assert memory == {"callCount": count}
    outcome = await run_agent("java_script", options, {"a": 1}, memory=memory)
    assert outcome.emit == [{"message": "I got a message!", "message_was": {"a": 1}}]
    assert memory == {"callCount": 2}


async def test_huginn_event_api_and_plain_functions(run_agent: RunAgent) -> None:
    code = """
    function receive() {
      var events = this.incomingEvents();
      for (var i = 0; i < events.length; i++) {
        this.createEvent({doubled: events[i].payload.n * 2, label: this.options('label')});
      }
      this.log('saw ' + events.length);
      this.error('just a warning');
    }
    """
    outcome = await run_agent(
        "java_script", {"code": code, "label": "n={{ message.n }}"}, {"n": 21}
    )
    assert outcome.emit == [{"doubled": 42, "label": "n=21"}]
    assert outcome.logs == ["saw 1", "error: just a warning"]


async def test_memory_api_across_runs(run_agent: RunAgent) -> None:
    code = """
    Agent.receive = function() {
      var seen = this.memory('seen') || [];
      seen.push(this.incomingMessage().payload.v);
      this.memory('seen', seen);
      if (seen.length === 3) {
        this.createMessage({all: this.memory('seen'), dropped: this.deleteKey('temp')});
        this.setMemory({reset: true});
      } else {
        this.memory('temp', 'x');
      }
    };
    """
    memory: dict[str, Any] = {}
    for v in (1, 2):
        outcome = await run_agent("java_script", {"code": code}, {"v": v}, memory=memory)
        assert outcome.emit == []
    assert memory == {"seen": [1, 2], "temp": "x"}
    outcome = await run_agent("java_script", {"code": code}, {"v": 3}, memory=memory)
    assert outcome.emit == [{"all": [1, 2, 3], "dropped": "x"}]
    assert memory == {"reset": True}


async def test_credentials_only_when_listed(run_agent: RunAgent) -> None:
    code = "Agent.receive = function() { this.createMessage({k: this.credential('api')}); };"
    outcome = await run_agent(
        "java_script",
        {"code": code, "credentials": ["api"]},
        {},
        credentials={"api": "tok-1", "other": "x"},
    )
    assert outcome.emit == [{"k": "tok-1"}]
    code = "Agent.receive = function() { this.credential('other'); };"
    with pytest.raises(StepFailed, match="not listed in the credentials option"):
        await run_agent("java_script", {"code": code}, {}, credentials={"other": "x"})


async def test_html_helpers(run_agent: RunAgent) -> None:
    code = """Agent.receive = function() {
      var e = this.escapeHtml('<a href="x">&\\'</a>');
      this.createMessage({e: e, u: this.unescapeHtml(e)});
    };"""
    [out] = (await run_agent("java_script", {"code": code}, {})).emit
    assert out == {
        "e": "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;",
        "u": '<a href="x">&\'</a>',
    }


async def test_no_io_in_the_sandbox(run_agent: RunAgent) -> None:
    code = """Agent.receive = function() {
      var names = ['require', 'fetch', 'XMLHttpRequest', 'process', 'module', 'Deno', 'Bun',
                   'WebSocket', 'setTimeout', 'importScripts', 'navigator'];
      var found = {};
      names.forEach(function (n) { found[n] = typeof globalThis[n]; });
      this.createMessage(found);
    };"""
    [found] = (await run_agent("java_script", {"code": code}, {})).emit
    assert found == dict.fromkeys(found, "undefined")


async def test_no_binary_buffers_beyond_the_memory_limit(run_agent: RunAgent) -> None:
    # ArrayBuffers are allocated outside V8's heap, where the hard memory limit does not reach
    # (measured: 40 x 100 MB buffers ran up 4 GB under a 64 MB limit): they are not offered.
    code = """Agent.receive = function() {
      var names = ['ArrayBuffer', 'SharedArrayBuffer', 'Uint8Array', 'Float64Array', 'DataView',
                   'WebAssembly', 'Atomics'];
      var found = {};
      names.forEach(function (n) { found[n] = typeof globalThis[n]; });
      this.createMessage(found);
    };"""
    [found] = (await run_agent("java_script", {"code": code}, {})).emit
    assert found == dict.fromkeys(found, "undefined")
    code = "Agent.receive = function() { new ArrayBuffer(1e9); };"
    with pytest.raises(StepFailed, match="ArrayBuffer is not defined"):
        await run_agent("java_script", {"code": code}, {})


async def test_endless_loop_is_stopped(run_agent: RunAgent) -> None:
    started = time.monotonic()
    with pytest.raises(StepFailed, match=r"ran longer than 0\.5s"):
        await run_agent(
            "java_script",
            {"code": "Agent.receive = function() { while (true) {} };", "timeout_seconds": 0.5},
            {},
        )
    assert time.monotonic() - started < 10
    # the process is intact: the next run works
    ok = await run_agent("java_script", {"code": AW_DEFAULT}, {"x": 1})
    assert ok.emit[0]["message"] == "I got a message!"


async def test_unbounded_allocation_is_stopped(run_agent: RunAgent) -> None:
    code = """Agent.receive = function() {
      var hoard = [];
      while (true) { hoard.push(new Array(100000).fill(Math.random())); }
    };"""
    memory = {"kept": 1}
    with pytest.raises(StepFailed, match="more than 32 MB of memory"):
        await run_agent(
            "java_script",
            {"code": code, "max_memory_mb": 32, "timeout_seconds": 20},
            {},
            memory=memory,
        )
    assert memory == {"kept": 1}  # a failed run changes nothing
    ok = await run_agent("java_script", {"code": AW_DEFAULT}, {"x": 1})
    assert len(ok.emit) == 1


async def test_errors_fail_the_step_clearly(run_agent: RunAgent) -> None:
    with pytest.raises(StepFailed, match=r"JavaScript error: .*boom"):
        await run_agent(
            "java_script", {"code": "Agent.receive = function() { throw new Error('boom'); };"}, {}
        )
    with pytest.raises(StepFailed, match=r"JavaScript error: .*SyntaxError"):
        await run_agent("java_script", {"code": "function ("}, {})
    with pytest.raises(StepFailed, match="createMessage needs an object"):
        await run_agent(
            "java_script", {"code": "Agent.receive = function() { this.createMessage(3); };"}, {}
        )


def test_options_are_checked() -> None:
    with pytest.raises(ValidationFailed) as info:
        validate_options(
            "java_script",
            {"code": "", "language": "CoffeeScript", "timeout_seconds": 600, "max_memory_mb": 4096},
        )
    assert {
        "options.code",
        "options.language",
        "options.timeout_seconds",
        "options.max_memory_mb",
    } <= set(info.value.fields)

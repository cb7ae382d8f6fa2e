"""LetsFlow data functions: `<ref>` (JMESPath), `<tpl>` (Mustache) and `<select>`.

`apply_fn` evaluates every data function inside a value against a process (LetsFlow's process
JSON). Templates are Mustache (chevron) without HTML escaping: LetsFlow's texts are not HTML.
"""

from __future__ import annotations

import re
from typing import Any

import chevron

from flowql.services.scenarios.jmes import (
    ExpressionError,
    canonical_json,
    compile_expression,
    search,
)

FUNCTION_KEYS = ("<ref>", "<tpl>", "<select>")


class _JsBool:
    """A boolean as Mustache in JavaScript shows it: `true` / `false`, with its truthiness."""

    def __init__(self, value: bool) -> None:
        self.value = value

    def __bool__(self) -> bool:
        return self.value

    def __str__(self) -> str:
        return "true" if self.value else "false"


def _mustache_view(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _JsBool(value)
    if isinstance(value, dict):
        return {key: _mustache_view(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mustache_view(item) for item in value]
    return value


# Mustache escapes HTML in `{{ name }}`; LetsFlow's texts are not HTML, so every plain tag is
# rendered like `{{& name }}`.
_PLAIN_TAG = re.compile(r"\{\{(?![{#/^!>&=])")


def render_template(template: str, view: Any, partials: dict[str, str] | None = None) -> str:
    try:
        rendered: str = chevron.render(
            _PLAIN_TAG.sub("{{&", template),
            _mustache_view(view),
            partials_dict={k: _PLAIN_TAG.sub("{{&", v) for k, v in (partials or {}).items()},
        )
    except (chevron.ChevronError, IndexError, KeyError, TypeError) as exc:
        raise ExpressionError(f"template {template!r}: {exc}") from None
    return rendered


def check_template(template: Any) -> None:
    """Raise ExpressionError when a template does not parse."""
    if not isinstance(template, str):
        raise ExpressionError("a template must be a string")
    render_template(template, {})


def is_fn(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in FUNCTION_KEYS


def select_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "null" if value is None else str(value)


def apply_fn(value: Any, view: Any) -> Any:
    """Evaluate every data function inside `value` against the process `view`."""
    if isinstance(value, list):
        return [apply_fn(item, view) for item in value]
    if not isinstance(value, dict):
        return value
    if not is_fn(value):
        return {key: apply_fn(item, view) for key, item in value.items()}
    kind, argument = next(iter(value.items()))
    if kind == "<ref>":
        return search(argument, view)
    if kind == "<tpl>":
        if isinstance(argument, str):
            return render_template(argument, view)
        data = apply_fn(argument.get("view"), view) if "view" in argument else view
        return render_template(argument["template"], data, argument.get("partials"))
    options = dict(argument)
    selected = select_key(apply_fn(options.pop("$", None), view))
    chosen = options.get(selected, options.get("*"))
    return apply_fn(chosen, view)


__all__ = [
    "FUNCTION_KEYS",
    "ExpressionError",
    "apply_fn",
    "canonical_json",
    "check_template",
    "compile_expression",
    "is_fn",
    "render_template",
    "search",
]

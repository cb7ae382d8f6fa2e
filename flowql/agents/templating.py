"""Liquid templates in agent options (python-liquid), as Huginn and ActiveWorkflow users write them.

An option whose whole value is one output statement (`"{{ message.age }}"`, surrounding blanks
allowed) renders to the expression's value with its type kept: a number stays a number, a list a
list, an object an object, an undefined variable null. Any other template (text around the
expression, several expressions, tags) renders to text.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext
from liquid.builtin.output import OutputNode
from liquid.exceptions import LiquidError
from liquid.undefined import Undefined

from flowql.agents import liquid_filters


def build_environment() -> Environment:
    """The one Liquid environment agent options render in, with Huginn's filters and tags."""
    env = Environment()
    liquid_filters.register(env)
    return env


_env = build_environment()


class TemplateError(ValueError):
    pass


def _is_template(value: str) -> bool:
    return "{{" in value or "{%" in value


@lru_cache(maxsize=2048)
def _compile(source: str) -> BoundTemplate:
    try:
        return _env.from_string(source)
    except LiquidError as exc:
        raise TemplateError(str(exc).splitlines()[0]) from None


@lru_cache(maxsize=2048)
def _single_output(source: str) -> BoundTemplate | None:
    """The compiled template when `source` is exactly one `{{ expression }}`, else None."""
    stripped = source.strip()
    if not (stripped.startswith("{{") and stripped.endswith("}}")):
        return None
    template = _compile(stripped)
    if len(template.nodes) == 1 and isinstance(template.nodes[0], OutputNode):
        return template
    return None


def check_syntax(value: Any, path: str = "options") -> dict[str, str]:
    """Every template string inside `value` that does not parse, by its path."""
    problems: dict[str, str] = {}
    if isinstance(value, str) and _is_template(value):
        try:
            _compile(value)
        except TemplateError as exc:
            problems[path] = f"invalid Liquid template: {exc}"
    elif isinstance(value, dict):
        for key, item in value.items():
            problems.update(check_syntax(item, f"{path}.{key}"))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            problems.update(check_syntax(item, f"{path}.{index}"))
    return problems


_NOT_JSON = object()


def _plain(value: Any) -> Any:
    """The JSON value of what an expression evaluated to (`_NOT_JSON` when it has none)."""
    if value is None or isinstance(value, Undefined):
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        items = {str(k): _plain(v) for k, v in value.items()}
        return _NOT_JSON if _NOT_JSON in items.values() else items
    if isinstance(value, list | tuple | range):
        listed = [_plain(v) for v in value]
        return _NOT_JSON if _NOT_JSON in listed else listed
    return _NOT_JSON


def _evaluate(template: BoundTemplate, context: dict[str, Any]) -> Any:
    node = template.nodes[0]
    assert isinstance(node, OutputNode)
    value = _plain(node.expression.evaluate(RenderContext(template, globals=context)))
    return template.render(**context) if value is _NOT_JSON else value


def render_text(source: str, context: dict[str, Any]) -> str:
    """A template rendered to text, whatever its shape."""
    if not _is_template(source):
        return source
    try:
        return _compile(source).render(**context)
    except LiquidError as exc:
        raise TemplateError(str(exc).splitlines()[0]) from None


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside `value` (dicts and lists recursively); a string that
    is one `{{ expression }}` becomes the expression's value, typed."""
    if isinstance(value, str):
        if not _is_template(value):
            return value
        try:
            single = _single_output(value)
            if single is not None:
                return _evaluate(single, context)
            return _compile(value).render(**context)
        except LiquidError as exc:
            raise TemplateError(str(exc).splitlines()[0]) from None
    if isinstance(value, dict):
        return {key: render(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, context) for item in value]
    return value


def condition(expression: str, context: dict[str, Any]) -> bool:
    """A Liquid condition such as `message.amount > 10 and message.kind == "x"`."""
    source = expression.strip()
    if source.startswith("{%") or source.startswith("{{"):
        rendered = render_text(source, context).strip().lower()
        return rendered not in ("", "false", "0", "nil", "null")
    return render_text("{% if " + source + " %}true{% endif %}", context) == "true"

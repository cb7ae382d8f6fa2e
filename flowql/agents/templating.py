"""Liquid templates in agent options (python-liquid), as Huginn and ActiveWorkflow users write them."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError

from flowql.agents import liquid_filters

_env = Environment()
liquid_filters.register(_env)


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


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template string inside `value` (dicts and lists recursively)."""
    if isinstance(value, str):
        if not _is_template(value):
            return value
        try:
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
        rendered = str(render(source, context)).strip().lower()
        return rendered not in ("", "false", "0", "nil", "null")
    return str(render("{% if " + source + " %}true{% endif %}", context)) == "true"

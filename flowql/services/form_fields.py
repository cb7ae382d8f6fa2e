"""A form's field definitions, and checking submitted data against them."""

from __future__ import annotations

import math
import re
from datetime import date
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from flowql.errors import ValidationFailed


class FieldType(StrEnum):
    TEXT = "text"
    TEXTAREA = "textarea"
    EMAIL = "email"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    SELECT = "select"
    DATE = "date"
    URL = "url"
    PHONE = "phone"


FIELD_TYPES = frozenset(t.value for t in FieldType)
MAX_FIELDS = 200
MAX_OPTIONS = 500
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,99}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
PHONE_PATTERN = re.compile(r"^\+?[0-9 ().\-/]{5,30}$")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TEXT_LIMITS = {FieldType.TEXTAREA: 20000}
DEFAULT_TEXT_LIMIT = 2000


def check_fields(fields: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Normalised field definitions: {name, type, required, label, options}."""
    if len(fields) > MAX_FIELDS:
        raise ValidationFailed.one("fields", f"at most {MAX_FIELDS} fields")
    problems: dict[str, str] = {}
    seen: set[str] = set()
    checked = []
    for index, spec in enumerate(fields):
        at = f"fields.{index}"
        name = str(spec.get("name") or "")
        if not NAME_PATTERN.match(name):
            problems[f"{at}.name"] = "must start with a letter or '_' and use only A-Z 0-9 _ -"
        elif name in seen:
            problems[f"{at}.name"] = "duplicate field name"
        seen.add(name)
        kind = str(spec.get("type") or "")
        if kind not in FIELD_TYPES:
            problems[f"{at}.type"] = f"must be one of: {', '.join(FieldType)}"
        label = spec.get("label")
        if label is not None and len(str(label)) > 200:
            problems[f"{at}.label"] = "must be at most 200 characters"
        options = spec.get("options")
        if options is not None and not isinstance(options, list):
            problems[f"{at}.options"] = "must be a list"
            options = None
        if kind == FieldType.SELECT:
            if not options:
                problems[f"{at}.options"] = "a select field needs options"
            elif len(options) > MAX_OPTIONS or len(set(options)) != len(options):
                problems[f"{at}.options"] = f"at most {MAX_OPTIONS} distinct options"
            elif any(not str(o).strip() or len(str(o)) > 200 for o in options):
                problems[f"{at}.options"] = "options must be 1-200 characters"
        elif options:
            problems[f"{at}.options"] = "only select fields have options"
        checked.append(
            {
                "name": name,
                "type": kind,
                "required": bool(spec.get("required", False)),
                "label": None if label is None else str(label),
                "options": [str(o) for o in options]
                if kind == FieldType.SELECT and options
                else None,
            }
        )
    if problems:
        raise ValidationFailed(problems)
    return checked


def check_submission(fields: list[dict[str, Any]], data: Any) -> dict[str, Any]:
    """`data` if it fits the fields: required ones given, values of the right type, no strays."""
    if not isinstance(data, dict):
        raise ValidationFailed.one("data", "must be an object")
    by_name = {f["name"]: f for f in fields}
    problems = {f"data.{key}": "unknown field" for key in data if key not in by_name}
    cleaned: dict[str, Any] = {}
    for name, spec in by_name.items():
        value = data.get(name)
        if value is None or value == "":
            if spec.get("required"):
                problems[f"data.{name}"] = "required"
            continue
        problem = _value_problem(spec, value)
        if problem:
            problems[f"data.{name}"] = problem
        else:
            cleaned[name] = value
    if problems:
        raise ValidationFailed(problems)
    return cleaned


def _value_problem(spec: dict[str, Any], value: Any) -> str | None:
    kind = FieldType(spec["type"])
    if kind is FieldType.BOOLEAN:
        return None if isinstance(value, bool) else "must be true or false"
    if kind is FieldType.INTEGER:
        return (
            None if isinstance(value, int) and not isinstance(value, bool) else "must be an integer"
        )
    if kind is FieldType.NUMBER:
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if is_number and math.isfinite(value) else "must be a number"
    if not isinstance(value, str):
        return "must be a string"
    text = value.strip()
    if len(text) > TEXT_LIMITS.get(kind, DEFAULT_TEXT_LIMIT):
        return f"must be at most {TEXT_LIMITS.get(kind, DEFAULT_TEXT_LIMIT)} characters"
    if kind is FieldType.SELECT and text not in (spec.get("options") or []):
        return f"must be one of: {', '.join(spec.get('options') or [])}"
    if kind is FieldType.EMAIL and not EMAIL_PATTERN.match(text):
        return "not a valid email address"
    if kind is FieldType.PHONE and (
        not PHONE_PATTERN.match(text) or sum(c.isdigit() for c in text) < 5
    ):
        return "not a valid phone number"
    if kind is FieldType.URL:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "not a valid http(s) URL"
    if kind is FieldType.DATE:
        try:
            date.fromisoformat(text)
        except ValueError:
            return "not a valid date (YYYY-MM-DD)"
        if not DATE_PATTERN.match(text):
            return "not a valid date (YYYY-MM-DD)"
    return None

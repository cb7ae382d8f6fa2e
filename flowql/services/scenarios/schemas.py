"""LetsFlow's simplified JSON Schema: shorthands in, plain JSON Schema (2020-12) out.

`name: string` is `{"type": "string"}`; a string starting with `http://`, `https://` or `#` is a
`$ref`; a missing `type` is implied by `properties`, `items`, `const`, `enum`, `default`,
`format`; `additionalProperties` defaults to false where properties are declared (LetsFlow's
rule); a property marked `!required` (or `"required": true`) joins its parent's `required`;
`nullable: true` (OpenAPI style, used by LetsFlow's tutorials) admits null.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from flowql.services.scenarios.expressions import canonical_json, is_fn

REQUIRED_MARK = "!required"
REF_PREFIXES = ("http://", "https://", "#")
_OBJECT_HINTS = ("properties", "patternProperties", "additionalProperties", "required")
_NO_IMPLIED_TYPE = ("$ref", "oneOf", "anyOf", "allOf", "not", "if")
_SUBSCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LISTS = ("oneOf", "anyOf", "allOf", "prefixItems")
_SUBSCHEMA_SINGLE = ("not", "if", "then", "else", "contains", "propertyNames")


class SchemaProblem(ValueError):
    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


def infer_type(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {}


def value_type(values: list[Any]) -> dict[str, Any]:
    """The JSON Schema type shared by all of `values` (integers widen to `number`), if any."""
    types = {infer_type(v).get("type") for v in values}
    if types == {"integer", "number"}:
        return {"type": "number"}
    if len(types) == 1 and None not in types:
        return {"type": types.pop()}
    return {}


def expand_schema(value: Any, path: str = "") -> dict[str, Any]:
    """One shorthand level: `string` -> `{"type": "string"}`, a URL -> `{"$ref": url}`."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"$ref": value} if value.startswith(REF_PREFIXES) else {"type": value}
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, bool):
        raise SchemaProblem(path, "boolean schemas are not supported; use {} or {not: {}}")
    raise SchemaProblem(path, "must be a schema (an object or a type name)")


def _implied_type(schema: dict[str, Any]) -> dict[str, Any]:
    if "type" in schema or any(k in schema for k in _NO_IMPLIED_TYPE):
        return {}
    if any(k in schema for k in _OBJECT_HINTS):
        return {"type": "object"}
    if "items" in schema:
        return {"type": "array"}
    if "const" in schema:
        return infer_type(schema["const"])
    if isinstance(schema.get("enum"), list):
        return value_type(schema["enum"])
    if "default" in schema and schema["default"] is not None:
        return infer_type(schema["default"])
    if "format" in schema or "pattern" in schema:
        return {"type": "string"}
    return {}


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]} if kind != "null" else schema
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def normalize_schema(value: Any, path: str = "") -> dict[str, Any]:
    """Shorthand schema -> plain JSON Schema. Idempotent: a normalised schema stays the same."""
    if is_fn(value):
        return dict(value)  # evaluated when the process instantiates it
    schema = expand_schema(value, path)
    if schema.pop(REQUIRED_MARK, None) is not None:
        raise SchemaProblem(path, "`!required` marks a property of an object; it has none here")
    nullable = schema.pop("nullable", False) is True
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            schema[key] = _normalize_map(schema, key, f"{path}.{key}")
    for key in _SUBSCHEMA_LISTS:
        if isinstance(schema.get(key), list):
            schema[key] = [
                normalize_schema(v, f"{path}.{key}.{i}") for i, v in enumerate(schema[key])
            ]
    for key in _SUBSCHEMA_SINGLE:
        if key in schema and not isinstance(schema[key], bool):
            schema[key] = normalize_schema(schema[key], f"{path}.{key}")
    items = schema.get("items")
    if items is not None and not isinstance(items, bool):
        schema["items"] = normalize_schema(items, f"{path}.items")
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        schema["additionalProperties"] = normalize_schema(extra, f"{path}.additionalProperties")
    schema = {**_implied_type(schema), **schema}
    declares = "properties" in schema or "patternProperties" in schema
    if declares and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return _allow_null(schema) if nullable else schema


def _normalize_map(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    normalized: dict[str, Any] = {}
    required = list(parent.get("required") or []) if key == "properties" else []
    for name, sub in parent[key].items():
        marked = isinstance(sub, dict) and (
            sub.get(REQUIRED_MARK) is True or sub.get("required") is True
        )
        if marked:
            sub = {k: v for k, v in sub.items() if k != REQUIRED_MARK and k != "required"}
            if name not in required:
                required.append(name)
        normalized[name] = normalize_schema(sub, f"{path}.{name}")
    if required and isinstance(parent.get("required", []), list):
        parent["required"] = required
    return normalized


def external_refs(schema: Any, path: str = "") -> list[str]:
    """Paths of `$ref`s that leave the document (flowql does not fetch schemas)."""
    found: list[str] = []
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            found.append(f"{path}.$ref" if path else "$ref")
        for key, value in schema.items():
            if key != "$ref":
                found.extend(external_refs(value, f"{path}.{key}" if path else key))
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found.extend(external_refs(value, f"{path}.{index}"))
    return found


def check_schema(schema: dict[str, Any]) -> str | None:
    """None when `schema` is valid JSON Schema (2020-12), else what is wrong with it."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = ".".join(str(p) for p in exc.path)
        return f"{where}: {exc.message}" if where else exc.message
    return None


@functools.lru_cache(maxsize=512)
def _validator(text: str) -> Draft202012Validator:
    return Draft202012Validator(
        json.loads(text), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    """What is wrong with `value` under `schema` (empty when it is valid)."""
    if not schema:
        return []
    validator = _validator(canonical_json(schema))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    problems = []
    for error in errors:
        where = ".".join(str(p) for p in error.absolute_path)
        problems.append(f"{where}: {error.message}" if where else error.message)
    return problems


def property_defaults(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        key: sub["default"]
        for key, sub in properties.items()
        if isinstance(sub, dict) and "default" in sub
    }

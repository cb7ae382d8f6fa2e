"""Reading and writing scenarios as YAML with LetsFlow's tags.

YAML is read with YAML 1.2 core semantics, as LetsFlow does (`on: talk` is a key named `on`,
not the boolean YAML 1.1 makes of it); anchors and merge keys (`<<: *base`) work; duplicate
keys and unknown tags are refused by name. Tags become their JSON forms:

- data functions: `!ref expr` -> `{"<ref>": expr}`, `!tpl` -> `{"<tpl>": ...}`,
  `!select {...}` -> `{"<select>": {...}}`;
- schema shorthands: `!required`, `!default`, `!format`, `!pattern`, `!const`, `!enum`, which
  become plain JSON Schema (`!required` marks the property for its parent's `required`).

What a document may cost is bounded before it is built: libyaml reads the events, the composer
stops past `MAX_DEPTH` levels or `MAX_NODES` nodes, and the node graph is measured as aliases
would expand it (`MAX_NODES` again, no recursive aliases), so a few hundred bytes of anchors
cannot become megabytes of stored scenario. `.nan` and `.inf` are refused: JSON has neither.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import ScalarEvent
from yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode
from yaml.representer import SafeRepresenter
from yaml.resolver import BaseResolver

from flowql.services.scenarios.expressions import FUNCTION_KEYS
from flowql.services.scenarios.schemas import REQUIRED_MARK, expand_schema, infer_type, value_type

MAX_DEPTH = 64
MAX_NODES = 20_000
MAX_TEXT = 512 * 1024


class LoadError(ValueError):
    """The text is not a scenario document; `path` names where, when known."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class _Resolver(BaseResolver):
    """YAML 1.2 core schema: only true/false are booleans; no timestamps, no sexagesimals."""


_Resolver.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
    ("merge", r"^(?:<<)$", "<"),
):
    _Resolver.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(_pattern), list(_first))


class _Constructor(SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:
        text = str(self.construct_scalar(node))
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value: float = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConstructorError(
                None, None, f"{node.value} is not a JSON number", node.start_mark
            )
        return value

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, list | dict):
                raise ConstructorError(None, None, "a key must be a scalar", key_node.start_mark)
            if key in seen:
                raise ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def _value(self, node: Node) -> Any:
        if isinstance(node, MappingNode):
            self.flatten_mapping(node)
            return self.construct_mapping(node, deep=True)
        if isinstance(node, SequenceNode):
            return self.construct_sequence(node, deep=True)
        assert isinstance(node, ScalarNode)
        text = self.construct_scalar(node)
        plain = not node.style  # libyaml marks a plain scalar "", PyYAML None
        if text == "" and plain:
            return None
        resolved = _Resolver().resolve(ScalarNode, text, (plain, not plain))  # type: ignore[no-untyped-call]
        return self.construct_object(ScalarNode(resolved, text), deep=True)


def _function(kind: str) -> Any:
    def construct(loader: _Constructor, node: Node) -> dict[str, Any]:
        value = loader._value(node)
        if isinstance(node, ScalarNode):
            value = str(loader.construct_scalar(node))
        return {f"<{kind}>": value}

    return construct


def _schema_tag(build: Any) -> Any:
    def construct(loader: _Constructor, node: Node) -> dict[str, Any]:
        return dict(build(loader._value(node)))

    return construct


def _required(value: Any) -> dict[str, Any]:
    schema = {} if value is None else expand_schema(value)
    return {**schema, REQUIRED_MARK: True}


_Constructor.add_constructor("tag:yaml.org,2002:int", _Constructor.construct_yaml_int)  # type: ignore[type-var]
_Constructor.add_constructor("tag:yaml.org,2002:float", _Constructor.construct_yaml_float)  # type: ignore[type-var]
for _kind in ("ref", "tpl", "select"):
    _Constructor.add_constructor(f"!{_kind}", _function(_kind))
_Constructor.add_constructor("!required", _schema_tag(_required))
_Constructor.add_constructor("!default", _schema_tag(lambda v: {**infer_type(v), "default": v}))
_Constructor.add_constructor("!format", _schema_tag(lambda v: {"type": "string", "format": v}))
_Constructor.add_constructor("!pattern", _schema_tag(lambda v: {"type": "string", "pattern": v}))
_Constructor.add_constructor("!const", _schema_tag(lambda v: {**infer_type(v), "const": v}))
_Constructor.add_constructor(
    "!enum",
    _schema_tag(lambda v: {**value_type(v if isinstance(v, list) else [v]), "enum": v}),
)


class _BoundedComposer(Composer):
    """PyYAML's composer, counting: nesting and nodes are refused past their limits while the
    events arrive, before anything is built from them."""

    def __init__(self) -> None:
        Composer.__init__(self)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LoadError(f"more than {MAX_NODES} nodes")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise LoadError(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _Loader(_BoundedComposer, CParser, _Constructor, _Resolver):
    """libyaml's parser (events at C speed, no Python recursion) under the bounded composer."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        _BoundedComposer.__init__(self)
        _Constructor.__init__(self)
        _Resolver.__init__(self)


def _expanded_size(root: Node) -> int:
    """Nodes the document holds once aliases are expanded (memoised per node, so it costs the
    size of the graph); refuses recursive aliases and expansions past the limits."""
    sizes: dict[int, tuple[int, int]] = {}
    active: set[int] = set()

    def measure(node: Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in active:
            raise LoadError("an alias refers to the node that contains it")
        if key not in sizes:
            if not isinstance(node, CollectionNode):
                sizes[key] = (1, 1)
            else:
                active.add(key)
                children: list[Node] = []
                for item in node.value:
                    children.extend(item if isinstance(item, tuple) else (item,))
                size, height = 1, 1
                for child in children:
                    child_size, child_height = measure(child, depth + 1)
                    size += child_size
                    height = max(height, 1 + child_height)
                    if size > MAX_NODES:
                        raise LoadError(f"aliases expand to more than {MAX_NODES} nodes")
                active.discard(key)
                sizes[key] = (size, height)
        size, height = sizes[key]
        if depth + height > MAX_DEPTH:
            raise LoadError(f"aliases expand deeper than {MAX_DEPTH} levels")
        return size, height

    return measure(root, 0)[0]


def _json_keys(value: Any) -> Any:
    """YAML allows non-string keys (`true:` in a `!select`); JSON, and LetsFlow, do not."""
    if isinstance(value, dict):
        return {_key(k): _json_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_keys(v) for v in value]
    return value


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(key)


def parse_yaml(text: str) -> Any:
    """One YAML document -> JSON-compatible data (tags turned into their JSON forms)."""
    if not isinstance(text, str) or not text.strip():
        raise LoadError("must be a non-empty YAML document")
    if len(text) > MAX_TEXT:
        raise LoadError(f"larger than {MAX_TEXT} characters")
    try:
        loader = _Loader(text)
    except UnicodeEncodeError:
        raise LoadError("not valid Unicode (a lone surrogate)") from None
    try:
        node = loader.get_single_node()
        if node is None:
            raise LoadError("must be a non-empty YAML document")
        _expanded_size(node)
        data = loader.construct_document(node)
    except ConstructorError as exc:
        problem = exc.problem or "invalid YAML"
        if "could not determine a constructor for the tag" in problem:
            tag = problem.rsplit(" ", 1)[-1].strip("'")
            problem = f"unsupported tag {tag}"
        raise LoadError(_with_line(problem, exc.problem_mark)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LoadError(_with_line(str(getattr(exc, "problem", exc)), mark)) from None
    finally:
        loader.dispose()
    return _json_keys(data)


def _with_line(problem: str, mark: Any) -> str:
    if mark is None:
        return problem
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"


# -- writing ------------------------------------------------------------------------------------


class _Representer(SafeRepresenter):
    def represent_dict(self, data: Any) -> Any:
        if isinstance(data, dict) and len(data) == 1:
            key, value = next(iter(data.items()))
            if key in FUNCTION_KEYS:
                tag = "!" + key[1:-1]
                if isinstance(value, str):
                    return self.represent_scalar(tag, value, style="|" if "\n" in value else None)
                return self.represent_mapping(tag, value)
        return super().represent_dict(data)

    def represent_str(self, data: str) -> Any:
        if "\n" in data:
            return self.represent_scalar("tag:yaml.org,2002:str", data, style="|")
        return super().represent_str(data)


_Representer.add_representer(dict, _Representer.represent_dict)
_Representer.add_representer(str, _Representer.represent_str)


class _Dumper(yaml.emitter.Emitter, yaml.serializer.Serializer, _Representer, _Resolver):
    def __init__(self, stream: Any, **kwargs: Any) -> None:
        yaml.emitter.Emitter.__init__(
            self, stream, allow_unicode=True, width=kwargs.get("width", 100)
        )
        yaml.serializer.Serializer.__init__(self)
        _Representer.__init__(self, default_flow_style=False, sort_keys=False)
        _Resolver.__init__(self)

    def ignore_aliases(self, data: Any) -> bool:
        return True

    def choose_scalar_style(self) -> str:
        """`!ref actors.client` rather than `!ref 'actors.client'` where that is valid YAML."""
        event = self.event
        if isinstance(event, ScalarEvent) and event.tag in ("!ref", "!tpl") and not event.style:
            if self.analysis is None:
                self.analysis = self.analyze_scalar(event.value)
            plain = self.analysis.allow_block_plain and not self.analysis.multiline
            if plain and not self.flow_level and not self.analysis.empty:
                return ""
        return str(super().choose_scalar_style())


def dump_yaml(data: Any) -> str:
    """A scenario (JSON form) as YAML, data functions written as `!ref`/`!tpl`/`!select`."""
    return yaml.dump(data, Dumper=_Dumper)

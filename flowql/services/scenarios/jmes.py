"""LetsFlow's JMESPath (`@letsflow/jmespath`) on top of the `jmespath` package.

LetsFlow extends the specification with number literals (`length(@) >= 2`), arithmetic
(`length(@) + 1`), root access (`$.id`) and a set of pure functions (`if`, `range`,
`to_object`, `zip`, `json_serialize`, `json_parse`, `sha256`, `sha512`, `uuid`, `regex_*`).
Every function is deterministic, because a process is replayed from its events: `uuid()` needs
a name (a v5 UUID); a random one is refused.
"""

from __future__ import annotations

import hashlib
import json
import operator
import re
import uuid
from collections.abc import Callable
from numbers import Number
from typing import Any

from jmespath import ast as jp_ast
from jmespath import exceptions as jp_errors
from jmespath import functions as jp_functions
from jmespath import lexer as jp_lexer
from jmespath import parser as jp_parser
from jmespath import visitor as jp_visitor

from flowql import jsonsafe


class ExpressionError(ValueError):
    """An expression that does not parse, or fails while it is evaluated."""


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace (what hashes and ids are taken over)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# -- the language: number literals, arithmetic, `$` --------------------------------------------

_OPERAND_END = {
    "unquoted_identifier",
    "quoted_identifier",
    "literal",
    "number",
    "rparen",
    "rbracket",
    "rbrace",
    "current",
    "root",
}


class _Lexer(jp_lexer.Lexer):  # type: ignore[misc]
    """The standard lexer plus `+ - / // %` operators, `$`, and decimal numbers."""

    OPERATORS = {"+": "plus", "%": "modulo", "$": "root"}

    def tokenize(self, expression: str) -> Any:
        self._initialize_for_expression(expression)
        self._previous: str | None = None
        while self._current is not None:
            token = self._token()
            if token is not None:
                self._previous = token["type"]
                yield token
        yield {"type": "eof", "value": "", "start": self._length, "end": self._length}

    def _simple(self, kind: str, value: str) -> dict[str, Any]:
        start = self._position
        for _ in value:
            self._next()
        return {"type": kind, "value": value, "start": start, "end": start + len(value)}

    def _token(self) -> dict[str, Any] | None:
        char = self._current
        if char in self.WHITESPACE:
            self._next()
            return None
        if char in self.SIMPLE_TOKENS:
            return self._simple(self.SIMPLE_TOKENS[char], char)
        if char in self.OPERATORS:
            return self._simple(self.OPERATORS[char], char)
        if char == "/":
            return self._simple("div", "//") if self._peek("/") else self._simple("divide", "/")
        if char == "-" and (previous_is_operand(self._previous) or not self._peek_digit()):
            return self._simple("minus", "-")
        if char in self.VALID_NUMBER or char == "-":
            return self._number()
        if char in self.START_IDENTIFIER:
            start = self._position
            buff = char
            while self._next() in self.VALID_IDENTIFIER:
                buff += self._current
            return {
                "type": "unquoted_identifier",
                "value": buff,
                "start": start,
                "end": start + len(buff),
            }
        return self._standard(char)

    def _standard(self, char: str) -> dict[str, Any]:
        if char == "[":
            if self._peek("]"):
                return self._simple("flatten", "[]")
            if self._peek("?"):
                return self._simple("filter", "[?")
            return self._simple("lbracket", "[")
        if char == "'":
            token: dict[str, Any] = self._consume_raw_string_literal()
            return token
        if char == "|":
            return self._simple("or", "||") if self._peek("|") else self._simple("pipe", "|")
        if char == "&":
            return self._simple("and", "&&") if self._peek("&") else self._simple("expref", "&")
        if char == "`":
            token = self._consume_literal()
            return token
        if char == '"':
            token = self._consume_quoted_identifier()
            return token
        if char == "<":
            return self._simple("lte", "<=") if self._peek("=") else self._simple("lt", "<")
        if char == ">":
            return self._simple("gte", ">=") if self._peek("=") else self._simple("gt", ">")
        if char == "!":
            return self._simple("ne", "!=") if self._peek("=") else self._simple("not", "!")
        if char == "=" and self._peek("="):
            return self._simple("eq", "==")
        raise jp_errors.LexerError(
            lexer_position=self._position, lexer_value=char, message=f"Unknown token {char}"
        )

    def _consume_raw_string_literal(self) -> dict[str, Any]:
        """`'...'` where `\\'` is a quote and `\\\\` a backslash (JEP 12)."""
        start = self._position
        lexeme = self._consume_until("'")
        value = re.sub(r"\\([\\'])", r"\1", lexeme)
        return {"type": "literal", "value": value, "start": start, "end": self._position - start}

    def _peek(self, char: str) -> bool:
        position = self._position + 1
        return bool(position < self._length and self._chars[position] == char)

    def _peek_digit(self) -> bool:
        position = self._position + 1
        return position < self._length and self._chars[position] in self.VALID_NUMBER

    def _number(self) -> dict[str, Any]:
        start = self._position
        buff = self._consume_number()
        if self._current == "." and self._peek_digit():
            self._next()
            buff += "." + self._consume_number()
            value: int | float = float(buff)
        else:
            value = int(buff)
        return {"type": "number", "value": value, "start": start, "end": start + len(buff)}


def previous_is_operand(kind: str | None) -> bool:
    """After an operand, `-` subtracts; elsewhere it starts a negative number or negates."""
    return kind in _OPERAND_END


class _Parser(jp_parser.Parser):  # type: ignore[misc]
    _CACHE: dict[str, Any] = {}
    BINDING_POWER = {
        **jp_parser.Parser.BINDING_POWER,
        "root": 0,
        "plus": 6,
        "minus": 6,
        "divide": 7,
        "div": 7,
        "modulo": 7,
    }

    def _parse(self, expression: str) -> Any:
        self.tokenizer = _Lexer().tokenize(expression)
        self._tokens = list(self.tokenizer)
        self._index = 0
        parsed = self._expression(binding_power=0)
        if self._current_token() != "eof":
            t = self._lookahead_token(0)
            raise jp_errors.ParseError(
                t["start"], t["value"], t["type"], f"Unexpected token: {t['value']}"
            )
        return jp_parser.ParsedResult(expression, parsed)

    def _token_nud_number(self, token: dict[str, Any]) -> Any:
        return jp_ast.literal(token["value"])

    def _token_nud_root(self, token: dict[str, Any]) -> Any:
        return {"type": "root", "children": []}

    def _token_nud_minus(self, token: dict[str, Any]) -> Any:
        # Binds tighter than every operator but looser than `.`: `-a.b` is `-(a.b)`.
        operand = self._expression(self.BINDING_POWER["dot"] - 1)
        return {"type": "negate", "children": [operand]}

    def _arith(self, kind: str, left: Any, right_power: int) -> Any:
        right = self._expression(right_power)
        return {"type": "arithmetic", "value": kind, "children": [left, right]}

    def _token_led_plus(self, left: Any) -> Any:
        return self._arith("plus", left, 6)

    def _token_led_minus(self, left: Any) -> Any:
        return self._arith("minus", left, 6)

    def _token_led_star(self, left: Any) -> Any:
        return self._arith("multiply", left, 20)

    def _token_led_divide(self, left: Any) -> Any:
        return self._arith("divide", left, 20)

    def _token_led_div(self, left: Any) -> Any:
        return self._arith("div", left, 20)

    def _token_led_modulo(self, left: Any) -> Any:
        return self._arith("modulo", left, 20)


def _number(value: Any) -> bool:
    return isinstance(value, Number) and not isinstance(value, bool)


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "plus": operator.add,
    "minus": operator.sub,
    "multiply": operator.mul,
    "divide": operator.truediv,
    "div": operator.floordiv,
    "modulo": operator.mod,
}


class _Interpreter(jp_visitor.TreeInterpreter):  # type: ignore[misc]
    def __init__(self, root: Any) -> None:
        super().__init__(jp_visitor.Options(custom_functions=_FUNCTIONS))
        self.root = root

    def visit_root(self, node: Any, value: Any) -> Any:
        return self.root

    def visit_negate(self, node: Any, value: Any) -> Any:
        operand = self.visit(node["children"][0], value)
        return -operand if _number(operand) else None

    def visit_arithmetic(self, node: Any, value: Any) -> Any:
        left = self.visit(node["children"][0], value)
        right = self.visit(node["children"][1], value)
        kind = node["value"]
        if kind == "plus" and isinstance(left, str) and isinstance(right, str):
            return left + right
        if not (_number(left) and _number(right)):
            return None
        try:
            result = _ARITHMETIC[kind](left, right)
        except ZeroDivisionError:
            return None
        if isinstance(result, float) and result.is_integer() and kind != "divide":
            return int(result)
        return result


# -- functions ----------------------------------------------------------------------------------

_NIL = uuid.UUID(int=0)
_OPTIONAL_FROM = {"if": 2, "range": 1, "uuid": 0}


def _js_regex(spec: str) -> tuple[re.Pattern[str], bool]:
    """`/pattern/flags` (JavaScript style) -> compiled pattern and whether `g` was given."""
    match = re.fullmatch(r"/(.*)/([a-z]*)", spec, flags=re.S)
    pattern, flags = (match.group(1), match.group(2)) if match else (spec, "")
    options = 0
    for flag, value in (("i", re.I), ("m", re.M), ("s", re.S)):
        if flag in flags:
            options |= value
    try:
        return re.compile(pattern, options), "g" in flags
    except re.error as exc:
        raise ExpressionError(f"invalid regular expression {spec!r}: {exc}") from None


def _js_replacement(replacement: str) -> str:
    replacement = replacement.replace("\\", "\\\\")
    replacement = re.sub(r"\$(\d+)", r"\\g<\1>", replacement)
    return replacement.replace("$&", r"\g<0>")


class _Functions(jp_functions.Functions):  # type: ignore[misc]
    def _validate_arguments(self, args: list[Any], signature: Any, name: str) -> Any:
        minimum = _OPTIONAL_FROM.get(name)
        if minimum is not None and minimum <= len(args) <= len(signature):
            return self._type_check(args, signature[: len(args)], name)
        return super()._validate_arguments(args, signature, name)

    @jp_functions.signature({"types": []}, {"types": []}, {"types": []})
    def _func_if(self, condition: Any, then: Any, otherwise: Any = None) -> Any:
        falsy = condition in ("", [], {}, None, False) and not _number(condition)
        return otherwise if falsy else then

    @jp_functions.signature(
        {"types": ["number"]}, {"types": ["number"]}, {"types": ["string", "null"]}
    )
    def _func_range(self, start: Any, end: Any = None, prefix: str | None = None) -> list[Any]:
        first, last = (0, int(start)) if end is None else (int(start), int(end))
        numbers = range(first, last)
        return [f"{prefix}{n}" for n in numbers] if prefix is not None else list(numbers)

    @jp_functions.signature({"types": ["array"]})
    def _func_to_object(self, entries: list[Any]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str):
                raise ExpressionError("to_object() needs [key, value] pairs with string keys")
            result[entry[0]] = entry[1]
        return result

    @jp_functions.signature({"types": ["array"]})
    def _func_from_items(self, entries: list[Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._func_to_object(entries)
        return result

    @jp_functions.signature({"types": ["object"]})
    def _func_items(self, value: dict[str, Any]) -> list[list[Any]]:
        return [[key, item] for key, item in value.items()]

    @jp_functions.signature({"types": ["array"], "variadic": True})
    def _func_zip(self, *arrays: list[Any]) -> list[list[Any]]:
        return [list(items) for items in zip(*arrays, strict=False)]

    @jp_functions.signature({"types": []})
    def _func_json_serialize(self, value: Any) -> str:
        return canonical_json(value)

    @jp_functions.signature({"types": ["string"]})
    def _func_json_parse(self, value: str) -> Any:
        try:
            return jsonsafe.loads(value, max_bytes=None)
        except ValueError as exc:
            raise ExpressionError(f"json_parse(): {exc}") from None

    @jp_functions.signature({"types": ["string"]})
    def _func_sha256(self, value: str) -> str:
        return hashlib.sha256(value.encode()).hexdigest()

    @jp_functions.signature({"types": ["string"]})
    def _func_sha512(self, value: str) -> str:
        return hashlib.sha512(value.encode()).hexdigest()

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_uuid(self, name: str | None = None, namespace: str | None = None) -> str:
        if name is None:
            raise ExpressionError(
                "uuid() without a name is random; processes are replayed, give uuid(name, ns)"
            )
        try:
            space = uuid.UUID(namespace) if namespace is not None else _NIL
        except ValueError:
            raise ExpressionError(f"uuid(): namespace {namespace!r} is not a UUID") from None
        return str(uuid.uuid5(space, name))

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_regex_test(self, regex: str, value: str) -> bool:
        return _js_regex(regex)[0].search(value) is not None

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_regex_match(self, regex: str, value: str) -> list[str] | None:
        pattern, everywhere = _js_regex(regex)
        if everywhere:
            return [m.group(0) for m in pattern.finditer(value)] or None
        match = pattern.search(value)
        return None if match is None else [match.group(0), *match.groups()]

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_regex_match_all(self, regex: str, value: str) -> list[list[str]]:
        pattern = _js_regex(regex)[0]
        return [[m.group(0), *m.groups()] for m in pattern.finditer(value)]

    @jp_functions.signature({"types": ["string"]}, {"types": ["string"]}, {"types": ["string"]})
    def _func_regex_replace(self, regex: str, replacement: str, value: str) -> str:
        pattern, everywhere = _js_regex(regex)
        return pattern.sub(_js_replacement(replacement), value, count=0 if everywhere else 1)

    @jp_functions.signature({"types": ["string"]})
    def _func_lower(self, value: str) -> str:
        return value.lower()

    @jp_functions.signature({"types": ["string"]})
    def _func_upper(self, value: str) -> str:
        return value.upper()

    @jp_functions.signature({"types": ["string"]})
    def _func_trim(self, value: str) -> str:
        return value.strip()


_FUNCTIONS = _Functions()


def compile_expression(expression: str) -> Any:
    """Parse (and cache) a LetsFlow JMESPath expression; ExpressionError if it does not parse."""
    if not isinstance(expression, str) or not expression.strip():
        raise ExpressionError("an expression must be a non-empty string")
    try:
        return _Parser().parse(expression)
    except jp_errors.JMESPathError as exc:
        raise ExpressionError(f"invalid expression {expression!r}: {exc}") from None


def search(expression: str, data: Any) -> Any:
    parsed = compile_expression(expression)
    try:
        return _Interpreter(data).visit(parsed.parsed, data)
    except ExpressionError:
        raise
    except (jp_errors.JMESPathError, TypeError, ValueError, OverflowError) as exc:
        raise ExpressionError(f"{expression!r}: {exc}") from None

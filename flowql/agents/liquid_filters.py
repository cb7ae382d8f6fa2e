"""Huginn's Liquid: the filters and tags Huginn and ActiveWorkflow users write in agent options
(Huginn's app/concerns/liquid_interpolatable.rb), for python-liquid.

Filters: uri_escape, to_uri, unescape, to_xpath, regex_replace, regex_replace_first,
regex_extract, json, as_object, md5, sha1, sha256, hmac_sha1, hmac_sha256, hex_encode,
hex_decode, rebase_hrefs. Tags: `{% credential name %}` (a workspace credential the engine
resolved for this run, see `CREDENTIALS_KEY`) and `{% line_break %}`.

Patterns are Ruby regular expressions as Huginn users write them; the common differences from
Python's (`\\z`, `\\h`, `(?<name>...)` already matches) are translated.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote_plus, urljoin, urlsplit

from liquid import Environment, ast
from liquid.exceptions import FilterArgumentError, LiquidError, LiquidSyntaxError
from liquid.tag import Tag
from liquid.token import TOKEN_EOF, TOKEN_TAG

if TYPE_CHECKING:
    from liquid.context import RenderContext
    from liquid.stream import TokenStream
    from liquid.token import Token

# Where the engine puts the credentials a run's templates name (a key no template can spell).
CREDENTIALS_KEY = "\x00credentials"
# `{% credential name %}` in a template: the names an engine must resolve before rendering.
CREDENTIAL_TAG = re.compile(r"\{%-?\s*credential\s+([^\s%]+)\s*-?%\}")


class CredentialMissing(LiquidError):
    pass


def credential_names(value: Any) -> list[str]:
    """Every credential a template inside `value` names, in order, once each."""
    found: list[str] = []
    if isinstance(value, str):
        found.extend(CREDENTIAL_TAG.findall(value))
    elif isinstance(value, Mapping):
        for item in value.values():
            found.extend(credential_names(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(credential_names(item))
    return list(dict.fromkeys(found))


# -- filters -----------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def uri_escape(value: Any) -> str:
    """CGI.escape: percent-encoding with spaces as `+`."""
    return quote_plus(_text(value), safe="*")


class Uri:
    """What `to_uri` gives: renders as the URL; `.scheme`, `.host`, `.port`, `.path`, `.query`,
    `.fragment`, `.userinfo` as Huginn's URI object has them."""

    def __init__(self, url: str) -> None:
        self.url = url
        parts = urlsplit(url)
        port = parts.port
        if port is None:
            port = {"http": 80, "https": 443}.get(parts.scheme)
        userinfo = parts.netloc.rpartition("@")[0] or None
        self.fields: dict[str, Any] = {
            "scheme": parts.scheme or None,
            "userinfo": userinfo,
            "host": parts.hostname,
            "port": port,
            "path": parts.path,
            "query": parts.query or None,
            "fragment": parts.fragment or None,
        }

    def __getitem__(self, key: str) -> Any:
        return self.fields[key]

    def __str__(self) -> str:
        return self.url

    def __liquid__(self) -> str:
        return self.url


def to_uri(value: Any, base: Any = None) -> Uri | None:
    text = str(value) if isinstance(value, Uri) else _text(value)
    try:
        return Uri(urljoin(str(base), text) if base not in (None, "") else text)
    except ValueError:
        return None


def unescape(value: Any) -> str:
    """HTML entities back to text (`&amp;` -> `&`)."""
    return html.unescape(_text(value))


def to_xpath(value: Any) -> str:
    """A string as an XPath literal (`concat(...)` when it holds both kinds of quote)."""
    text = _text(value)
    parts = re.findall(r"[^\"]+|[^']+", text) or [""]
    quoted = [f"'{p}'" if '"' in p else f'"{p}"' for p in parts]
    return quoted[0] if len(quoted) == 1 else "concat(" + ", ".join(quoted) + ")"


def _ruby_regex(pattern: Any) -> re.Pattern[str]:
    source = _text(pattern).replace("\\z", "\\Z").replace("\\h", "[0-9a-fA-F]")
    source = re.sub(r"\(\?<(?=[A-Za-z_])", "(?P<", source)  # Ruby's named groups
    try:
        return re.compile(source)
    except re.error as exc:
        raise FilterArgumentError(
            f"invalid regular expression {source!r}: {exc}", token=None
        ) from None


_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "s": " "}
_ESCAPES.update({"t": "\t", "v": "\v"})
_REPLACEMENT = re.compile(
    r"\\(?:(\d)|(k<\w+>)|([&`'+\\])|u\{([0-9a-fA-F]+)\}|x([0-9a-fA-F]{2})|(.))", re.S
)


def _replacer(replacement: Any) -> Any:
    """Ruby's replacement text (`\\1`, `\\k<name>`, `\\0`/`\\&`, `\\n`, ...) as a function of a
    match."""
    template = _text(replacement)

    def expand(match: re.Match[str]) -> str:
        def part(piece: re.Match[str]) -> str:
            group, named, special, code, byte, other = piece.groups()
            if group is not None:
                return match.group(int(group)) or "" if int(group) <= (match.re.groups) else ""
            if named is not None:
                return match.group(named[2:-1]) or ""
            if special is not None:
                if special == "&":
                    return match.group(0)
                if special == "`":
                    return match.string[: match.start()]
                if special == "'":
                    return match.string[match.end() :]
                if special == "+":
                    last = match.lastindex
                    return (match.group(last) or "") if last else ""
                return "\\"
            if code is not None:
                return chr(int(code, 16))
            if byte is not None:
                return chr(int(byte, 16))
            return _ESCAPES.get(other, other)

        return _REPLACEMENT.sub(part, template)

    return expand


def regex_replace(value: Any, pattern: Any, replacement: Any = "") -> str:
    return _ruby_regex(pattern).sub(_replacer(replacement), _text(value))


def regex_replace_first(value: Any, pattern: Any, replacement: Any = "") -> str:
    return _ruby_regex(pattern).sub(_replacer(replacement), _text(value), count=1)


def regex_extract(value: Any, pattern: Any, index: Any = 0) -> str | None:
    """The first match's group `index` (a number or a name); nil when nothing matches."""
    match = _ruby_regex(pattern).search(_text(value))
    if match is None:
        return None
    try:
        group = match.group(int(index) if str(index).isdigit() else str(index))
    except (IndexError, ValueError):
        return None
    return group if isinstance(group, str) else None


def to_json(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, Uri):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def as_object(value: Any) -> Any:
    """The value itself, not its text (typed output renders it as such; in text it is JSON)."""
    return value


def _digest(name: str) -> Any:
    def digest(value: Any) -> str:
        return hashlib.new(name, _text(value).encode()).hexdigest()

    digest.__name__ = name
    return digest


def _hmac(name: str) -> Any:
    def signed(value: Any, key: Any) -> str:
        return hmac.new(_text(key).encode(), _text(value).encode(), name).hexdigest()

    signed.__name__ = f"hmac_{name}"
    return signed


def hex_encode(value: Any) -> str:
    return _text(value).encode().hex()


def hex_decode(value: Any) -> str:
    text = _text(value)
    try:
        return bytes.fromhex(text).decode("utf-8", errors="replace")
    except ValueError:
        return text


_HREF = re.compile(r"""(\b(?:href|src)\s*=\s*)(["'])(.*?)\2""", re.I | re.S)


def rebase_hrefs(value: Any, base: Any) -> str:
    """Relative `href`/`src` attributes in an HTML fragment made absolute against `base`."""
    root = _text(base)
    return _HREF.sub(
        lambda m: m.group(1) + m.group(2) + urljoin(root, html.unescape(m.group(3))) + m.group(2),
        _text(value),
    )


FILTERS: dict[str, Any] = {
    "uri_escape": uri_escape,
    "to_uri": to_uri,
    "unescape": unescape,
    "to_xpath": to_xpath,
    "regex_replace": regex_replace,
    "regex_replace_first": regex_replace_first,
    "regex_extract": regex_extract,
    "json": to_json,
    "as_object": as_object,
    "md5": _digest("md5"),
    "sha1": _digest("sha1"),
    "sha256": _digest("sha256"),
    "hmac_sha1": _hmac("sha1"),
    "hmac_sha256": _hmac("sha256"),
    "hex_encode": hex_encode,
    "hex_decode": hex_decode,
    "rebase_hrefs": rebase_hrefs,
}


# -- tags --------------------------------------------------------------------------------------


class CredentialNode(ast.Node):
    __slots__ = ("name",)

    def __init__(self, token: Token, name: str) -> None:
        super().__init__(token)
        self.name = name
        self.blank = False

    def __str__(self) -> str:
        return f"{{% credential {self.name} %}}"

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        store = context.globals.get(CREDENTIALS_KEY)
        if not isinstance(store, Mapping) or self.name not in store:
            raise CredentialMissing(
                f"no credential named {self.name!r} for this run", token=self.token
            )
        return buffer.write(str(store[self.name]))


class CredentialTag(Tag):
    name = "credential"
    block = False
    node_class = CredentialNode

    def parse(self, stream: TokenStream) -> ast.Node:
        token = stream.eat(TOKEN_TAG)
        inner = stream.into_inner(tag=token, eat=False)
        parts: list[str] = []
        while inner.current.kind != TOKEN_EOF:
            parts.append(str(inner.current.value))
            inner.next()
        name = "".join(parts).strip()
        if not name:
            raise LiquidSyntaxError("credential: expected a credential name", token=token)
        return self.node_class(token, name)


class LineBreakNode(ast.Node):
    __slots__ = ()

    def __init__(self, token: Token) -> None:
        super().__init__(token)
        self.blank = False

    def __str__(self) -> str:
        return "{% line_break %}"

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        return buffer.write("\n")


class LineBreakTag(Tag):
    name = "line_break"
    block = False
    node_class = LineBreakNode

    def parse(self, stream: TokenStream) -> ast.Node:
        stream.expect(TOKEN_TAG, value=self.name)
        return self.node_class(stream.current)


def register(env: Environment) -> None:
    """Add Huginn's filters and tags to `env`."""
    for name, function in FILTERS.items():
        env.filters[name] = function
    env.add_tag(CredentialTag)
    env.add_tag(LineBreakTag)

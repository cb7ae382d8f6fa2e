"""Huginn's and ActiveWorkflow's web agents: website (scrape HTML/XML/JSON/text), http_status,
post and rss. Every request goes through the engine's client (`run.http()`) after the engine's
URL check (`run.check_url`), redirects included."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import feedparser
import httpx
from lxml import etree
from lxml import html as lxml_html
from pydantic import Field, field_validator, model_validator

from flowql.agents.base import AgentRun, AgentType, Kind, Outcome, StepFailed
from flowql.agents.huginnlib import (
    WebRequestOptions,
    boolify,
    check_boolish,
    check_events_order,
    check_positive_int,
    decode_body,
    header_variants,
    is_template,
    request_auth,
    request_headers,
    response_bytes,
    response_charset,
    ruby_regex,
    sort_events,
    value_at,
    values_at,
)
from flowql.agents.templating import render
from flowql.errors import DomainError

MAX_REDIRECTS = 10
TIMEOUT_SECONDS = 30.0


async def fetch(
    run: AgentRun,
    url: str,
    options: dict[str, Any],
    method: str = "GET",
    *,
    follow_redirects: bool | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request through the engine's client; each redirect target is checked like the URL."""
    if follow_redirects is None:
        follow_redirects = not boolify(options.get("disable_redirect_follow"))
    headers = {**request_headers(options), **kwargs.pop("headers", {})}
    auth = request_auth(options)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            await run.check_url(url)
        except DomainError as exc:
            raise StepFailed(f"{url} refused: {exc}") from exc
        try:
            response = await run.http().request(
                method,
                url,
                headers=headers,
                auth=auth,
                follow_redirects=False,
                timeout=TIMEOUT_SECONDS,
                **kwargs,
            )
        except httpx.HTTPError as exc:
            raise StepFailed(f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc
        if not (follow_redirects and response.is_redirect and "location" in response.headers):
            return response
        url = urljoin(str(response.url), response.headers["location"])
        if response.status_code in (301, 302, 303) and method not in ("GET", "HEAD"):
            method, kwargs = "GET", {k: v for k, v in kwargs.items() if k == "params"}
    raise StepFailed(f"{method} {url}: more than {MAX_REDIRECTS} redirects")


def _as_list(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return [str(item) for item in value if item not in (None, "")]
    return [str(value)]


def _digest(payload: Any) -> str:
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:32]


# --- website -------------------------------------------------------------------------------------

WEBSITE_TYPES = ("html", "xml", "json", "text")
WEBSITE_MODES = ("on_change", "all", "merge")
UNIQUENESS_LOOK_BACK = 200
UNIQUENESS_FACTOR = 3


class SortableOptions(WebRequestOptions):
    events_order: list[Any] | None = Field(
        default=None, description='Sort keys: ["{{ date }}", "time", true] (template, type, desc)'
    )
    messages_order: list[Any] | None = None
    include_sort_info: bool | str | None = Field(
        default=None, description="Add sort_info {position, count} to each message"
    )

    @field_validator("events_order", "messages_order")
    @classmethod
    def _order(cls, value: Any) -> Any:
        return check_events_order(value)

    @field_validator("include_sort_info")
    @classmethod
    def _sort_info(cls, value: Any) -> Any:
        return check_boolish(value, "include_sort_info")


def _sorted(run: AgentRun, payloads: list[dict[str, Any]], default: Any = None) -> list[Any]:
    raw = run.agent.options
    order = raw.get("events_order") or raw.get("messages_order") or default
    include = boolify(run.options().get("include_sort_info"))
    return sort_events(run, payloads, order, include)


class WebsiteOptions(SortableOptions):
    url: str | list[str] | None = Field(default=None, description="URL or URLs to fetch")
    url_from_event: str | None = Field(default=None, description="URL template over the message")
    url_from_message: str | None = None
    data_from_event: str | None = Field(
        default=None, description="Parse this (a template over the message) instead of fetching"
    )
    data_from_message: str | None = None
    type: str | None = Field(default=None, description="html, xml, json or text")
    mode: str = Field(default="on_change", description="on_change, all or merge")
    extract: dict[str, dict[str, Any]] | None = None
    template: dict[str, str] | None = None
    uniqueness_look_back: int | str | None = None
    use_namespaces: bool | str | None = None
    http_success_codes: list[int | str] | None = None
    expected_update_period_in_days: int | str | None = None

    @field_validator("uniqueness_look_back")
    @classmethod
    def _look_back(cls, value: Any) -> Any:
        return check_positive_int(value, "uniqueness_look_back")

    @field_validator("use_namespaces")
    @classmethod
    def _namespaces(cls, value: Any) -> Any:
        return check_boolish(value, "use_namespaces")

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in WEBSITE_MODES and not is_template(value):
            raise ValueError("mode must be on_change, all or merge")
        return value

    @field_validator("http_success_codes")
    @classmethod
    def _codes(cls, value: list[int | str] | None) -> list[int | str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("must specify at least one status code")
        if any(not str(code).isdigit() for code in value):
            raise ValueError('use only numeric values for codes, e.g. 404 or "404"')
        if len({str(code) for code in value}) != len(value):
            raise ValueError("duplicate http code found")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> WebsiteOptions:
        if not (
            self.url
            or self.url_from_event
            or self.url_from_message
            or self.data_from_event
            or self.data_from_message
        ):
            raise ValueError("either url, url_from_event or data_from_event is required")
        kind = _extraction_type(self.type, self.url)
        if self.extract is None:
            if kind != "json" and not is_template(kind):
                raise ValueError("extract is required for all types except json")
            return self
        for name, details in self.extract.items():
            _check_extractor(kind, name, details)
        return self


def _extraction_type(kind: Any, url: Any) -> str:
    if kind:
        return str(kind)
    first = _as_list(url)[0].lower() if _as_list(url) else ""
    path = first.split("?", 1)[0]
    if path.endswith((".rss", ".xml")):
        return "xml"
    if path.endswith(".json"):
        return "json"
    if path.endswith((".txt", ".text")):
        return "text"
    return "html"


def _check_extractor(kind: str, name: str, details: dict[str, Any]) -> None:
    if kind in ("html", "xml"):
        if not isinstance(details.get("css"), str) and not isinstance(details.get("xpath"), str):
            raise ValueError(
                f"when type is html or xml, every extraction needs a css or xpath ({name!r})"
            )
        if details.get("value") is not None and not isinstance(details["value"], str):
            raise ValueError(f"value must be a string in extraction {name!r}")
    elif kind == "json":
        if not isinstance(details.get("path"), str):
            raise ValueError(f"when type is json, every extraction needs a path ({name!r})")
    elif kind == "text":
        regexp, index = details.get("regexp"), details.get("index")
        if not isinstance(regexp, str):
            raise ValueError(f"when type is text, every extraction needs a regexp ({name!r})")
        compiled = ruby_regex(regexp)
        if index is None:
            raise ValueError(f"when type is text, every extraction needs an index ({name!r})")
        if isinstance(index, str) and not index.isdigit() and index not in compiled.groupindex:
            raise ValueError(f"no named capture {index!r} in the regexp of {name!r}")
    elif not is_template(kind):
        raise ValueError(f"unknown extraction type {kind!r}; use one of {', '.join(WEBSITE_TYPES)}")


class _Output:
    """Extracted values by name; every non-repeat extractor must match the same number of times."""

    def __init__(self) -> None:
        self.values: dict[str, list[Any]] = {}
        self.repeats: dict[str, Any] = {}
        self.hidden: set[str] = set()
        self.size: int | None = None

    def add(self, name: str, values: list[Any], details: dict[str, Any]) -> None:
        if boolify(details.get("hidden")):
            self.hidden.add(name)
        if boolify(details.get("repeat")):
            self.repeats[name] = values[0] if values else None
            return
        if self.size is not None and self.size != len(values):
            raise StepFailed(
                f"got an uneven number of matches: {name!r} matched {len(values)} times, "
                f"earlier extractions {self.size}"
            )
        self.size = len(values)
        self.values[name] = values

    def rows(self) -> list[dict[str, Any]]:
        if self.size is None:
            raise StepFailed("at least one non-repeat extraction is required")
        rows = []
        for index in range(self.size):
            row: dict[str, Any] = {}
            for name in [*self.values, *self.repeats]:
                row[name] = self.values[name][index] if name in self.values else self.repeats[name]
            rows.append(row)
        return rows


def _number(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _stringify(result: Any, as_xml: bool) -> Any:
    """An XPath result as Nokogiri's `to_s` gives it."""
    if isinstance(result, bool):
        return "true" if result else "false"
    if isinstance(result, float):
        return str(_number(result))
    if isinstance(result, list):
        return "".join(_stringify(item, as_xml) for item in result)
    if isinstance(result, etree._Element):
        if as_xml:
            return etree.tostring(result, encoding="unicode", with_tail=False)
        return lxml_html.tostring(result, encoding="unicode", with_tail=False)
    return str(result)


def _strip_namespaces(root: etree._Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = etree.QName(element).localname
        for key in list(element.attrib):
            if "}" in key:
                element.attrib[key.split("}", 1)[1]] = element.attrib.pop(key)
    etree.cleanup_namespaces(root)


def _parse_markup(kind: str, content: bytes | str, charset: str | None, namespaces: bool) -> Any:
    try:
        if kind == "xml":
            data = content.encode() if isinstance(content, str) else content
            if charset and isinstance(content, bytes):
                data = content.decode(charset, errors="replace").encode()
                charset = "utf-8"
            if isinstance(content, str):
                charset = "utf-8"
            parser = etree.XMLParser(
                recover=True, resolve_entities=False, no_network=True, encoding=charset
            )
            root = etree.fromstring(data, parser)
            if root is None:
                raise StepFailed("the XML document is empty or not well formed")
            if not namespaces:
                _strip_namespaces(root)
            return root
        if isinstance(content, bytes) and charset:
            content = content.decode(charset, errors="replace")
        if not content.strip():
            raise StepFailed("the HTML document is empty")
        return lxml_html.document_fromstring(content)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError, LookupError) as exc:
        raise StepFailed(f"could not parse the {kind.upper()} document: {exc}") from exc


def _extract_markup(root: Any, kind: str, extract: dict[str, dict[str, Any]]) -> _Output:
    output = _Output()
    for name, details in extract.items():
        try:
            if isinstance(details.get("css"), str):
                nodes: Any = root.cssselect(details["css"])
            else:
                nodes = root.xpath(details["xpath"])
        except Exception as exc:
            raise StepFailed(f"extraction {name!r}: invalid selector: {exc}") from exc
        values: list[Any] = []
        if isinstance(nodes, list):
            expression = details.get("value") or "."
            strings = []
            for node in nodes:
                if isinstance(node, etree._Element):
                    try:
                        strings.append(_stringify(node.xpath(expression), kind == "xml"))
                    except etree.XPathError as exc:
                        raise StepFailed(f"extraction {name!r}: invalid value: {exc}") from exc
                else:
                    strings.append(str(node))
            if boolify(details.get("array")):
                values.append(strings)
            else:
                values.extend(strings)
        elif isinstance(nodes, float):
            values.append(_number(nodes))
        else:
            values.append(_stringify(nodes, kind == "xml"))
        output.add(name, values, details)
    return output


def _extract_json(doc: Any, extract: dict[str, dict[str, Any]]) -> _Output:
    output = _Output()
    for name, details in extract.items():
        try:
            found = values_at(doc, str(details["path"]))
        except ValueError as exc:
            raise StepFailed(f"extraction {name!r}: {exc}") from exc
        output.add(name, found, details)
    return output


def _extract_text(text: str, extract: dict[str, dict[str, Any]]) -> _Output:
    output = _Output()
    for name, details in extract.items():
        try:
            pattern = ruby_regex(str(details["regexp"]))
        except ValueError as exc:
            raise StepFailed(f"extraction {name!r}: {exc}") from exc
        index = details.get("index", 0)
        group: int | str = int(index) if str(index).isdigit() else str(index)
        try:
            found = [match.group(group) for match in pattern.finditer(text)]
        except (IndexError, re.error) as exc:
            raise StepFailed(f"extraction {name!r}: no group {index!r}") from exc
        output.add(name, found, details)
    return output


class _Website:
    def __init__(self, run: AgentRun, options: dict[str, Any]) -> None:
        self.run = run
        self.options = options
        self.mode = str(options.get("mode") or "on_change")
        if self.mode not in WEBSITE_MODES:
            raise StepFailed(f"mode must be on_change, all or merge, not {self.mode!r}")
        self.kind = _extraction_type(options.get("type"), options.get("url"))
        if self.kind not in WEBSITE_TYPES:
            raise StepFailed(f"unknown extraction type {self.kind!r}")
        self.emit: list[dict[str, Any]] = []
        self.logs: list[str] = []
        self.seen: list[str] = list(run.memory.get("seen_payloads") or [])

    def look_back(self, count: int) -> int:
        configured = self.options.get("uniqueness_look_back")
        if configured not in (None, ""):
            return int(configured)
        return max(UNIQUENESS_FACTOR * count, UNIQUENESS_LOOK_BACK)

    def namespaces(self, extract: dict[str, dict[str, Any]]) -> bool:
        if self.options.get("use_namespaces") not in (None, ""):
            return boolify(self.options["use_namespaces"])
        return not any("xpath" in details for details in extract.values())

    async def fetch_url(self, url: str, existing: dict[str, Any]) -> None:
        if not url.lower().startswith(("http://", "https://")):
            self.logs.append(f"ignoring a non-HTTP url: {url!r}")
            return
        self.logs.append(f"fetching {url}")
        response = await fetch(self.run, url, self.options)
        codes = {str(code) for code in self.options.get("http_success_codes") or []}
        if not response.is_success and str(response.status_code) not in codes:
            raise StepFailed(f"GET {url} answered {response.status_code}")
        content = response_bytes(response, self.options)
        charset = response_charset(response, self.options)
        data: bytes | str = content
        if self.kind in ("json", "text"):
            data = decode_body(content, response, self.options)
        drop = {
            "status": response.status_code,
            "headers": header_variants(response.headers),
            "url": str(response.url),
        }
        self.handle(data, charset, existing, {"_url_": url, "_response_": drop})

    def handle_data(self, data: Any, existing: dict[str, Any]) -> None:
        payload = self.run.payload
        status: int | None
        try:
            status = int(payload.get("status"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            status = None
        headers = payload.get("headers")
        drop = {
            "status": status,
            "headers": header_variants(headers) if isinstance(headers, dict) else {},
            "url": payload.get("url"),
        }
        self.handle(data, None, existing, {"_response_": drop})

    def handle(
        self,
        data: Any,
        charset: str | None,
        existing: dict[str, Any],
        variables: dict[str, Any],
    ) -> None:
        """Parse and extract `data` (bytes or text; for json, also an already parsed value)."""
        extract = self.options.get("extract") or None
        if self.kind == "json":
            if isinstance(data, dict | list):
                doc = data
            else:
                text = (
                    data.decode(charset or "utf-8", "replace") if isinstance(data, bytes) else data
                )
                try:
                    doc = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise StepFailed(f"could not parse the JSON document: {exc}") from exc
            if extract is None:
                if not isinstance(doc, dict):
                    raise StepFailed("the JSON document is not an object: use extract")
                self.store([doc], existing, variables, set())
                return
            output = _extract_json(doc, extract)
        elif self.kind == "text":
            text = data.decode(charset or "utf-8", "replace") if isinstance(data, bytes) else data
            output = _extract_text(text, extract or {})
        else:
            root = _parse_markup(self.kind, data, charset, self.namespaces(extract or {}))
            output = _extract_markup(root, self.kind, extract or {})
        self.store(output.rows(), existing, variables, output.hidden)

    def store(
        self,
        rows: list[dict[str, Any]],
        existing: dict[str, Any],
        variables: dict[str, Any],
        hidden: set[str],
    ) -> None:
        template = self.run.agent.options.get("template") or None
        look_back = self.look_back(len(rows))
        previous = set(self.seen[:look_back])
        for extracted in rows:
            result = {k: v for k, v in extracted.items() if k not in hidden}
            if isinstance(template, dict):
                context = self.run.template_context({**self.run.payload, **extracted, **variables})
                context.update(variables)
                result.update(render(template, context))
            if self.mode == "on_change":
                digest = _digest(result)
                if digest in previous:
                    continue
                self.seen.insert(0, digest)
            self.emit.append({**existing, **result})
        if self.mode == "on_change":
            self.run.memory["seen_payloads"] = self.seen[:look_back]


_SINGLE_VARIABLE = re.compile(r"^\{\{\s*([A-Za-z_][\w.]*)\s*\}\}$")


def _message_value(run: AgentRun, template: str, kind: str, rendered: Any) -> Any:
    """`data_from_event: "{{ body }}"` naming an object or array of a JSON message is used as
    it is (a template would render it as text)."""
    match = _SINGLE_VARIABLE.match(template.strip())
    if kind == "json" and match:
        path = match.group(1).removeprefix("message.")
        try:
            value = value_at(run.payload, path)
        except ValueError:
            value = None
        if isinstance(value, dict | list):
            return value
    return str(rendered)


async def website(run: AgentRun) -> Outcome:
    options = run.options()
    agent = _Website(run, options)
    existing = dict(run.payload) if agent.mode == "merge" and run.mode == "receive" else {}
    data_template = options.get("data_from_event") or options.get("data_from_message")
    raw_data = run.agent.options.get("data_from_event") or run.agent.options.get(
        "data_from_message"
    )
    if run.mode == "receive" and raw_data:
        if not data_template:
            raise StepFailed(f"no data was found in the message using the template {raw_data!r}")
        agent.handle_data(_message_value(run, str(raw_data), agent.kind, data_template), existing)
        agent.logs.append(f"parsed {agent.kind} from the message: {len(agent.emit)} new")
        return Outcome(emit=_sorted(run, agent.emit), logs=agent.logs)
    url_template = options.get("url_from_event") or options.get("url_from_message")
    urls = _as_list(url_template if run.mode == "receive" and url_template else options.get("url"))
    if not urls:
        raise StepFailed("no url to fetch")
    failures: list[str] = []
    for url in urls:
        try:
            await agent.fetch_url(url, existing)
        except StepFailed as exc:
            failures.append(str(exc))
            agent.logs.append(f"error: {exc}")
    if failures and len(failures) == len(urls):
        raise StepFailed("; ".join(failures))
    agent.logs.append(f"{len(agent.emit)} new message(s) from {len(urls)} url(s)")
    return Outcome(emit=_sorted(run, agent.emit), logs=agent.logs)


# --- http_status ---------------------------------------------------------------------------------


class HttpStatusOptions(SortableOptions):
    url: str = Field(min_length=1, max_length=4000)
    headers_to_save: str | list[str] | None = Field(
        default=None, description="Response headers to include, comma-separated"
    )
    changes_only: bool | str | None = Field(
        default=None, description="Emit only when the status differs from the last check"
    )
    expected_receive_period_in_days: int | str | None = None
    expected_update_period_in_days: int | str | None = None

    @field_validator("changes_only")
    @classmethod
    def _boolish(cls, value: Any) -> Any:
        return check_boolish(value, "this option")


async def http_status(run: AgentRun) -> Outcome:
    options = run.options()
    url = str(options.get("url") or "").strip()
    if not url:
        raise StepFailed("a url must be specified")
    raw_headers = options.get("headers_to_save") or ""
    wanted = (
        [str(h).strip() for h in raw_headers]
        if isinstance(raw_headers, list)
        else [h.strip() for h in str(raw_headers).split(",")]
    )
    wanted = [h for h in wanted if h]
    no_follow = boolify(options.get("disable_redirect_follow"))
    started = time.perf_counter()
    response: httpx.Response | None
    error = ""
    try:
        response = await fetch(run, url, options, follow_redirects=not no_follow)
    except StepFailed as exc:
        response, error = None, str(exc)
    elapsed = round(time.perf_counter() - started, 6)
    status = str(response.status_code) if response is not None else ""
    last = run.memory.get("last_status")
    if boolify(options.get("changes_only")) and status == ("" if last is None else str(last)):
        return Outcome(logs=[f"{url}: status {status or 'none'} unchanged"])
    payload: dict[str, Any] = {"url": url, "response_received": False, "elapsed_time": elapsed}
    if response is not None:
        final_url = url if no_follow else str(response.url)
        payload.update(
            final_url=final_url,
            redirected=final_url != url,
            response_received=True,
            status=status,
        )
        if wanted:
            payload["headers"] = {name: response.headers.get(name) for name in wanted}
        run.memory["last_status"] = status
    else:
        run.memory["last_status"] = None
    return Outcome(emit=_sorted(run, [payload]), logs=[f"{url}: {status or error}"])


# --- post ----------------------------------------------------------------------------------------

POST_METHODS = ("post", "get", "put", "delete", "patch")
HEADER_STYLES = ("capitalized", "downcased", "snakecased", "raw")


def _is_mime(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"\w+/.+", value) is not None


class PostOptions(WebRequestOptions):
    post_url: str = Field(min_length=1, max_length=4000)
    method: str = Field(default="post", description="post, get, put, delete or patch")
    content_type: str | None = Field(
        default=None, description="form (default), json, xml, or a MIME type for a string payload"
    )
    payload: dict[str, Any] | list[Any] | str | None = None
    no_merge: bool | str | None = Field(
        default=None, description="Send only `payload`, without the incoming message"
    )
    emit_events: bool | str | None = Field(default=None, description="Emit the response")
    emit_messages: bool | str | None = None
    output_mode: str | None = Field(default=None, description="clean or merge")
    event_headers_style: str | None = None
    message_headers_style: str | None = None
    xml_root: str | None = None
    upload_key: str | None = None
    parse_body: bool | str | None = Field(
        default=None, description="Parse a JSON response body into an object"
    )
    event_headers: str | list[str] | None = Field(
        default=None, description="Only these response headers (list or comma-separated)"
    )
    require_signed_file_pointer: Any = None
    expected_receive_period_in_days: int | str | None = None

    @field_validator("no_merge", "emit_events", "emit_messages", "parse_body")
    @classmethod
    def _boolish(cls, value: Any) -> Any:
        return check_boolish(value, "this option")

    @model_validator(mode="after")
    def _consistent(self) -> PostOptions:
        method = self.method.lower()
        if method not in POST_METHODS and not is_template(method):
            raise ValueError("method must be 'post', 'get', 'put', 'delete', or 'patch'")
        payload = self.payload
        if payload not in (None, "", {}, []):
            if method in ("get", "delete") and not isinstance(payload, dict | list):
                raise ValueError("if provided, payload must be a hash or an array")
            if (
                method in ("post", "put", "patch")
                and not isinstance(payload, dict | list)
                and not _is_mime(self.content_type)
            ):
                raise ValueError("if provided, payload must be a hash or an array")
            if self.content_type == "form" and isinstance(payload, list):
                raise ValueError("when content_type is form, payload must be a hash")
        if isinstance(payload, str) and _is_mime(self.content_type) and not boolify(self.no_merge):
            raise ValueError("when the payload is a string, no_merge has to be true")
        mode = self.output_mode
        if mode not in (None, "", "clean", "merge") and not is_template(mode):
            raise ValueError("if provided, output_mode must be 'clean' or 'merge'")
        for style in (self.event_headers_style, self.message_headers_style):
            if style not in (None, "", *HEADER_STYLES) and not is_template(style):
                raise ValueError(
                    "headers style must be 'capitalized', 'downcased', 'snakecased' or 'raw'"
                )
        return self


def _normalize_header(name: str, style: str) -> str:
    if style == "downcased":
        return name.lower()
    if style == "snakecased":
        return name.lower().replace("-", "_")
    if style == "raw":
        return name
    return "-".join(part.capitalize() for part in name.split("-"))


def _to_xml(data: Any, root: str) -> str:
    """Rails' `Hash#to_xml` in its common shape: dasherized tags, typed scalars, arrays of items."""
    top = etree.Element(root.replace("_", "-"))

    def fill(element: etree._Element, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                fill(etree.SubElement(element, str(key).replace("_", "-")), item)
        elif isinstance(value, list):
            element.set("type", "array")
            tag = element.tag[:-1] if element.tag.endswith("s") and len(element.tag) > 1 else "item"
            for item in value:
                fill(etree.SubElement(element, tag), item)
        elif value is None:
            element.set("nil", "true")
        elif isinstance(value, bool):
            element.set("type", "boolean")
            element.text = "true" if value else "false"
        elif isinstance(value, int):
            element.set("type", "integer")
            element.text = str(value)
        elif isinstance(value, float):
            element.set("type", "float")
            element.text = repr(value)
        else:
            element.text = str(value)

    fill(top, data)
    body = str(etree.tostring(top, encoding="unicode", pretty_print=True))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _form_value(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _response_body(response: httpx.Response, options: dict[str, Any]) -> Any:
    text = decode_body(response.content, response, options)
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if boolify(options.get("parse_body")) and is_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


async def post(run: AgentRun) -> Outcome:
    options = run.options()
    method = str(options.get("method") or "post").lower()
    if method not in POST_METHODS:
        raise StepFailed(
            f"method must be 'post', 'get', 'put', 'delete', or 'patch', not {method!r}"
        )
    url = str(options.get("post_url") or "")
    outgoing: Any = options.get("payload") or {}
    if run.mode == "receive" and not boolify(options.get("no_merge")):
        if not isinstance(outgoing, dict):
            raise StepFailed("the payload must be a hash to be merged with the message")
        outgoing = {**outgoing, **run.payload}
    headers: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    if method in ("get", "delete"):
        if isinstance(outgoing, dict) and outgoing:
            kwargs["params"] = {str(k): _form_value(v) for k, v in outgoing.items()}
    else:
        content_type = options.get("content_type")
        if content_type == "json":
            headers["Content-Type"] = "application/json; charset=utf-8"
            kwargs["content"] = json.dumps(outgoing).encode()
        elif content_type == "xml":
            headers["Content-Type"] = "text/xml; charset=utf-8"
            kwargs["content"] = _to_xml(outgoing, str(options.get("xml_root") or "post")).encode()
        elif _is_mime(content_type):
            headers["Content-Type"] = str(content_type)
            text = outgoing if isinstance(outgoing, str) else json.dumps(outgoing)
            kwargs["content"] = text.encode()
        else:
            if not isinstance(outgoing, dict):
                raise StepFailed("when content_type is form, payload must be a hash")
            kwargs["data"] = {str(k): _form_value(v) for k, v in outgoing.items()}
    response = await fetch(run, url, options, method.upper(), headers=headers, **kwargs)
    logs = [f"{method.upper()} {url} -> {response.status_code}"]
    if not boolify(options.get("emit_events", options.get("emit_messages"))):
        return Outcome(logs=logs)
    style = str(options.get("event_headers_style") or options.get("message_headers_style") or "")
    wanted = options.get("event_headers") or []
    if isinstance(wanted, str):
        wanted = wanted.split(",")
    only = {str(h).strip().lower() for h in wanted if str(h).strip()}
    response_headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        if only and name.lower() not in only:
            continue
        key = _normalize_header(name, style or "capitalized")
        response_headers[key] = (
            f"{response_headers[key]},{value}" if key in response_headers else value
        )
    base = dict(run.payload) if str(options.get("output_mode")) == "merge" else {}
    emitted = {
        **base,
        "body": _response_body(response, options),
        "headers": response_headers,
        "status": response.status_code,
    }
    return Outcome(emit=[emitted], logs=logs)


# --- rss -----------------------------------------------------------------------------------------

REMEMBERED_ID_COUNT = 500


class RssOptions(SortableOptions):
    url: str | list[str] = Field(description="Feed URL or URLs")
    clean: bool | str | None = Field(
        default=None, description="Sanitize description and content as HTML fragments"
    )
    include_feed_info: bool | str | None = None
    expected_update_period_in_days: int | str | None = None
    max_events_per_run: int | str | None = None
    max_messages_per_run: int | str | None = None
    remembered_id_count: int | str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | list[str]) -> str | list[str]:
        if not _as_list(value):
            raise ValueError("url is required")
        return value

    @field_validator("clean", "include_feed_info")
    @classmethod
    def _boolish(cls, value: Any) -> Any:
        return check_boolish(value, "this option")

    @field_validator("expected_update_period_in_days", "remembered_id_count")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        return check_positive_int(value, "this option")

    @field_validator("max_events_per_run", "max_messages_per_run")
    @classmethod
    def _non_negative(cls, value: Any) -> Any:
        return check_positive_int(value, "this option", minimum=0)


def _iso(parsed: Any) -> str | None:
    if not parsed:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC).isoformat()


def _person(item: Any) -> str:
    parts = []
    if item.get("name"):
        parts.append(str(item["name"]))
    if item.get("email"):
        parts.append(f"<{item['email']}>")
    if item.get("href"):
        parts.append(f"({item['href']})")
    return " ".join(parts)


def _authors(node: Any) -> list[str]:
    people = node.get("authors") or []
    authors = [_person(p) for p in people if isinstance(p, dict) and _person(p)]
    if not authors and node.get("author"):
        authors = [str(node["author"])]
    return authors


def _links(node: Any) -> list[dict[str, Any]]:
    return [
        {k: link.get(k) for k in ("href", "rel", "type") if link.get(k) is not None}
        for link in node.get("links") or []
    ]


def _feed_info(feed: Any, version: str) -> dict[str, Any]:
    image = feed.get("image") or {}
    return {
        "id": feed.get("id"),
        "type": "atom" if version.startswith("atom") else "rss",
        "url": feed.get("link"),
        "links": _links(feed),
        "title": feed.get("title"),
        "description": feed.get("subtitle") or feed.get("description"),
        "copyright": feed.get("rights"),
        "generator": feed.get("generator"),
        "icon": feed.get("icon") or image.get("href"),
        "authors": _authors(feed),
        "date_published": _iso(feed.get("published_parsed")),
        "last_updated": _iso(feed.get("updated_parsed") or feed.get("published_parsed")),
    }


def _entry(entry: Any) -> dict[str, Any]:
    summary = entry.get("summary")
    contents = entry.get("content") or []
    content = contents[0].get("value") if contents else summary
    enclosures = [e for e in entry.get("links") or [] if e.get("rel") == "enclosure"]
    enclosure = None
    if enclosures:
        enclosure = {
            "url": enclosures[0].get("href"),
            "type": enclosures[0].get("type"),
            "length": enclosures[0].get("length"),
        }
    image = entry.get("image") or {}
    link = entry.get("link")
    identifier = entry.get("id") or link
    if not identifier:
        identifier = hashlib.md5(  # noqa: S324 - an identity, not a secret
            f"{entry.get('title')}\n{content}".encode()
        ).hexdigest()
    published = _iso(entry.get("published_parsed"))
    return {
        "id": identifier,
        "url": link,
        "urls": [item["href"] for item in _links(entry) if item.get("href")],
        "links": _links(entry),
        "title": entry.get("title"),
        "description": summary,
        "content": content,
        "image": image.get("href") if isinstance(image, dict) else image or None,
        "enclosure": enclosure,
        "authors": _authors(entry),
        "categories": [t.get("term") for t in entry.get("tags") or [] if t.get("term")],
        "date_published": published,
        "last_updated": _iso(entry.get("updated_parsed")) or published,
    }


RSS_ORDER = [["{{ date_published }}", "time"], ["{{ last_updated }}", "time"]]


async def rss(run: AgentRun) -> Outcome:
    options = run.options()
    urls = _as_list(options.get("url"))
    if not urls:
        raise StepFailed("url is required")
    clean = boolify(options.get("clean"))
    with_feed = boolify(options.get("include_feed_info"))
    found: list[dict[str, Any]] = []
    logs: list[str] = []
    failures: list[str] = []
    for url in urls:
        try:
            response = await fetch(run, url, options)
            if not response.is_success:
                raise StepFailed(f"failed to fetch {url}: status {response.status_code}")
            body = response_bytes(response, options)
            parsed = feedparser.parse(
                body,
                sanitize_html=clean,
                response_headers={"content-type": response.headers.get("content-type", "")},
            )
            if parsed.get("bozo") and not parsed.entries and not parsed.feed:
                raise StepFailed(f"{url} is not a feed: {parsed.get('bozo_exception')}")
        except StepFailed as exc:
            failures.append(str(exc))
            logs.append(f"error: {exc}")
            continue
        base = {"feed": _feed_info(parsed.feed, parsed.get("version") or "")} if with_feed else {}
        found.extend({**base, **_entry(entry)} for entry in parsed.entries)
    if failures and len(failures) == len(urls):
        raise StepFailed("; ".join(failures))
    raw = run.agent.options
    found = sort_events(
        run, found, raw.get("events_order") or raw.get("messages_order") or RSS_ORDER
    )
    limit = int(options.get("max_events_per_run") or options.get("max_messages_per_run") or 0)
    remembered = int(options.get("remembered_id_count") or REMEMBERED_ID_COUNT)
    seen: list[str] = [str(i) for i in run.memory.get("seen_ids") or []]
    known = set(seen)
    emit: list[dict[str, Any]] = []
    for index, payload in enumerate(found):
        identifier = str(payload["id"])
        if identifier in known:
            continue
        known.add(identifier)
        seen.insert(0, identifier)
        if limit and index >= limit:
            continue
        emit.append(payload)
    run.memory["seen_ids"] = seen[:remembered]
    emit = sort_events(run, emit, None, boolify(options.get("include_sort_info")))
    logs.append(f"fetched {', '.join(urls)} and created {len(emit)} message(s)")
    return Outcome(emit=emit, logs=logs)


# basic_auth is a password: encrypted at rest, never shown, decrypted for the run (AgentRun.secrets).
WEB_SECRETS = ("basic_auth",)


def _types() -> Iterable[AgentType]:
    yield AgentType(
        "website",
        Kind.ACTION,
        WebsiteOptions,
        "Scrape a web page, XML, JSON or text (CSS, XPath, JSONPath, regex); on_change, all or"
        " merge; fetches `url` on its schedule, `url_from_event` or `data_from_event` per message",
        website,
        emits="One message per extracted row (the extract keys plus the template keys)",
        secret_options=WEB_SECRETS,
        example={
            "expected_update_period_in_days": "2",
            "url": "https://xkcd.com",
            "type": "html",
            "mode": "on_change",
            "extract": {
                "url": {"css": "#comic img", "value": "@src"},
                "title": {"css": "#comic img", "value": "@alt"},
                "hovertext": {"css": "#comic img", "value": "@title"},
            },
        },
    )
    yield AgentType(
        "http_status",
        Kind.ACTION,
        HttpStatusOptions,
        "Check a URL: its HTTP status, elapsed time and chosen headers",
        http_status,
        emits="{url, status, response_received, elapsed_time, final_url, redirected, headers}",
        secret_options=WEB_SECRETS,
        example={"url": "http://google.com", "disable_redirect_follow": True},
    )
    yield AgentType(
        "post",
        Kind.ACTION,
        PostOptions,
        "Send the message (merged with `payload`) to `post_url` as a form, JSON, XML or raw body",
        post,
        emits="With emit_events: {status, headers, body} of the response",
        secret_options=WEB_SECRETS,
        example={
            "post_url": "http://www.example.com",
            "expected_receive_period_in_days": 1,
            "content_type": "form",
            "method": "post",
            "payload": {"key": "value", "something": "the event contained {{ somekey }}"},
            "headers": {},
            "emit_events": False,
            "parse_body": True,
            "no_merge": True,
            "output_mode": "clean",
            "require_signed_file_pointer": True,
        },
    )
    yield AgentType(
        "rss",
        Kind.ACTION,
        RssOptions,
        "Read RSS and Atom feeds; each entry is emitted once (ids remembered in memory)",
        rss,
        emits="One message per new entry: id, url, title, description, content, authors, dates…",
        secret_options=WEB_SECRETS,
        example={
            "expected_update_period_in_days": 5,
            "clean": False,
            "url": "https://github.com/huginn/huginn/commits/master.atom",
        },
    )


TYPES: tuple[AgentType, ...] = tuple(_types())

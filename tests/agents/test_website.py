"""The website agent against a real loopback HTTP server: HTML (CSS, XPath), XML, JSON, text;
modes on_change / all / merge with memory carried across runs; the uniqueness window."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from flowql.agents.base import StepFailed
from flowql.agents.registry import validate_options
from flowql.errors import ValidationFailed
from tests.agents.conftest import RunAgent
from tests.agents.loopback import Loopback, running

site = pytest.fixture(scope="module")(running)

COMICS = """<!doctype html><html><head><title>Daily comics</title></head><body>
<div class="comic"><a href="/c/1"><img src="/i/1.png" title="First &amp; best"></a>
  <span class="price"> 1,200 </span></div>
<div class="comic"><a href="/c/2"><img src="/i/2.png" title="Second"></a>
  <span class="price"> 3,400 </span></div>
<ul id="tags"><li>a</li><li>b</li></ul>
</body></html>"""


def _page(items: list[str]) -> str:
    rows = "".join(f'<li class="item"><a href="/{i}">{i}</a></li>' for i in items)
    return f"<html><body><ul>{rows}</ul></body></html>"


ITEMS_EXTRACT = {"title": {"css": "li.item a", "value": "string(.)"}}


async def test_html_css_extraction_with_repeat_hidden_and_template(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/comics", COMICS)
    options = {
        "url": url,
        "type": "html",
        "mode": "all",
        "extract": {
            "src": {"css": ".comic img", "value": "@src"},
            "title": {"css": ".comic img", "value": "@title"},
            "price": {"css": ".comic .price", "value": "translate(normalize-space(.), ',', '')"},
            "page_title": {"css": "title", "value": "string(.)", "repeat": True},
            "link": {"css": ".comic a", "value": "@href", "hidden": True},
        },
        "template": {
            "summary": "{{ title }} on {{ page_title }}",
            "status": "{{ _response_.status }}",  # one whole expression keeps its type
            "fetched": "{{ _url_ }}",
            "ctype": "{{ _response_.headers.Content-Type }}",
            "link_seen": "{{ link }}",
        },
    }
    outcome = await run_agent("website", options, mode="check")
    assert outcome.emit == [
        {
            "src": "/i/1.png",
            "title": "First & best",
            "price": "1200",
            "page_title": "Daily comics",
            "summary": "First & best on Daily comics",
            "status": 200,
            "fetched": url,
            "ctype": "text/html; charset=utf-8",
            "link_seen": "/c/1",
        },
        {
            "src": "/i/2.png",
            "title": "Second",
            "price": "3400",
            "page_title": "Daily comics",
            "summary": "Second on Daily comics",
            "status": 200,
            "fetched": url,
            "ctype": "text/html; charset=utf-8",
            "link_seen": "/c/2",
        },
    ]


async def test_html_xpath_array_outer_and_inner_html(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/tags", COMICS)
    options = {
        "url": url,
        "mode": "all",
        "extract": {
            "tags": {"xpath": "//ul[@id='tags']/li", "value": "string(.)", "array": True},
            "list": {"xpath": "//ul[@id='tags']", "value": "."},
            "inner": {"xpath": "//ul[@id='tags']", "value": "./node()"},
            "count": {"xpath": "count(//li)"},
        },
    }
    outcome = await run_agent("website", options, mode="check")
    assert outcome.emit == [
        {
            "tags": ["a", "b"],
            "list": '<ul id="tags"><li>a</li><li>b</li></ul>',
            "inner": "<li>a</li><li>b</li>",
            "count": 2,
        }
    ]


async def test_on_change_emits_only_new_results_across_runs(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/news", _page(["a", "b", "c"]))
    options = {"url": url, "mode": "on_change", "extract": ITEMS_EXTRACT}
    memory: dict[str, Any] = {}
    first = await run_agent("website", options, mode="check", memory=memory)
    assert [m["title"] for m in first.emit] == ["a", "b", "c"]
    again = await run_agent("website", options, mode="check", memory=memory)
    assert again.emit == []
    site.serve("/news", _page(["d", "a", "b", "c"]))
    changed = await run_agent("website", options, mode="check", memory=memory)
    assert changed.emit == [{"title": "d"}]
    # `all` ignores what was seen.
    every = await run_agent("website", {**options, "mode": "all"}, mode="check", memory=memory)
    assert [m["title"] for m in every.emit] == ["d", "a", "b", "c"]


async def test_uniqueness_look_back_limits_the_window(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/window", _page(["a", "b"]))
    options = {
        "url": url,
        "mode": "on_change",
        "uniqueness_look_back": 1,
        "extract": ITEMS_EXTRACT,
    }
    memory: dict[str, Any] = {}
    first = await run_agent("website", options, mode="check", memory=memory)
    assert [m["title"] for m in first.emit] == ["a", "b"]
    assert len(memory["seen_payloads"]) == 1
    # Only the last result ("b") is remembered: "a" is new again.
    second = await run_agent("website", options, mode="check", memory=memory)
    assert second.emit == [{"title": "a"}]
    # With the default window (200) nothing repeats.
    memory = {}
    wide = {**options, "uniqueness_look_back": None}
    await run_agent("website", wide, mode="check", memory=memory)
    assert (await run_agent("website", wide, mode="check", memory=memory)).emit == []


async def test_merge_mode_fetches_url_from_event_and_keeps_the_message(
    run_agent: RunAgent, site: Loopback
) -> None:
    site.serve("/merge", _page(["x"]))
    options = {
        "url_from_event": site.base + "{{ path }}",
        "mode": "merge",
        "extract": ITEMS_EXTRACT,
    }
    outcome = await run_agent("website", options, {"path": "/merge", "title": "old", "k": 1})
    assert outcome.emit == [{"path": "/merge", "title": "x", "k": 1}]


async def test_receive_without_url_from_event_fetches_url(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/plain", _page(["p"]))
    options = {"url": url, "mode": "all", "extract": ITEMS_EXTRACT}
    outcome = await run_agent("website", options, {"anything": True})
    assert outcome.emit == [{"title": "p"}]


async def test_data_from_event_json_with_jsonpath(run_agent: RunAgent) -> None:
    body = {
        "results": {
            "data": [
                {"title": "Lorem 1", "price": 8.95},
                {"title": "Lorem 2", "price": 12.99},
            ]
        }
    }
    options = {
        "data_from_event": "{{ body }}",
        "type": "json",
        "mode": "all",
        "extract": {
            "title": {"path": "results.data[*].title"},
            "price": {"path": "$.results.data[*].price"},
        },
        "template": {"from": "{{ _response_.url }} {{ _response_.status }}"},
    }
    payload = {"body": json.dumps(body), "url": "http://example.test/x", "status": "201"}
    outcome = await run_agent("website", options, payload)
    assert outcome.emit == [
        {"title": "Lorem 1", "price": 8.95, "from": "http://example.test/x 201"},
        {"title": "Lorem 2", "price": 12.99, "from": "http://example.test/x 201"},
    ]


async def test_data_from_event_naming_a_json_object_uses_it(run_agent: RunAgent) -> None:
    options = {
        "data_from_event": "{{ message.body }}",
        "type": "json",
        "mode": "all",
        "extract": {"name": {"path": "people[*].name"}},
    }
    payload = {"body": {"people": [{"name": "Ada"}, {"name": "Alan"}]}}
    outcome = await run_agent("website", options, payload)
    assert outcome.emit == [{"name": "Ada"}, {"name": "Alan"}]


async def test_json_without_extract_emits_the_document(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve(
        "/doc.json", json.dumps({"a": 1, "b": [1, 2]}), content_type="application/json"
    )
    memory: dict[str, Any] = {}
    outcome = await run_agent("website", {"url": url}, mode="check", memory=memory)
    assert outcome.emit == [{"a": 1, "b": [1, 2]}]  # type inferred from .json
    unchanged = await run_agent("website", {"url": url}, mode="check", memory=memory)
    assert unchanged.emit == []


ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Feed</title>
  <entry><title>One</title><link href="http://e/1"/></entry>
  <entry><title>Two</title><link href="http://e/2"/></entry>
</feed>"""


async def test_xml_with_xpath_strips_namespaces(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/feed.xml", ATOM, content_type="application/atom+xml")
    options = {
        "url": url,
        "mode": "all",
        "extract": {
            "title": {"xpath": "/feed/entry/title", "value": "string(.)"},
            "link": {"xpath": "/feed/entry/link", "value": "@href"},
        },
    }
    outcome = await run_agent("website", options, mode="check")
    assert outcome.emit == [
        {"title": "One", "link": "http://e/1"},
        {"title": "Two", "link": "http://e/2"},
    ]
    kept = {**options, "use_namespaces": "true"}
    assert (await run_agent("website", kept, mode="check")).emit == []


async def test_xml_latin1_declared_in_document(run_agent: RunAgent, site: Loopback) -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><r><n>café</n></r>'.encode("latin-1")
    url = site.serve("/latin.xml", body, content_type="text/xml")
    options = {"url": url, "mode": "all", "extract": {"n": {"xpath": "//n", "value": "string(.)"}}}
    assert (await run_agent("website", options, mode="check")).emit == [{"n": "café"}]


async def test_text_regex_with_named_and_numbered_groups(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/words.txt", "cat: a pet\ndog: a friend\n", content_type="text/plain")
    options = {
        "url": url,
        "mode": "all",
        "extract": {
            "word": {"regexp": "^(?<word>.+?): (?<definition>.+)$", "index": "word"},
            "definition": {"regexp": "^(.+?): (.+)$", "index": 2},
        },
    }
    outcome = await run_agent("website", options, mode="check")
    assert outcome.emit == [
        {"word": "cat", "definition": "a pet"},
        {"word": "dog", "definition": "a friend"},
    ]
    whole = {"url": url, "mode": "all", "extract": {"all": {"regexp": "\\A(?m:.)*\\z", "index": 0}}}
    assert (await run_agent("website", whole, mode="check")).emit == [
        {"all": "cat: a pet\ndog: a friend\n"}
    ]


async def test_headers_and_basic_auth_are_sent(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/private", _page(["s"]))
    options = {
        "url": url,
        "mode": "all",
        "headers": {"X-Token": "abc"},
        "basic_auth": "user:pa:ss",
        "user_agent": "flowql-test",
        "extract": ITEMS_EXTRACT,
    }
    await run_agent("website", options, mode="check")
    sent = [r for r in site.requests if r.path == "/private"][-1]
    assert sent.headers["X-Token"] == "abc"
    assert sent.headers["User-Agent"] == "flowql-test"
    assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"user:pa:ss").decode()


async def test_errors_fail_the_step(run_agent: RunAgent, site: Loopback) -> None:
    missing = site.url("/missing")
    with pytest.raises(StepFailed, match="404"):
        await run_agent("website", {"url": missing, "extract": ITEMS_EXTRACT}, mode="check")
    site.serve("/gone", _page(["z"]), status=404)
    ok = {"url": site.url("/gone"), "extract": ITEMS_EXTRACT, "http_success_codes": [404]}
    assert (await run_agent("website", ok, mode="check")).emit == [{"title": "z"}]
    uneven = {
        "url": site.serve("/uneven", COMICS),
        "extract": {
            "img": {"css": ".comic img", "value": "@src"},
            "tag": {"css": "#tags li", "value": "string(.)"},
            "title": {"css": "title"},
        },
    }
    uneven["extract"]["tag"]["css"] = "li"
    with pytest.raises(StepFailed, match="uneven"):
        await run_agent("website", uneven, mode="check")


async def test_one_failing_url_of_several_is_logged(run_agent: RunAgent, site: Loopback) -> None:
    good = site.serve("/good", _page(["g"]))
    options = {"url": [site.url("/nope"), good], "mode": "all", "extract": ITEMS_EXTRACT}
    outcome = await run_agent("website", options, mode="check")
    assert outcome.emit == [{"title": "g"}]
    assert any("404" in line for line in outcome.logs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"extract": ITEMS_EXTRACT}, "url"),
        ({"url": "http://x/", "mode": "sometimes", "extract": ITEMS_EXTRACT}, "mode"),
        ({"url": "http://x/"}, "extract is required"),
        ({"url": "http://x/", "extract": {"a": {"value": "."}}}, "css or xpath"),
        ({"url": "http://x/", "type": "json", "extract": {"a": {"css": "a"}}}, "path"),
        (
            {"url": "http://x/", "type": "text", "extract": {"a": {"regexp": "(a)", "index": "n"}}},
            "named capture",
        ),
        ({"url": "http://x/", "type": "text", "extract": {"a": {"regexp": "(a"}}}, "regular"),
        ({"url": "http://x/", "type": "csv", "extract": {"a": {}}}, "unknown extraction"),
        ({"url": "http://x/", "uniqueness_look_back": "x", "extract": ITEMS_EXTRACT}, "integer"),
        ({"url": "http://x/", "http_success_codes": ["x"], "extract": ITEMS_EXTRACT}, "numeric"),
        ({"url": "http://x/", "basic_auth": ["a"], "extract": ITEMS_EXTRACT}, "basic_auth"),
        ({"url": "http://x/", "bogus": 1, "extract": ITEMS_EXTRACT}, "bogus"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("website", options)
    assert message in json.dumps(caught.value.fields)


async def test_events_order_and_sort_info(run_agent: RunAgent, site: Loopback) -> None:
    prices = "".join(f'<li class="p">{p}</li>' for p in ("5", "30", "100"))
    url = site.serve("/prices", f"<html><body><ul>{prices}</ul></body></html>")
    options = {
        "url": url,
        "mode": "all",
        "extract": {"price": {"css": "li.p", "value": "string(.)"}},
        "events_order": [["{{ price }}", "number", True]],
        "include_sort_info": "true",
    }
    outcome = await run_agent("website", options, mode="check")
    assert outcome.emit == [
        {"price": "100", "sort_info": {"position": 1, "count": 3}},
        {"price": "30", "sort_info": {"position": 2, "count": 3}},
        {"price": "5", "sort_info": {"position": 3, "count": 3}},
    ]
    as_text = {**options, "events_order": ["{{ price }}"], "include_sort_info": False}
    assert [m["price"] for m in (await run_agent("website", as_text, mode="check")).emit] == [
        "100",
        "30",
        "5",
    ]
    reverse = {**as_text, "events_order": [["{{ _index_ }}", "number", True]]}
    assert [m["price"] for m in (await run_agent("website", reverse, mode="check")).emit] == [
        "100",
        "30",
        "5",
    ]
    bad = {**options, "events_order": [["{{ price }}", "colour"]]}
    with pytest.raises(ValidationFailed):
        validate_options("website", bad)


async def test_redirects_are_followed_unless_disabled(run_agent: RunAgent, site: Loopback) -> None:
    site.serve("/moved-target", _page(["t"]))
    moved = site.serve("/moved", "", status=301, headers={"Location": "/moved-target"})
    options = {"url": moved, "mode": "all", "extract": ITEMS_EXTRACT}
    assert (await run_agent("website", options, mode="check")).emit == [{"title": "t"}]
    with pytest.raises(StepFailed, match="301"):
        await run_agent("website", {**options, "disable_redirect_follow": "true"}, mode="check")


def test_proxy_is_refused() -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("website", {"url": "http://x/", "proxy": "http://p:3128"})
    assert "proxies are not supported" in json.dumps(caught.value.fields)


async def test_activeworkflow_option_names(run_agent: RunAgent) -> None:
    options = {
        "data_from_message": "{{ html }}",
        "type": "html",
        "mode": "merge",
        "extract": ITEMS_EXTRACT,
    }
    outcome = await run_agent("website", options, {"html": _page(["aw"]), "n": 1})
    assert outcome.emit == [{"html": _page(["aw"]), "n": 1, "title": "aw"}]
    with pytest.raises(StepFailed, match="no data"):
        await run_agent("website", options, {"n": 1})


async def test_refused_urls_and_redirect_targets(site: Loopback, http_client: Any) -> None:
    from flowql.agents.registry import REGISTRY
    from flowql.errors import ValidationFailed as Refused
    from tests.agents.conftest import make_run

    checked: list[str] = []

    async def guard(url: str) -> None:
        checked.append(url)
        if "169.254" in url:
            raise Refused({"url": "private network"})

    good = site.serve("/public", _page(["ok"]))
    bounce = site.serve("/bounce", "", status=302, headers={"Location": "http://169.254.169.254/"})
    options = {"url": ["http://169.254.169.254/x", good], "mode": "all", "extract": ITEMS_EXTRACT}
    run = make_run("website", options, mode="check", http=http_client)
    run.check_url = guard
    outcome = await REGISTRY["website"].handler(run)
    assert outcome.emit == [{"title": "ok"}]
    assert any("refused" in line for line in outcome.logs)

    run = make_run("website", {**options, "url": bounce}, mode="check", http=http_client)
    run.check_url = guard
    with pytest.raises(StepFailed, match="refused"):
        await REGISTRY["website"].handler(run)
    assert checked[-2:] == [bounce, "http://169.254.169.254/"]


async def test_unzip_and_force_encoding(run_agent: RunAgent, site: Loopback) -> None:
    import gzip

    url = site.serve(
        "/data.txt.gz", gzip.compress("naïve: yes\n".encode()), content_type="application/gzip"
    )
    options = {
        "url": url,
        "type": "text",
        "mode": "all",
        "unzip": "gzip",
        "extract": {"word": {"regexp": "^(\\w+):", "index": 1}},
    }
    assert (await run_agent("website", options, mode="check")).emit == [{"word": "naïve"}]
    # The server says UTF-8 but sends Latin-1: force_encoding wins.
    latin = site.serve(
        "/latin.txt", "café: 1\n".encode("latin-1"), content_type="text/plain; charset=utf-8"
    )
    forced = {**options, "url": latin, "unzip": None, "force_encoding": "ISO-8859-1"}
    assert (await run_agent("website", forced, mode="check")).emit == [{"word": "café"}]

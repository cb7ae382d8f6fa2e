"""The rss agent against real RSS and Atom documents served on loopback."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowql.agents.base import StepFailed
from flowql.agents.registry import validate_options
from flowql.errors import ValidationFailed
from tests.agents.conftest import RunAgent
from tests.agents.loopback import Loopback, running

site = pytest.fixture(scope="module")(running)

ITEM = """<item>
  <title>{title}</title>
  <link>http://example.com/{guid}</link>
  <guid>{guid}</guid>
  <pubDate>{date}</pubDate>
  <author>ann@example.com (Ann)</author>
  <category>news</category>
  <description>&lt;p&gt;Hello &lt;b&gt;{title}&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description>
  <enclosure url="http://example.com/{guid}.mp3" type="audio/mpeg" length="1234"/>
</item>"""


def rss(items: list[tuple[str, str, str]]) -> str:
    body = "".join(ITEM.format(guid=g, title=t, date=d) for g, t, d in items)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel>
  <title>Example news</title><link>http://example.com/</link>
  <description>All the news</description>
  {body}
</channel></rss>"""


JAN2 = "Fri, 02 Jan 2026 10:00:00 GMT"
JAN1 = "Thu, 01 Jan 2026 10:00:00 GMT"
JAN3 = "Sat, 03 Jan 2026 10:00:00 GMT"

ATOM = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Atom site</title><id>urn:feed</id><updated>2026-01-05T00:00:00Z</updated>
  <link rel="alternate" href="http://atom.example/"/>
  <entry>
    <id>urn:e1</id><title>Atom one</title>
    <link rel="alternate" href="http://atom.example/1"/>
    <updated>2026-01-04T08:00:00Z</updated><published>2026-01-04T07:00:00Z</published>
    <author><name>Bob</name><email>bob@example.com</email></author>
    <summary>short</summary>
    <content type="html">&lt;p&gt;long&lt;/p&gt;</content>
  </entry>
</feed>"""


async def test_each_entry_is_emitted_once_oldest_first(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve(
        "/news.rss",
        rss([("b", "Bee", JAN2), ("a", "Ay", JAN1)]),
        content_type="application/rss+xml",
    )
    memory: dict[str, Any] = {}
    first = await run_agent("rss", {"url": url}, mode="check", memory=memory)
    assert [m["id"] for m in first.emit] == ["a", "b"]
    entry = first.emit[0]
    assert entry["title"] == "Ay"
    assert entry["url"] == "http://example.com/a"
    assert entry["urls"][0] == "http://example.com/a"
    assert entry["date_published"] == "2026-01-01T10:00:00+00:00"
    assert entry["categories"] == ["news"]
    assert entry["enclosure"] == {
        "url": "http://example.com/a.mp3",
        "type": "audio/mpeg",
        "length": "1234",
    }
    assert entry["authors"] and "ann@example.com" in entry["authors"][0]
    assert "feed" not in entry
    assert "<script>" in entry["description"]  # clean is off: the HTML as published
    assert memory["seen_ids"] == ["b", "a"]

    assert (await run_agent("rss", {"url": url}, mode="check", memory=memory)).emit == []
    site.serve("/news.rss", rss([("c", "Sea", JAN3), ("b", "Bee", JAN2), ("a", "Ay", JAN1)]))
    third = await run_agent("rss", {"url": url}, mode="check", memory=memory)
    assert [m["id"] for m in third.emit] == ["c"]


async def test_clean_sanitizes_html_and_feed_info_is_included(
    run_agent: RunAgent, site: Loopback
) -> None:
    url = site.serve("/clean.rss", rss([("x", "Ex", JAN1)]), content_type="application/rss+xml")
    options = {"url": url, "clean": "true", "include_feed_info": True}
    [entry] = (await run_agent("rss", options, mode="check")).emit
    assert "script" not in entry["description"]
    assert "<b>Ex</b>" in entry["description"]
    assert entry["feed"]["title"] == "Example news"
    assert entry["feed"]["type"] == "rss"
    assert entry["feed"]["url"] == "http://example.com/"
    assert entry["feed"]["description"] == "All the news"


async def test_atom_feed(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/feed.atom", ATOM, content_type="application/atom+xml")
    [entry] = (await run_agent("rss", {"url": url, "include_feed_info": "true"}, mode="check")).emit
    assert entry["id"] == "urn:e1"
    assert entry["description"] == "short"
    assert entry["content"] == "<p>long</p>"
    assert entry["authors"] == ["Bob <bob@example.com>"]
    assert entry["date_published"] == "2026-01-04T07:00:00+00:00"
    assert entry["last_updated"] == "2026-01-04T08:00:00+00:00"
    assert entry["feed"]["type"] == "atom"
    assert entry["feed"]["title"] == "Atom site"


async def test_several_urls_share_ids_and_limits_apply(run_agent: RunAgent, site: Loopback) -> None:
    one = site.serve("/one.rss", rss([("s", "Shared", JAN1), ("o", "One", JAN2)]))
    two = site.serve("/two.rss", rss([("s", "Shared", JAN1), ("t", "Two", JAN3)]))
    memory: dict[str, Any] = {}
    outcome = await run_agent("rss", {"url": [one, two]}, mode="check", memory=memory)
    assert [m["id"] for m in outcome.emit] == ["s", "o", "t"]

    limited = {"url": [one, two], "max_events_per_run": 1, "remembered_id_count": 2}
    memory = {}
    outcome = await run_agent("rss", limited, mode="check", memory=memory)
    assert [m["id"] for m in outcome.emit] == ["s"]
    assert memory["seen_ids"] == ["t", "o"]  # the newest two ids are remembered
    outcome = await run_agent("rss", limited, mode="check", memory=memory)
    assert [m["id"] for m in outcome.emit] == ["s"]  # forgotten, so new again


async def test_a_failing_feed_is_reported(run_agent: RunAgent, site: Loopback) -> None:
    with pytest.raises(StepFailed, match="404"):
        await run_agent("rss", {"url": site.url("/absent.rss")}, mode="check")
    good = site.serve("/good.rss", rss([("g", "Good", JAN1)]))
    outcome = await run_agent("rss", {"url": [site.url("/absent.rss"), good]}, mode="check")
    assert [m["id"] for m in outcome.emit] == ["g"]
    assert any("404" in line for line in outcome.logs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "url"),
        ({"url": []}, "url is required"),
        ({"url": "http://x/", "clean": "perhaps"}, "true or false"),
        ({"url": "http://x/", "remembered_id_count": 0}, "at least 1"),
        ({"url": "http://x/", "expected_update_period_in_days": "soon"}, "integer"),
    ],
)
def test_rss_invalid_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_options("rss", options)
    assert message in json.dumps(caught.value.fields)


async def test_events_order_and_sort_info(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve(
        "/ordered.rss", rss([("a", "Ay", JAN1), ("c", "Sea", JAN3), ("b", "Bee", JAN2)])
    )
    options = {
        "url": url,
        "events_order": [["{{ date_published }}", "time", True]],
        "include_sort_info": True,
    }
    outcome = await run_agent("rss", options, mode="check")
    assert [(m["id"], m["sort_info"]["position"]) for m in outcome.emit] == [
        ("c", 1),
        ("b", 2),
        ("a", 3),
    ]
    assert all(m["sort_info"]["count"] == 3 for m in outcome.emit)


async def test_an_html_page_is_not_a_feed(run_agent: RunAgent, site: Loopback) -> None:
    url = site.serve("/page.html", "<html><body><p>hello</p></body></html>")
    outcome = await run_agent("rss", {"url": url}, mode="check")
    assert outcome.emit == []

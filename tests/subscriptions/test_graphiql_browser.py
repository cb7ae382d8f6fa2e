"""GraphiQL at /graphql in a real headless Chromium (Python Playwright driving Debian's
/usr/bin/chromium): the bearer header set in its headers editor, a query and a live subscription
that ends COMPLETED on the page, with every file served by flowql (nothing from the network).

Needs /usr/bin/chromium (scripts/test installs it when CI=true) and GraphiQL's files, fetched
once from the npm registry into ~/.cache/flowql/graphiql (FLOWQL_GRAPHIQL_CACHE to move it).
Outside CI a missing piece skips the browser test with the reason; in CI it fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from flowql import graphiql
from flowql.settings import Settings
from tests.conftest import IN_CI, Factory, LiveServer
from tests.engine.conftest import create_workflow, execute, wait_status

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CACHE = Path(os.environ.get("FLOWQL_GRAPHIQL_CACHE", Path.home() / ".cache/flowql/graphiql"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(f"BROWSER TEST SKIPPED: {reason}")


@pytest.fixture(scope="session")
def graphiql_assets() -> Path:
    if graphiql.local_assets(Settings(graphiql_assets_dir=CACHE)) is None:
        if shutil.which("npm") is None:
            unavailable("npm is missing: GraphiQL's files cannot be fetched")
        try:
            graphiql.fetch_assets(CACHE)
        except RuntimeError as exc:
            unavailable(f"GraphiQL's files could not be fetched from the npm registry: {exc}")
    return CACHE


@pytest.fixture
def settings(settings: Settings, graphiql_assets: Path) -> Settings:
    return settings.model_copy(update={"graphiql_assets_dir": graphiql_assets})


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_graphiql_is_served_with_local_files_that_match_their_integrity_hashes(
    server: LiveServer,
) -> None:
    page = await server.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "https://unpkg.com" not in page.text
    for path, integrity in graphiql.assets().items():
        assert f'"{graphiql.PREFIX}{path}"' in page.text
        served = await server.client.get(graphiql.PREFIX + path)
        assert served.status_code == 200, path
        algorithm, _, digest = integrity.partition("-")
        assert base64.b64encode(hashlib.new(algorithm, served.content).digest()).decode() == digest
    assert (await server.client.get(graphiql.PREFIX + "../settings.py")).status_code == 404


async def set_editor(page: Any, selector: str, text: str) -> None:
    """Replace an editor's text as a person would: click in, select all, type (no auto-close)."""
    await page.locator(selector).first.click()
    await page.keyboard.press("Control+A")
    await page.keyboard.press("Delete")
    await page.keyboard.insert_text(text)


async def run(page: Any, query: str, expect: str, timeout: float = 20_000) -> str:
    await set_editor(page, ".graphiql-query-editor .CodeMirror", query)
    await page.wait_for_timeout(500)  # GraphiQL parses the edited document after a debounce
    await page.locator(".graphiql-execute-button").click()
    response = page.locator(".graphiql-response")
    await response.get_by_text(expect).first.wait_for(timeout=timeout)
    text: str = await response.inner_text()
    return text


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_graphiql_runs_a_query_and_a_live_subscription_in_chromium(
    server: LiveServer, factory: Factory
) -> None:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    account = await factory.account()
    workflow = await create_workflow(
        server,
        account.token,
        "watched in a browser",
        [
            {"name": "wait", "type": "delay", "options": {"seconds": 2}},
            {
                "name": "done",
                "type": "transform",
                "sources": ["wait"],
                "options": {"payload": {"ok": True}},
            },
        ],
    )
    outside: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            sockets: list[str] = []
            page.on("websocket", lambda ws: sockets.append(ws.url))

            async def only_flowql(route: Any) -> None:
                if route.request.url.startswith(server.url):
                    await route.continue_()
                else:
                    outside.append(route.request.url)
                    await route.abort()

            await page.route("**/*", only_flowql)
            await page.goto(f"{server.url}/graphql")
            await page.locator(".graphiql-query-editor .CodeMirror").wait_for(timeout=30_000)

            await page.get_by_text("Headers", exact=True).click()
            headers = f'{{"Authorization": "Bearer {account.token}"}}'
            await set_editor(page, ".graphiql-editor-tool .graphiql-editor:not(.hidden)", headers)

            viewer = await run(page, "query Me { viewer { user { email } } }", account.email)
            assert account.email in viewer

            process = await execute(server, account.token, workflow["id"], wait=False)
            await wait_status(server, account.token, process["id"], {"RUNNING", "WAITING"})
            subscription = (
                f'subscription Watch {{ processUpdated(id: "{process["id"]}") {{ id status }} }}'
            )
            live = await run(page, subscription, "RUNNING")  # the process, while it waits
            assert process["id"] in live
            await (
                page.locator(".graphiql-response").get_by_text("COMPLETED").wait_for(timeout=20_000)
            )
            assert sockets == [server.url.replace("http", "ws", 1) + "/graphql"]
            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "graphiql.png"), full_page=True)
        finally:
            await browser.close()
    assert outside == []

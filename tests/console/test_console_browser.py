"""The console in a real headless Chromium (Python Playwright driving Debian's /usr/bin/chromium,
as tests/subscriptions/test_graphiql_browser.py does), against one real flowql server per module:
sign in, a process started by a real webhook call appears live and turns COMPLETED without a
reload, its steps and messages, a failed one retried, the workflow diagram, the health view, and
a member refused by the API (its message shown, the page intact). Nothing loads from outside
flowql, and the page breaks no CSP rule. Screenshots go to test-artifacts/console/.

Outside CI a missing Chromium or playwright skips these tests with the reason; in CI they fail.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlmodel import select

from flowql.models import Role, User, Workspace
from flowql.services.workspaces import add_member
from tests.conftest import IN_CI, PASSWORD, Account, Factory, LiveServer
from tests.console.conftest import Target, serve
from tests.engine.conftest import create_workflow, execute, wait_status
from tests.scenarios.conftest import ScenarioClient

pytestmark = pytest.mark.asyncio(loop_scope="module")

CHROMIUM = "/usr/bin/chromium"  # Debian's (scripts/test installs it when CI=true)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
WAIT = 20_000  # ms: every wait is for a condition, bounded by this
PAGE = 25  # the console's page size (app.js)


def unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(f"BROWSER TEST SKIPPED: {reason}")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chromium() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


@dataclass
class Tab:
    page: Any
    outside: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    async def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest_asyncio.fixture(loop_scope="module")
async def tab(
    chromium: Any, console_server: LiveServer, request: pytest.FixtureRequest
) -> AsyncIterator[Tab]:
    """A fresh browser context (no shared storage) that may reach flowql only; console errors,
    uncaught exceptions and CSP violations are collected and must stay empty."""
    context = await chromium.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    tab = Tab(page)

    async def only_flowql(route: Any) -> None:
        if route.request.url.startswith(console_server.url):
            await route.continue_()
        else:
            tab.outside.append(route.request.url)
            await route.abort()

    await page.route("**/*", only_flowql)
    page.on("pageerror", lambda error: tab.problems.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            tab.problems.append(f"console {message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    yield tab
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        await tab.shot(f"FAILED-{request.node.name}")
    await context.close()
    assert tab.outside == []
    assert tab.problems == []


async def sign_in(tab: Tab, server: LiveServer, account: Account, hash: str = "") -> None:
    """With the keyboard only: the email field has focus, Tab to the password, Enter."""
    page = tab.page
    await page.goto(f"{server.url}/{hash}")
    await page.get_by_label("Email").wait_for(timeout=WAIT)
    assert await page.evaluate("document.activeElement.id") == "email"
    await page.keyboard.type(account.email)
    await page.keyboard.press("Tab")
    await page.keyboard.type(PASSWORD)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Sign out").wait_for(timeout=WAIT)


async def test_sign_in_failure_then_live_process_steps_messages_and_sign_out(
    tab: Tab, console_server: LiveServer, console_factory: Factory
) -> None:
    page = tab.page
    account = await console_factory.account(workspace="Live console")
    workflow = await create_workflow(
        console_server,
        account.token,
        "greeter",
        [
            {"name": "inbox", "type": "webhook", "options": {"path": "leads"}},
            {"name": "wait", "type": "delay", "sources": ["inbox"], "options": {"seconds": 1}},
            {
                "name": "greet",
                "type": "transform",
                "sources": ["wait"],
                "options": {"payload": {"greeting": "Hello {{ message.name }}"}},
            },
        ],
    )

    await page.goto(console_server.url)
    await page.get_by_label("Email").fill(account.email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    refusal = page.get_by_role("alert")
    await refusal.wait_for(timeout=WAIT)
    assert "UNAUTHORIZED" in await refusal.inner_text()
    await tab.shot("sign-in-refused")

    await sign_in(tab, console_server, account)
    live = page.locator(".live")
    await page.locator(".live", has_text="live").wait_for(timeout=WAIT)
    assert await live.inner_text() == "live"
    assert await page.get_by_label("Workspace").input_value() == str(account.workspace_id)
    await page.evaluate("window.__notReloaded = true")

    response = await console_server.client.post(
        f"/hooks/{workflow['id']}/leads", json={"name": "Ada"}
    )
    assert response.status_code == 202
    process_id = response.json()["process_id"]
    row = page.locator(f'#process-rows tr[data-id="{process_id}"]')
    await row.wait_for(timeout=WAIT)
    assert "greeter" in await row.inner_text() and "webhook" in await row.inner_text()
    await page.locator(
        f'#process-rows tr[data-id="{process_id}"][data-status="COMPLETED"]'
    ).wait_for(timeout=WAIT)
    assert await page.evaluate("window.__notReloaded === true")
    await tab.shot("processes")

    # Filter by status: the completed process stays, a FAILED filter hides it.
    await page.get_by_label("Status").select_option("FAILED")
    await page.locator(".empty", has_text="No processes match these filters.").wait_for(
        timeout=WAIT
    )
    assert "status=FAILED" in page.url
    await page.get_by_label("Status").select_option("")
    await row.wait_for(timeout=WAIT)

    await row.get_by_role("link").click()
    await page.locator("#process-title").wait_for(timeout=WAIT)
    steps = page.get_by_role("table", name="Steps")
    await steps.locator("tr", has_text="greet").wait_for(timeout=WAIT)
    text = await steps.inner_text()
    for agent in ("inbox", "wait", "greet"):
        assert agent in text
    messages = page.locator(".messages")
    await messages.get_by_text('"greeting": "Hello Ada"').wait_for(timeout=WAIT)
    assert '"name": "Ada"' in await messages.inner_text()
    await page.locator("#logs li").first.wait_for(timeout=WAIT)
    await tab.shot("process-detail")
    assert await page.evaluate("window.__notReloaded === true")

    # The tokens were never written anywhere the page keeps.
    stored = await page.evaluate(
        "[localStorage.length, sessionStorage.length, document.cookie.length]"
    )
    assert stored == [0, 0, 0]
    await page.get_by_role("button", name="Sign out").click()
    await page.get_by_label("Email").wait_for(timeout=WAIT)
    await page.wait_for_function("!document.body.innerText.includes('greeter')", timeout=WAIT)


async def test_a_failed_process_is_retried_from_its_page(
    tab: Tab, console_server: LiveServer, console_factory: Factory, console_target: Target
) -> None:
    page = tab.page
    account = await console_factory.account()
    console_target.always_fail.add("/flaky")
    workflow = await create_workflow(
        console_server,
        account.token,
        "notifier",
        [
            {"name": "inbox", "type": "webhook", "options": {"path": "in"}},
            {
                "name": "notify",
                "type": "http_request",
                "sources": ["inbox"],
                "options": {"url": console_target.url + "/flaky", "method": "POST"},
            },
        ],
    )
    response = await console_server.client.post(f"/hooks/{workflow['id']}/in", json={"n": 1})
    process_id = response.json()["process_id"]
    await wait_status(console_server, account.token, process_id, {"FAILED"})

    await sign_in(tab, console_server, account, f"#/processes/{process_id}")
    await page.locator("#process-title").wait_for(timeout=WAIT)
    await page.locator("main .badge", has_text="FAILED").first.wait_for(timeout=WAIT)
    failed_step = page.get_by_role("table", name="Steps").locator('tr[data-status="FAILED"]')
    await failed_step.wait_for(timeout=WAIT)
    assert "notify" in await failed_step.inner_text()
    await tab.shot("process-failed")

    console_target.always_fail.discard("/flaky")
    await page.get_by_role("button", name="Retry").click()
    await page.locator("#process-title ~ .badge", has_text="COMPLETED").wait_for(timeout=WAIT)
    assert await page.get_by_role("button", name="Retry").count() == 0
    await page.locator("#logs li", has_text="process completed").wait_for(timeout=WAIT)
    await page.locator(".messages li").nth(1).wait_for(timeout=WAIT)  # notify's answer
    await tab.shot("process-retried")
    assert len(console_target.hits("/flaky")) == 2


async def test_the_workflow_view_draws_its_agents_and_their_last_status(
    tab: Tab, console_server: LiveServer, console_factory: Factory
) -> None:
    page = tab.page
    account = await console_factory.account()
    workflow = await create_workflow(
        console_server,
        account.token,
        "pipeline",
        [
            {"name": "inbox", "type": "webhook", "options": {"path": "p"}},
            {
                "name": "left",
                "type": "transform",
                "sources": ["inbox"],
                "options": {"payload": {"a": 1}},
            },
            {
                "name": "right",
                "type": "transform",
                "sources": ["inbox"],
                "options": {"payload": {"b": 2}},
            },
            {
                "name": "join",
                "type": "transform",
                "sources": ["left", "right"],
                "options": {"payload": {"c": 3}},
            },
        ],
    )
    response = await console_server.client.post(f"/hooks/{workflow['id']}/p", json={})
    await wait_status(console_server, account.token, response.json()["process_id"], {"COMPLETED"})

    await sign_in(tab, console_server, account, "#/workflows")
    await page.get_by_role("link", name="pipeline").click()
    diagram = page.locator("svg.diagram")
    await diagram.wait_for(timeout=WAIT)
    names = await diagram.locator("g.node").evaluate_all("nodes => nodes.map(n => n.dataset.agent)")
    assert sorted(names) == ["inbox", "join", "left", "right"]
    assert await diagram.locator("path.edge").count() == 4
    assert await diagram.locator('g.node.trigger[data-agent="inbox"]').count() == 1
    assert await diagram.locator("g.node.status-completed").count() == 4
    # Layers: inbox left of left/right, left of join.
    x = {
        name: (await diagram.locator(f'g.node[data-agent="{name}"]').bounding_box())["x"]
        for name in names
    }
    assert x["inbox"] < x["left"] == x["right"] < x["join"]
    chart = page.locator("svg.chart-svg")
    await chart.wait_for(timeout=WAIT)
    assert await chart.locator("rect.bar.completed").count() == 1
    await tab.shot("workflow")


async def failed_delivery(server: LiveServer, owner: Account, target: Target) -> None:
    """An outgoing webhook whose receiver answers 500, and a process that triggers it; returns
    once the API reports the delivery failed."""
    target.always_fail.add("/receiver")
    await server.gql(
        """mutation($input: CreateWebhookSubscriptionInput!) {
          createWebhookSubscription(input: $input) { id } }""",
        {
            "input": {
                "url": target.url + "/receiver",
                "events": ["process.completed"],
                "secret": "console-must-not-show-this",
            }
        },
        token=owner.token,
    )
    done = await create_workflow(
        server,
        owner.token,
        "announced",
        [{"name": "t", "type": "transform", "options": {"payload": {"ok": True}}}],
    )
    await execute(server, owner.token, done["id"])
    deadline = asyncio.get_running_loop().time() + 20
    query = """query($ws: UUID!) { health(workspaceId: $ws) { failedDeliveries { id } } }"""
    while True:
        body = await server.gql(query, {"ws": str(owner.workspace_id)}, token=owner.token)
        if body["data"]["health"]["failedDeliveries"]:
            return
        assert asyncio.get_running_loop().time() < deadline, "no delivery failed"
        await asyncio.sleep(0.1)


async def test_health_for_an_owner_and_the_apis_refusal_for_a_member(
    tab: Tab, console_server: LiveServer, console_factory: Factory, console_target: Target
) -> None:
    page = tab.page
    owner = await console_factory.account(workspace="Operated")
    await create_workflow(
        console_server,
        owner.token,
        "nightly",
        [{"name": "tick", "type": "schedule", "options": {"cron": "0 3 * * *"}}],
    )
    await failed_delivery(console_server, owner, console_target)
    member = await console_factory.account(join=owner.workspace_id, role=Role.MEMBER)

    await sign_in(tab, console_server, owner, "#/health")
    await page.get_by_role("heading", name="Health").wait_for(timeout=WAIT)
    await page.locator("#queue-depth").wait_for(timeout=WAIT)
    triggers = page.get_by_role("table", name="Scheduled triggers")
    await triggers.wait_for(timeout=WAIT)
    assert "nightly" in await triggers.inner_text()
    assert "inline" in await page.get_by_role("table", name="Workers").inner_text()
    deliveries = page.get_by_role("table", name="Failed webhook deliveries")
    assert "process.completed" in await deliveries.inner_text()
    assert "500" in await deliveries.inner_text()
    assert "console-must-not-show-this" not in await page.content()
    await tab.shot("health")
    await page.get_by_role("button", name="Sign out").click()

    await sign_in(tab, console_server, member, "#/health")
    refusal = page.get_by_role("alert")
    await refusal.wait_for(timeout=WAIT)
    assert await refusal.inner_text() == "FORBIDDEN missing privilege audit:read"
    await tab.shot("health-forbidden")
    # The rest of the console still works for the member.
    await page.get_by_role("link", name="Processes").click()
    await page.locator(".live", has_text="live").wait_for(timeout=WAIT)
    await page.locator("#process-rows tr", has_text="announced").wait_for(timeout=WAIT)


async def test_a_scenario_process_shows_its_state_actions_and_hash_chained_history(
    tab: Tab, console_server: LiveServer, console_factory: Factory
) -> None:
    page = tab.page
    account = await console_factory.account()
    scenarios = ScenarioClient(console_server)
    scenario = await scenarios.store_file(account.token, "basics")
    actors = {"actor": {"userId": str(account.user_id)}}
    process = await scenarios.start(account.token, scenario["id"], actors)
    assert process["current"]["key"] == "initial"

    await sign_in(tab, console_server, account, f"#/processes/{process['id']}")
    await page.get_by_text("Current state:").wait_for(timeout=WAIT)
    history = page.get_by_role("table", name="History")
    before = await history.locator("tbody tr").count()
    await page.get_by_role("button", name="complete").click()
    await history.locator("tbody tr").nth(before).wait_for(timeout=WAIT)
    await page.get_by_text("(end)").wait_for(timeout=WAIT)
    rows = await history.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.title || c.textContent))"
    )
    # Each event's previous hash is the hash of the event before it.
    for earlier, later in itertools.pairwise(rows):
        assert later[4] == earlier[3]
    assert rows[-1][2] == "complete"
    await tab.shot("scenario-process")


async def test_workspace_switcher_and_cursor_paging(
    tab: Tab, console_server: LiveServer, console_factory: Factory
) -> None:
    page = tab.page
    account = await console_factory.account(workspace="First")
    second = await console_factory.account(workspace="Second")
    many = await create_workflow(
        console_server,
        account.token,
        "many",
        [{"name": "t", "type": "transform", "options": {"payload": {"ok": True}}}],
    )
    for _ in range(PAGE + 2):
        await execute(console_server, account.token, many["id"], wait=False)
    other = await create_workflow(
        console_server,
        second.token,
        "elsewhere",
        [{"name": "t", "type": "transform", "options": {"payload": {"ok": True}}}],
    )
    await execute(console_server, second.token, other["id"])
    # The account also joins the second workspace.
    async with console_server.runtime.db.transaction() as session:
        user = (await session.exec(select(User).where(User.id == account.user_id))).one()
        ws = (
            await session.exec(select(Workspace).where(Workspace.id == second.workspace_id))
        ).one()
        await add_member(session, ws, user, Role.MEMBER)

    await sign_in(tab, console_server, account)
    rows = page.locator("#process-rows tr")
    await rows.nth(PAGE - 1).wait_for(timeout=WAIT)
    assert await rows.count() == PAGE
    await page.get_by_role("button", name="Load more").click()
    await rows.nth(PAGE + 1).wait_for(timeout=WAIT)
    assert await rows.count() == PAGE + 2
    assert not await page.get_by_role("button", name="Load more").is_visible()
    numbers = await rows.evaluate_all(
        "rows => rows.map(r => Number(r.cells[0].innerText.slice(1)))"
    )
    assert numbers == sorted(numbers, reverse=True) and len(set(numbers)) == PAGE + 2

    await page.get_by_label("Workspace").select_option(label="Second")
    await page.locator("#process-rows tr", has_text="elsewhere").wait_for(timeout=WAIT)
    assert await rows.count() == 1
    await tab.shot("workspace-switched")


async def test_a_running_process_is_cancelled_from_its_page(
    tab: Tab, console_server: LiveServer, console_factory: Factory
) -> None:
    page = tab.page
    account = await console_factory.account()
    workflow = await create_workflow(
        console_server,
        account.token,
        "slow",
        [
            {"name": "inbox", "type": "webhook", "options": {"path": "slow"}},
            {"name": "wait", "type": "delay", "sources": ["inbox"], "options": {"seconds": 60}},
        ],
    )
    response = await console_server.client.post(f"/hooks/{workflow['id']}/slow", json={})
    process_id = response.json()["process_id"]
    await wait_status(console_server, account.token, process_id, {"WAITING", "RUNNING"})

    await sign_in(tab, console_server, account, f"#/processes/{process_id}")
    await page.get_by_role("button", name="Cancel").click()
    await page.locator("#process-title ~ .badge", has_text="CANCELLED").wait_for(timeout=WAIT)
    await page.get_by_role("button", name="Retry").wait_for(timeout=WAIT)
    assert await page.get_by_role("button", name="Cancel").count() == 0
    detail = await wait_status(console_server, account.token, process_id, {"CANCELLED"})
    assert detail["status"] == "CANCELLED"
    await tab.shot("process-cancelled")


async def test_the_session_is_refreshed_before_its_access_token_expires(
    chromium: Any, sqlite_template: Path, tmp_path: Path
) -> None:
    """Access tokens live 10 s here: the page rotates them with `refreshToken` before they
    expire, and the live list still follows processes after the first token has expired."""
    async with serve(sqlite_template, tmp_path, access_token_ttl=10) as server:
        account = await Factory(server.runtime).account()
        workflow = await create_workflow(
            server,
            account.token,
            "later",
            [{"name": "inbox", "type": "webhook", "options": {"path": "later"}}],
        )
        context = await chromium.new_context()
        try:
            tab = Tab(await context.new_page())
            tab.page.on("pageerror", lambda error: tab.problems.append(str(error)))
            await sign_in(tab, server, account)
            page = tab.page
            await page.locator(".live", has_text="live").wait_for(timeout=WAIT)
            async with page.expect_request(
                lambda r: r.method == "POST" and "refreshToken" in (r.post_data or ""),
                timeout=WAIT,
            ):
                pass
            await page.locator(".live", has_text="live").wait_for(timeout=WAIT)
            # Past the first token's expiry (10 s after sign-in): still signed in and live.
            await wait_expired(server, account.token)
            response = await server.client.post(f"/hooks/{workflow['id']}/later", json={})
            row = page.locator(f'#process-rows tr[data-id="{response.json()["process_id"]}"]')
            await row.wait_for(timeout=WAIT)
            assert await page.get_by_role("button", name="Sign out").is_visible()
            assert tab.problems == []
        finally:
            await context.close()


async def wait_expired(server: LiveServer, token: str) -> None:
    """Until the API refuses `token` (expired)."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        body = await server.gql("{ viewer { kind } }", token=token, expect_errors=True)
        if body.get("errors"):
            return
        assert asyncio.get_running_loop().time() < deadline, "the token did not expire"
        await asyncio.sleep(0.2)


async def test_logs_and_status_stream_into_an_open_process_page(
    tab: Tab, console_server: LiveServer, console_factory: Factory
) -> None:
    page = tab.page
    account = await console_factory.account()
    workflow = await create_workflow(
        console_server,
        account.token,
        "patient",
        [
            {"name": "inbox", "type": "webhook", "options": {"path": "patient"}},
            {"name": "wait", "type": "delay", "sources": ["inbox"], "options": {"seconds": 5}},
        ],
    )
    response = await console_server.client.post(f"/hooks/{workflow['id']}/patient", json={})
    process_id = response.json()["process_id"]
    await wait_status(console_server, account.token, process_id, {"WAITING", "RUNNING"})

    await sign_in(tab, console_server, account, f"#/processes/{process_id}")
    await page.locator("#logs li", has_text="waiting").wait_for(timeout=WAIT)
    # The page opened while the process waited; its end streams in without a reload.
    assert await page.locator("#process-title ~ .badge").inner_text() in {"WAITING", "RUNNING"}
    finished = page.locator("#logs li", has_text="process completed")
    assert await finished.count() == 0
    await page.evaluate("window.__notReloaded = true")
    await finished.wait_for(timeout=WAIT)
    await page.locator("#process-title ~ .badge", has_text="COMPLETED").wait_for(timeout=WAIT)
    assert await page.evaluate("window.__notReloaded === true")

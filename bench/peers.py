"""Peer run: the same three-node workflow in flowql, n8n and Node-RED, loaded with wrk.

    webhook/http in -> set a field ("greeting": "Hello <name>") -> respond with it

- flowql: `http` -> `transform` -> `respond`, a `flowql serve` process (this checkout, SQLite,
  inline dispatcher, rate limits off like the peers');
- n8n 1.123.81 (npm; SQLite; Webhook -> Set -> Respond to Webhook; N8N_RUNNERS_ENABLED=false),
  the workflow imported with `n8n import:workflow` and activated with `n8n update:workflow`;
- Node-RED 4 (npm; http in -> change -> http response), the flow given as its flows.json.

Each system runs alone (one at a time) on a loopback free port and is loaded with
`wrk -c N -d <duration> --timeout <timeout>` for N in 1, 8, 32, 64 after a short warm-up. One
table per run: system, whether every run is on record (and the records counted after the run for
the systems that keep them), good answers per second, p50, p99, timeouts and errors, and flowql's
ratios to n8n and to Node-RED at each concurrency. Not part of the test command; run by hand:

    .venv/bin/python -m bench.peers [--duration 10] [--connections 1,8,32,64]
        [--systems flowql,n8n,node-red] [--cache ~/.cache/flowql-peers]
        [--flowql-checkout /path/to/other/checkout:label ...]

The peers are installed from the npm registry into the cache directory (outside git) on first
use; wrk comes from the system (`apt-get install -y wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

N8N_VERSION = "1.123.81"
NODE_RED_VERSION = "4.1.8"  # 5.x wants Node >= 22.9
BODY = {"name": "wrk"}
EXPECTED = {"greeting": "Hello wrk"}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"name":"wrk"}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


# -- installation -------------------------------------------------------------------------------


def npm(args: list[str], cwd: Path) -> None:
    log(f"npm {' '.join(args)} (in {cwd})")
    subprocess.run(["npm", *args, "--no-audit", "--no-fund"], cwd=cwd, check=True)


def install_node_red(cache: Path) -> Path:
    home = cache / "node-red"
    red = home / "node_modules" / "node-red" / "red.js"
    if not red.exists():
        home.mkdir(parents=True, exist_ok=True)
        package = {"name": "flowql-peer-node-red", "private": True}
        package["dependencies"] = {"node-red": NODE_RED_VERSION}  # type: ignore[assignment]
        (home / "package.json").write_text(json.dumps(package))
        npm(["install"], home)
    return red


def install_n8n(cache: Path) -> Path:
    """n8n 2.x does not install on Node 20; 1.123.81 does with its scripts skipped, `xlsx`
    overridden (its own pin points outside the registry) and sqlite3's binary rebuilt."""
    home = cache / "n8n"
    binary = home / "node_modules" / "n8n" / "bin" / "n8n"
    if not binary.exists() or not (home / ".sqlite3-rebuilt").exists():
        home.mkdir(parents=True, exist_ok=True)
        package = {
            "name": "flowql-peer-n8n",
            "private": True,
            "dependencies": {"n8n": N8N_VERSION},
            "overrides": {"xlsx": "0.18.5"},
        }
        (home / "package.json").write_text(json.dumps(package))
        npm(["install", "--ignore-scripts"], home)
        npm(["rebuild", "sqlite3"], home)
        (home / ".sqlite3-rebuilt").touch()
    return binary


# -- the systems --------------------------------------------------------------------------------


@dataclass
class System:
    name: str
    on_record: bool
    url: str = ""
    records: int | None = None  # runs on record after the load, where the system keeps them
    count_records: object = None  # () -> int
    results: dict[int, dict[str, float]] = field(default_factory=dict)


def wait_ready(url: str, process: subprocess.Popen[bytes], seconds: float = 180) -> None:
    """Until the workflow answers its first request with the expected body."""
    deadline = time.monotonic() + seconds
    last = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}")
        try:
            response = httpx.post(url, json=BODY, timeout=10)
            if response.status_code == 200 and response.json() == EXPECTED:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except (httpx.HTTPError, ValueError) as exc:
            last = repr(exc)
        time.sleep(0.5)
    raise RuntimeError(f"{url} never answered as expected; last: {last}")


@contextlib.contextmanager
def running(
    command: list[str], env: dict[str, str], cwd: Path, logfile: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with logfile.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


THIS_CHECKOUT = Path(__file__).resolve().parent.parent


def flowql_env(tmp: Path, checkout: Path = THIS_CHECKOUT) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "FLOWQL_ENV": "development",
        "FLOWQL_DATA_DIR": str(tmp),
        "FLOWQL_DATABASE_URL": f"sqlite:///{tmp / 'flowql.db'}",
        "FLOWQL_SECRET_KEY": "peers" * 8,
        "FLOWQL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "FLOWQL_DEMO_ACCOUNTS": "false",
        "FLOWQL_RATE_LIMITS_ENABLED": "false",
    }


def flowql_workflow(env: dict[str, str]) -> str:
    """Create the account, workspace and workflow (as bench.engine does); its hook's path."""
    from bench.engine import setup
    from flowql.app import build_runtime
    from flowql.db import upgrade
    from flowql.settings import Settings

    settings = Settings(
        data_dir=Path(env["FLOWQL_DATA_DIR"]),
        database_url=env["FLOWQL_DATABASE_URL"],
        secret_key=env["FLOWQL_SECRET_KEY"],
        encryption_keys=env["FLOWQL_ENCRYPTION_KEYS"],
        demo_accounts=False,
    )
    upgrade(settings)

    async def create() -> str:
        runtime = build_runtime(settings)
        try:
            _, workflow_id, _ = await setup(runtime)
        finally:
            await runtime.db.dispose()
        return f"/hooks/{workflow_id}/bench"

    return asyncio.run(create())


@contextlib.contextmanager
def flowql(work: Path, checkout: Path = THIS_CHECKOUT, name: str = "flowql") -> Iterator[System]:
    """A `flowql serve` of `checkout` (this one unless given: `--flowql-checkout`), its
    account and workflow made by that checkout's own code."""
    tmp = work / name.replace(" ", "_").replace("(", "").replace(")", "")
    tmp.mkdir()
    env = flowql_env(tmp, checkout)
    if checkout == THIS_CHECKOUT:
        path = flowql_workflow(env)
    else:
        script = (
            "import os; from bench.peers import flowql_workflow as f; print(f(dict(os.environ)))"
        )
        made = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            cwd=checkout,
            capture_output=True,
            text=True,
            check=True,
        )
        path = made.stdout.strip().splitlines()[-1]
    port = free_port()
    command = [sys.executable, "-m", "flowql.cli", "serve", "--port", str(port)]
    command += ["--log-level", "warning"]
    with running(command, env, checkout, work / f"{tmp.name}.log") as process:
        url = f"http://127.0.0.1:{port}{path}"
        wait_ready(url, process)

        def count() -> int:
            with contextlib.closing(sqlite3.connect(tmp / "flowql.db")) as db:
                row = db.execute("select count(*) from processes where status = 'COMPLETED'")
                return int(row.fetchone()[0])

        yield System(name, on_record=True, url=url, count_records=count)


def n8n_workflow() -> dict[str, object]:
    def node(
        name: str, kind: str, version: float, x: int, **parameters: object
    ) -> dict[str, object]:
        return {
            "id": str(uuid.uuid4()),
            "name": name,
            "type": f"n8n-nodes-base.{kind}",
            "typeVersion": version,
            "position": [x, 0],
            "parameters": parameters,
        }

    webhook = node(
        "Webhook", "webhook", 2, 0, httpMethod="POST", path="bench", responseMode="responseNode",
        options={},
    )  # fmt: skip
    webhook["webhookId"] = str(uuid.uuid4())
    assignment = {
        "id": str(uuid.uuid4()),
        "name": "greeting",
        "value": "=Hello {{ $json.body.name }}",
        "type": "string",
    }
    set_node = node("Set", "set", 3.4, 220, assignments={"assignments": [assignment]}, options={})
    respond = node("Respond", "respondToWebhook", 1.1, 440, respondWith="firstIncomingItem")
    respond["parameters"]["options"] = {}  # type: ignore[index]

    def to(target: str) -> dict[str, object]:
        return {"main": [[{"node": target, "type": "main", "index": 0}]]}

    return {
        "id": "flowqlPeerBench1",
        "name": "flowql peer bench",
        "active": False,
        "nodes": [webhook, set_node, respond],
        "connections": {"Webhook": to("Set"), "Set": to("Respond")},
        "settings": {"executionOrder": "v1"},
        "pinData": {},
    }


@contextlib.contextmanager
def n8n(work: Path, cache: Path) -> Iterator[System]:
    binary = install_n8n(cache)
    home = work / "n8n"
    home.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "N8N_USER_FOLDER": str(home),
        "N8N_PORT": str(port),
        "N8N_LISTEN_ADDRESS": "127.0.0.1",
        "N8N_HOST": "127.0.0.1",
        "DB_TYPE": "sqlite",
        "N8N_RUNNERS_ENABLED": "false",
        # The "vm" engine needs isolated-vm built natively, which --ignore-scripts skipped.
        "N8N_EXPRESSION_ENGINE": "legacy",
        "N8N_DIAGNOSTICS_ENABLED": "false",
        "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
        "N8N_TEMPLATES_ENABLED": "false",
        "N8N_PERSONALIZATION_ENABLED": "false",
        "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
        "N8N_LOG_LEVEL": "warn",
        "EXECUTIONS_MODE": "regular",
    }
    workflow = n8n_workflow()
    (home / "workflow.json").write_text(json.dumps(workflow))
    cli = ["node", str(binary)]
    with (work / "n8n-setup.log").open("wb") as out:
        for args in (
            ["import:workflow", f"--input={home / 'workflow.json'}"],
            ["update:workflow", f"--id={workflow['id']}", "--active=true"],
        ):
            log(f"n8n {args[0]}")
            subprocess.run([*cli, *args], env=env, cwd=home, stdout=out, stderr=out, check=True)
    with running([*cli, "start"], env, home, work / "n8n.log") as process:
        url = f"http://127.0.0.1:{port}/webhook/bench"
        wait_ready(url, process)

        def count() -> int:
            database = home / ".n8n" / "database.sqlite"
            with contextlib.closing(sqlite3.connect(database)) as db:
                row = db.execute("select count(*) from execution_entity where status = 'success'")
                return int(row.fetchone()[0])

        yield System("n8n", on_record=True, url=url, count_records=count)


@contextlib.contextmanager
def node_red(work: Path, cache: Path) -> Iterator[System]:
    red = install_node_red(cache)
    home = work / "node-red"
    home.mkdir()
    port = free_port()
    flows = [
        {"id": "b0", "type": "tab", "label": "bench"},
        {
            "id": "b1",
            "type": "http in",
            "z": "b0",
            "url": "/bench",
            "method": "post",
            "upload": False,
            "swaggerDoc": "",
            "wires": [["b2"]],
        },
        {
            "id": "b2",
            "type": "change",
            "z": "b0",
            "rules": [
                {
                    "t": "set",
                    "p": "payload",
                    "pt": "msg",
                    "to": '{"greeting": "Hello " & payload.name}',
                    "tot": "jsonata",
                }
            ],
            "wires": [["b3"]],
        },
        {"id": "b3", "type": "http response", "z": "b0", "statusCode": "200", "headers": {}},
    ]
    (home / "flows.json").write_text(json.dumps(flows))
    (home / "settings.js").write_text(
        "module.exports = {"
        f" uiHost: '127.0.0.1', uiPort: {port}, flowFile: 'flows.json', httpAdminRoot: false,"
        " credentialSecret: false, logging: { console: { level: 'warn' } } };\n"
    )
    command = ["node", str(red), "--userDir", str(home), "--settings", str(home / "settings.js")]
    with running(command, dict(os.environ), home, work / "node-red.log") as process:
        url = f"http://127.0.0.1:{port}/bench"
        wait_ready(url, process)
        yield System("Node-RED", on_record=False, url=url)


# -- load ---------------------------------------------------------------------------------------


def wrk(
    url: str, connections: int, seconds: float, timeout: float, script: Path
) -> dict[str, float]:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    command += [f"--timeout={timeout}s", "-s", str(script), url]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    raw = json.loads(line.removeprefix("WRKJSON "))
    seconds_taken = raw["duration_us"] / 1e6
    good = raw["requests"] - raw["status"]
    errors = raw["connect"] + raw["read"] + raw["write"] + raw["status"]
    return {
        "rps": good / seconds_taken,
        "p50": raw["p50_us"] / 1000,
        "p99": raw["p99_us"] / 1000,
        "answered": good,
        "timeouts": raw["timeout"],
        "errors": errors,
    }


def load(system: System, args: argparse.Namespace, script: Path) -> None:
    log(f"{system.name}: warm-up")
    wrk(system.url, 8, args.warmup, args.timeout, script)
    before = system.count_records() if callable(system.count_records) else None
    answered = 0
    for connections in args.connections:
        log(f"{system.name}: -c{connections} for {args.duration}s")
        result = wrk(system.url, connections, args.duration, args.timeout, script)
        system.results[connections] = result
        answered += int(result["answered"])
    if callable(system.count_records) and before is not None:
        deadline = time.monotonic() + 30  # runs still finishing after their answer
        while True:
            system.records = int(system.count_records()) - before
            if system.records >= answered or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    system.results[0] = {"answered": answered}


# -- report -------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.1f} ms"


def table(systems: list[System], args: argparse.Namespace) -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    lines = [
        f"peer run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} x {cpu},"
        f" 1-min load average at start {args.load_before:.2f}; wrk -d{args.duration}s"
        f" --timeout {args.timeout:g}s; workflow: webhook -> set a field -> respond",
        "",
        "| system | every run on record | conns | req/s | p50 | p99 | timeouts | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for system in systems:
        record = "yes" if system.on_record else "no"
        if system.records is not None:
            record += f" ({system.records} runs for {int(system.results[0]['answered'])} answers)"
        for connections in args.connections:
            r = system.results[connections]
            beyond = f"> {ms(args.timeout * 1000)}"
            p99 = beyond if r["timeouts"] else ms(r["p99"])
            # wrk records no latency for a request past its timeout: none recorded, none under.
            p50 = beyond if r["timeouts"] and not r["p50"] else ms(r["p50"])
            lines.append(
                f"| {system.name} | {record} | {connections} | {r['rps']:,.1f} | {p50}"
                f" | {p99} | {int(r['timeouts'])} | {int(r['errors'])} |"
            )
    by_name = {s.name: s for s in systems}
    for ours in [s for s in systems if s.name.startswith("flowql")]:
        lines += [
            "",
            f"| conns | {ours.name} / n8n req/s | {ours.name} / Node-RED req/s |",
            "|---|---|---|",
        ]
        for connections in args.connections:
            cells = []
            for peer in ("n8n", "Node-RED"):
                other = by_name.get(peer)
                if other is None or not other.results[connections]["rps"]:
                    cells.append("-")
                else:
                    ratio = ours.results[connections]["rps"] / other.results[connections]["rps"]
                    cells.append(f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.4f}x")
            lines.append(f"| {connections} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    args.load_before = os.getloadavg()[0]
    cache = Path(args.cache).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    systems: list[System] = []
    with tempfile.TemporaryDirectory(prefix="flowql-peers-") as tmp:
        work = Path(tmp)
        script = work / "post.lua"
        script.write_text(WRK_SCRIPT)
        starters: dict[str, Callable[[], contextlib.AbstractContextManager[System]]] = {
            "flowql": lambda: flowql(work),
            "n8n": lambda: n8n(work, cache),
            "node-red": lambda: node_red(work, cache),
        }
        names = list(args.systems)
        for checkout, label in args.flowql_checkout:
            key = f"flowql ({label})"
            starters[key] = functools.partial(flowql, work, checkout, key)
            names.insert(names.index("flowql") if "flowql" in names else 0, key)
        if args.flowql_checkout and "flowql" in names:
            starters["flowql (this)"] = functools.partial(
                flowql, work, THIS_CHECKOUT, "flowql (this)"
            )
            names[names.index("flowql")] = "flowql (this)"
        for name in names:
            log(f"{name}: starting")
            try:
                with starters[name]() as system:
                    load(system, args, script)
                    systems.append(system)
            except Exception:
                for logfile in sorted(work.glob("*.log")):
                    sys.stderr.write(f"--- {logfile.name} (tail)\n")
                    sys.stderr.write(logfile.read_text(errors="replace")[-3000:])
                raise
    print(table(systems, args))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per concurrency level")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up at -c8")
    parser.add_argument("--timeout", type=float, default=2, help="wrk's request timeout, seconds")
    parser.add_argument(
        "--connections", default="1,8,32,64", type=lambda s: [int(x) for x in s.split(",")]
    )
    parser.add_argument(
        "--systems", default="flowql,n8n,node-red", type=lambda s: [x.strip() for x in s.split(",")]
    )
    parser.add_argument(
        "--cache", default=os.environ.get("FLOWQL_PEERS_CACHE", "~/.cache/flowql-peers")
    )
    parser.add_argument(
        "--flowql-checkout",
        action="append",
        default=[],
        metavar="PATH[:LABEL]",
        help="also run flowql from another checkout (e.g. /work/wt/base:base), before this one;\n"
        "the table then shows flowql (LABEL) and flowql (this) side by side",
    )
    args = parser.parse_args(argv)
    args.flowql_checkout = [
        (Path(p).resolve(), label or Path(p).name)
        for p, _, label in (item.partition(":") for item in args.flowql_checkout)
    ]
    unknown = set(args.systems) - {"flowql", "n8n", "node-red"}
    if unknown:
        parser.error(f"unknown systems: {', '.join(sorted(unknown))}")
    return args


if __name__ == "__main__":
    main(parse())

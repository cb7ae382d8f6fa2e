"""GraphiQL works offline by default: its files ship with flowql and /graphql's page loads them
from this server; a configured asset folder that does not exist (or lacks a file) stops the
server at start instead of silently falling back to the CDN."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import tomllib
from pathlib import Path

import pytest

from flowql import graphiql
from flowql.app import create_app
from flowql.settings import Exposure, SettingsError
from tests.conftest import LiveServer, make_settings
from tests.test_cli import COMMAND_TIMEOUT, FLOWQL, ROOT


def digest_of(data: bytes, integrity: str) -> bool:
    algorithm, _, digest = integrity.partition("-")
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode() == digest


def test_the_bundled_files_are_every_file_the_page_loads_and_match_its_hashes() -> None:
    for path, integrity in graphiql.assets().items():
        assert digest_of((graphiql.BUNDLED / path).read_bytes(), integrity), path
    shipped = {
        str(p.relative_to(graphiql.BUNDLED))
        for p in graphiql.BUNDLED.rglob("*")
        if p.is_file() and p.suffix in (".js", ".css")
    }
    assert shipped == set(graphiql.assets())  # nothing the page does not load


def test_the_bundled_files_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["flowql"]
    packaged = {
        str(p.relative_to(ROOT / "flowql"))
        for pattern in patterns
        for p in (ROOT / "flowql").glob(pattern)
    }
    for path in graphiql.assets():
        assert f"graphiql_assets/{path}" in packaged, path


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_by_default_the_page_and_its_files_come_from_this_server(
    server: LiveServer,
) -> None:
    assert server.runtime.settings.graphiql_assets_dir is None
    page = await server.client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "unpkg.com" not in page.text and "https://" not in page.text
    for path, integrity in graphiql.assets().items():
        assert f'"{graphiql.PREFIX}{path}"' in page.text
        served = await server.client.get(graphiql.PREFIX + path)
        assert served.status_code == 200, path
        assert digest_of(served.content, integrity), path


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_configured_folder_that_is_missing_or_incomplete_is_a_startup_error(
    database_url: str, tmp_path: Path
) -> None:
    missing = make_settings(database_url, tmp_path / "data", graphiql_assets_dir=tmp_path / "nope")
    with pytest.raises(SettingsError, match=r"FLOWQL_GRAPHIQL_ASSETS_DIR .* does not exist"):
        create_app(missing)

    partial = tmp_path / "partial"
    first = next(iter(graphiql.assets()))
    (partial / first).parent.mkdir(parents=True)
    (partial / first).write_bytes((graphiql.BUNDLED / first).read_bytes())
    incomplete = make_settings(database_url, tmp_path / "data", graphiql_assets_dir=partial)
    with pytest.raises(SettingsError, match="lacks 6 of the page's files"):
        create_app(incomplete)

    # GraphiQL off: no page, so no files needed.
    off = missing.model_copy(update={"graphiql": Exposure.OFF})
    create_app(off)


def test_flowql_serve_refuses_a_missing_asset_folder_before_announcing(
    tmp_path: Path,
) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQL_")}
    env |= {
        "FLOWQL_DATA_DIR": str(tmp_path / "data"),
        "FLOWQL_GRAPHIQL_ASSETS_DIR": str(tmp_path / "graphiql"),
    }
    result = subprocess.run(
        [FLOWQL, "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert result.returncode != 0
    assert "GraphiQL asset folder" in result.stderr and "does not exist" in result.stderr
    assert "serving" not in result.stdout and "Traceback" not in result.stderr

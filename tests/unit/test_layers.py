"""The import-linter contracts cover the whole package: every top-level module of flowql sits in
a layer, no contract carries exceptions, and the framework contracts name every room below the
edges (`lint-imports` then checks the imports themselves)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import flowql

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(flowql.__file__).parent


def contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    result: list[dict[str, Any]] = config["tool"]["importlinter"]["contracts"]
    return result


def layers() -> list[list[str]]:
    (contract,) = [c for c in contracts() if c["type"] == "layers"]
    assert contract["containers"] == ["flowql"]
    return [[room.strip() for room in layer.split("|")] for layer in contract["layers"]]


def top_level_modules() -> set[str]:
    names = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    return names


def test_every_top_level_module_sits_in_exactly_one_layer() -> None:
    placed = [room for layer in layers() for room in layer]
    assert len(placed) == len(set(placed))
    assert set(placed) == top_level_modules()


def test_no_contract_has_exceptions() -> None:
    assert all("ignore_imports" not in c for c in contracts())


def test_frameworks_stay_at_their_layers() -> None:
    rooms = layers()
    below_edges = [f"flowql.{room}" for layer in rooms[rooms.index(["schema"]) :] for room in layer]
    by_name = {tuple(c.get("forbidden_modules", ())): c for c in contracts()}
    assert sorted(by_name[("starlette",)]["source_modules"]) == sorted(below_edges)
    assert sorted(by_name[("strawberry",)]["source_modules"]) == sorted(below_edges[1:])

"""GraphiQL without the CDN: Strawberry's page, its files shipped with flowql.

Strawberry's GraphiQL page loads React, GraphiQL and its explorer plugin from unpkg.com, each
with a Subresource Integrity hash. flowql ships those exact files (flowql/graphiql_assets/,
package data) and serves the page with the CDN prefix pointing at /graphiql-assets/; the browser
still verifies every file against the same hashes. So /graphql works with no Internet and no
extra step. `FLOWQL_GRAPHIQL_ASSETS_DIR` serves them from another directory instead, which must
hold them all: a missing or incomplete one stops the server at start (SettingsError), it never
falls back to the CDN. `fetch_assets(dir)` takes the files from the npm registry (`npm pack`)
and checks them against the page's hashes: after a Strawberry upgrade changes them, run
`python -m flowql.graphiql fetch` to refresh the bundled copy. See
docs/decisions/005-graphiql-assets-offline.md.

Who gets the page is `FLOWQL_GRAPHIQL`: `on` (development default), `off` (production default:
404, and no assets), or `admins` (only requests carrying an owner's or admin's credential, e.g.
through a proxy that adds it). The schema itself is guarded apart from the page, by
`FLOWQL_GRAPHQL_INTROSPECTION` (flowql.schema.limits).

    python -m flowql.graphiql fetch [DIR]     # DIR defaults to flowql/graphiql_assets
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from functools import cache
from pathlib import Path

from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send
from strawberry.http.ides import get_graphql_ide_html

from flowql.auth.principal import ANONYMOUS, Principal
from flowql.schema.limits import admits
from flowql.settings import Exposure, Settings, SettingsError

CDN = "https://unpkg.com/"
BUNDLED = Path(__file__).resolve().parent / "graphiql_assets"
PREFIX = "/graphiql-assets/"
_ASSET = re.compile(r'(?:src|href)="https://unpkg\.com/([^"]+)"\s+integrity="([^"]+)"')
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@cache
def strawberry_page() -> str:
    return get_graphql_ide_html("graphiql")


@cache
def assets() -> dict[str, str]:
    """Path below the CDN (e.g. `react@18.2.0/umd/react.production.min.js`) -> its SRI hash."""
    return dict(_ASSET.findall(strawberry_page()))


def package_of(path: str) -> tuple[str, str]:
    """`@scope/name@1.0/dist/x.js` -> (`@scope/name@1.0`, `dist/x.js`)."""
    parts = path.split("/")
    cut = 2 if path.startswith("@") else 1
    return "/".join(parts[:cut]), "/".join(parts[cut:])


def assets_dir(settings: Settings) -> Path:
    return settings.graphiql_assets_dir or BUNDLED


def missing_assets(directory: Path) -> list[str]:
    return [path for path in assets() if not (directory / path).is_file()]


def local_assets(settings: Settings) -> Path | None:
    """The directory to serve GraphiQL's files from, if it holds all of them."""
    directory = assets_dir(settings)
    return None if missing_assets(directory) else directory


def check_assets(settings: Settings) -> None:
    """At start: the page's files must be there (unless GraphiQL is off). A configured folder
    that does not exist or lacks a file is a settings error, never a silent CDN fallback."""
    if settings.graphiql is Exposure.OFF:
        return
    directory = assets_dir(settings)
    configured = "FLOWQL_GRAPHIQL_ASSETS_DIR" if settings.graphiql_assets_dir else "flowql's"
    if not directory.is_dir():
        raise SettingsError(
            f"{configured} GraphiQL asset folder {str(directory)!r} does not exist "
            "(fill it with `python -m flowql.graphiql fetch DIR`, or unset it to use the files "
            "that ship with flowql)"
        )
    missing = missing_assets(directory)
    if missing:
        raise SettingsError(
            f"{configured} GraphiQL asset folder {str(directory)!r} lacks {len(missing)} of "
            f"the page's files, e.g. {missing[0]} (fill it with "
            "`python -m flowql.graphiql fetch DIR`)"
        )


def page(settings: Settings) -> str:
    html = strawberry_page()
    return html.replace(CDN, PREFIX) if local_assets(settings) else html


def integrity(data: bytes, expected: str) -> bool:
    algorithm, _, digest = expected.partition("-")
    actual = base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    return actual == digest


def fetch_assets(target: Path, npm: str = "npm") -> list[Path]:
    """Fetch every file the page loads from the npm registry into `target`; verify each."""
    executable = shutil.which(npm)
    if executable is None:
        raise RuntimeError(f"{npm} not found: it is needed to fetch GraphiQL's files")
    by_package: dict[str, list[str]] = {}
    for path in assets():
        package, _ = package_of(path)
        by_package.setdefault(package, []).append(path)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for package, paths in by_package.items():
            done = subprocess.run(  # noqa: S603 - fixed arguments, no shell
                [executable, "pack", package, "--pack-destination", tmp, "--silent"],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"npm pack {package} failed: {done.stderr.strip()[-500:]}")
            tarball = Path(tmp) / done.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as archive:
                for path in paths:
                    member = archive.extractfile(f"package/{package_of(path)[1]}")
                    if member is None:
                        raise RuntimeError(f"{path} is not in {package}")
                    data = member.read()
                    if not integrity(data, assets()[path]):
                        raise RuntimeError(f"{path} does not match the page's integrity hash")
                    destination = target / path
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    destination.write_bytes(data)
                    written.append(destination)
    return written


def wants_page(scope: Scope) -> bool:
    """What Strawberry answers with the page: a GET without `query` that accepts HTML."""
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    conn = HTTPConnection(scope)
    accept = conn.headers.get("accept", "")
    return "query" not in conn.query_params and ("text/html" in accept or "*/*" in accept)


class Gate:
    """In front of /graphql: the page only for whom `FLOWQL_GRAPHIQL` lets in (404 otherwise,
    as if there were none); every GraphQL request passes."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        principal: Principal = scope.get("state", {}).get("principal", ANONYMOUS)
        if wants_page(scope) and not admits(self.settings.graphiql or Exposure.ON, principal):
            await Response("Not Found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def routes(settings: Settings) -> list[Route]:
    check_assets(settings)

    async def serve(request: Request) -> Response:
        path = request.path_params["path"]
        directory = local_assets(settings)
        if settings.graphiql is Exposure.OFF or directory is None or path not in assets():
            return Response(status_code=404)
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        media_type = _TYPES.get(Path(path).suffix, "application/octet-stream")
        return FileResponse(directory / path, media_type=media_type, headers=headers)

    return [Route(PREFIX + "{path:path}", serve, methods=["GET", "HEAD"])]


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "fetch":
        print(__doc__)
        return 2
    target = Path(argv[1]) if len(argv) > 1 else assets_dir(Settings())
    for path in fetch_assets(target):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""flowql serve | worker | db upgrade | user create | apikey create | schema print."""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlmodel import col, select

from flowql.errors import DomainError
from flowql.settings import Settings, SettingsError

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from flowql.models import Workspace


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"FLOWQL_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from None
    return settings.with_generated_keys()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from flowql.app import create_app
    from flowql.db import create_database
    from flowql.engine.queue import prepare_database
    from flowql.logs import uvicorn_log_config
    from flowql.services.demo import ensure_demo_account
    from flowql.transport import tune_gc_for_serving

    settings = _settings()
    settings = settings.model_copy(
        update={"host": args.host or settings.host, "port": args.port or settings.port}
    )
    settings.check_startable()
    prepare_database(settings)
    if settings.demo_accounts:

        async def seed() -> None:
            db = create_database(settings)
            try:
                demo = await ensure_demo_account(db)
            finally:
                await db.dispose()
            print(
                f"flowql demo account: {demo.email} / {demo.password} (workspace {demo.workspace!r})\n"
                f'  log in: mutation {{ login(email: "{demo.email}", password: "{demo.password}")'
                " { accessToken } }",
                flush=True,
            )

        asyncio.run(seed())
    print(f"flowql serving GraphiQL at http://{settings.host}:{settings.port}/graphql", flush=True)
    app = create_app(settings, run_worker=not args.no_worker)
    tune_gc_for_serving()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        lifespan="on",
        ws="websockets-sansio",
        log_config=uvicorn_log_config(),  # every line, access log included, masks credentials
        proxy_headers=False,  # forwarded headers: flowql.middleware.ClientAddress, trusted only
        # uvicorn[standard]'s fast event loop and HTTP parser, named so that a missing one
        # fails at start instead of silently falling back to the slow pure-Python ones.
        loop="uvloop",
        http="httptools",
        access_log=args.access_log,
    )
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from flowql.engine.queue import prepare_database

    prepare_database(_settings())
    print("database is at the newest migration")
    return 0


async def _find_workspace(session: AsyncSession, ref: str) -> Workspace | None:
    """The workspace with this id, or else with this name. Names are not unique across tenants,
    so a name that several workspaces share is refused rather than guessed."""
    from flowql.errors import NotFound, ValidationFailed
    from flowql.models import Workspace

    try:
        workspace_id: uuid.UUID | None = uuid.UUID(ref)
    except ValueError:
        workspace_id = None
    if workspace_id is not None:
        found = (await session.exec(select(Workspace).where(Workspace.id == workspace_id))).first()
        if found is None:
            raise NotFound("Workspace")
        return found
    stmt = select(Workspace).where(Workspace.name == ref).order_by(col(Workspace.number)).limit(2)
    matches = (await session.exec(stmt)).all()
    if len(matches) > 1:
        raise ValidationFailed.one(
            "workspace", f"several workspaces are named {ref!r}; give the workspace id instead"
        )
    return matches[0] if matches else None


async def _user_create(args: argparse.Namespace) -> str:
    from flowql.db import create_database, upgrade
    from flowql.errors import ValidationFailed
    from flowql.models import Role
    from flowql.services.auth import create_user
    from flowql.services.workspaces import add_member, create_workspace

    settings = _settings()
    upgrade(settings)
    db = create_database(settings)
    try:
        async with db.transaction() as session:
            user = await create_user(session, args.email, args.password)
            role = Role(args.role)
            workspace = await _find_workspace(session, args.workspace) if args.workspace else None
            if args.workspace and workspace is None:
                if role is not Role.OWNER:
                    # Creating it would leave a workspace without an owner.
                    raise ValidationFailed.one(
                        "role",
                        f"workspace {args.workspace!r} does not exist; the user creating it "
                        "becomes its owner (use --role owner)",
                    )
                workspace = await create_workspace(session, user, args.workspace)
            elif workspace is not None:
                await add_member(session, workspace, user, role)
            return str(user.id)
    finally:
        await db.dispose()


def cmd_user_create(args: argparse.Namespace) -> int:
    user_id = asyncio.run(_user_create(args))
    print(user_id)
    return 0


async def _apikey_create(args: argparse.Namespace) -> str:
    from flowql.db import create_database, upgrade
    from flowql.errors import NotFound
    from flowql.models import Membership, Role
    from flowql.services.auth import create_api_key

    settings = _settings()
    upgrade(settings)
    db = create_database(settings)
    try:
        async with db.transaction() as session:
            workspace = await _find_workspace(session, args.workspace)
            if workspace is None:
                raise NotFound("Workspace")
            owner = (
                await session.exec(
                    select(Membership)
                    .where(Membership.workspace_id == workspace.id)
                    .where(Membership.role == Role.OWNER)
                    .order_by(col(Membership.number))
                )
            ).first()
            issued = await create_api_key(
                session,
                workspace.id,
                args.name,
                user_id=owner.user_id if owner else None,
                description=args.description or "",
                privileges=args.privilege or None,
            )
            return issued.token
    finally:
        await db.dispose()


def cmd_apikey_create(args: argparse.Namespace) -> int:
    token = asyncio.run(_apikey_create(args))
    print("API key created; it is shown only this once:", file=sys.stderr)
    print(token)
    return 0


def cmd_schema_print(args: argparse.Namespace) -> int:
    from flowql.schema import build_schema

    sdl = str(build_schema()) + "\n"
    if args.output:
        Path(args.output).write_text(sdl)
    else:
        sys.stdout.write(sdl)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from flowql.health import run_worker

    code: int = run_worker(
        _settings(),
        concurrency=args.concurrency,
        queues=args.queues,
        health_port=args.health_port,
        log_level=args.log_level,
    )
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowql", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server (and, by default, process workers)")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--no-worker", action="store_true", help="API only: run no processes")
    serve.add_argument("--log-level", default="info")
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log every request (a proxy in front usually does; off saves time per request)",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run procrastinate workers (PostgreSQL)")
    worker.add_argument("--concurrency", type=int, default=4)
    worker.add_argument(
        "--queues", nargs="*", default=None, help="processes and/or periodic (default: both)"
    )
    worker.add_argument("--health-port", type=int, default=None, help="serve /healthz, /readyz")
    worker.add_argument("--log-level", default="info")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser("db", help="database commands").add_subparsers(
        dest="db_command", required=True
    )
    db.add_parser("upgrade", help="apply every migration").set_defaults(func=cmd_db_upgrade)

    user = sub.add_parser("user", help="user commands").add_subparsers(
        dest="user_command", required=True
    )
    create = user.add_parser("create", help="create a user")
    create.add_argument("--email", required=True)
    create.add_argument("--password", required=True)
    create.add_argument(
        "--workspace", help="join (or create, as owner) this workspace: its name or id"
    )
    create.add_argument("--role", default="owner", choices=["owner", "admin", "member"])
    create.set_defaults(func=cmd_user_create)

    apikey = sub.add_parser("apikey", help="API key commands").add_subparsers(
        dest="apikey_command", required=True
    )
    key = apikey.add_parser("create", help="issue an API key; the key is the last line of stdout")
    key.add_argument("--workspace", required=True, help="the workspace's name or id")
    key.add_argument("--name", required=True)
    key.add_argument("--description", default="")
    key.add_argument("--privilege", action="append", help="repeatable; none given: all privileges")
    key.set_defaults(func=cmd_apikey_create)

    schema = sub.add_parser("schema", help="schema commands").add_subparsers(
        dest="schema_command", required=True
    )
    printer = schema.add_parser("print", help="print the GraphQL SDL")
    printer.add_argument("--output", "-o", help="write to this file instead of stdout")
    printer.set_defaults(func=cmd_schema_print)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (DomainError, SettingsError) as exc:
        print(f"flowql: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())

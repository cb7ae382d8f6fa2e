"""flowql: the GraphQL automation server and its operator's commands.

  serve             run the API server (and, by default, its process workers)
  worker            run procrastinate workers (PostgreSQL)
  db upgrade        apply every database migration
  user create       create a user (optionally joining or creating a workspace)
  user admin        make a user an instance admin (or stop: --off)
  apikey create     issue an API key for a workspace
  workspace plan    set a workspace's rate-limit plan (unlimited: none)
  schema print      print the GraphQL SDL

Settings come from FLOWQL_* environment variables (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import socket
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


class PortBusy(SettingsError):
    """The address `serve` would listen on is taken (or not this machine's)."""


def port_free(host: str, port: int) -> None:
    """Refuse to start, before announcing anything, when host:port cannot be listened on."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortBusy(
                    f"port {port} on {host} is already in use (another flowql serve?): "
                    "stop that process or choose another with --port or FLOWQL_PORT"
                ) from None
            raise PortBusy(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from flowql import graphiql
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
    graphiql.check_assets(settings)  # a configured asset folder must exist: no CDN fallback
    port_free(settings.host, settings.port)
    prepare_database(settings)
    if settings.demo_accounts:

        async def seed() -> None:
            db = create_database(settings)
            try:
                demo = await ensure_demo_account(db)
            finally:
                await db.dispose()
            if not demo.created:
                return  # printed on the first start only (the README tells it too)
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
        ws_per_message_deflate=settings.ws_per_message_deflate,  # see docs/subscriptions.md
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

    if args.role is not None and not args.workspace:
        raise ValidationFailed.one("role", "--role needs --workspace (the workspace to join)")
    if args.create_workspace and not args.workspace:
        raise ValidationFailed.one("workspace", "--create-workspace needs --workspace NAME")
    settings = _settings()
    upgrade(settings)
    db = create_database(settings)
    try:
        async with db.transaction() as session:
            user = await create_user(session, args.email, args.password)
            user.is_instance_admin = args.instance_admin
            role = Role(args.role or "owner")
            workspace = await _find_workspace(session, args.workspace) if args.workspace else None
            if args.workspace and workspace is None:
                if not args.create_workspace:
                    # Never from a typo: creating one is asked for by name.
                    raise ValidationFailed.one(
                        "workspace",
                        f"workspace {args.workspace!r} does not exist; to create it (the user "
                        "becomes its owner), add --create-workspace",
                    )
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
    from flowql.auth.privileges import ALL_PRIVILEGES, unknown_privileges
    from flowql.db import create_database, upgrade
    from flowql.errors import NotFound, ValidationFailed
    from flowql.models import Membership, Role
    from flowql.services.auth import create_api_key

    settings = _settings()
    upgrade(settings)
    db = create_database(settings)
    try:
        async with db.transaction() as session:
            unknown = unknown_privileges(args.privilege or [])
            if unknown:
                raise ValidationFailed.one(
                    "privilege",
                    f"unknown privilege {', '.join(sorted(unknown))}; valid privileges: "
                    + ", ".join(sorted(ALL_PRIVILEGES)),
                )
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


async def _user_admin(args: argparse.Namespace) -> str:
    from flowql.db import create_database, upgrade
    from flowql.errors import NotFound
    from flowql.models import User

    settings = _settings()
    upgrade(settings)
    db = create_database(settings)
    try:
        async with db.transaction() as session:
            email = args.email.strip().lower()
            user = (await session.exec(select(User).where(User.email == email))).first()
            if user is None:
                raise NotFound("User")
            user.is_instance_admin = not args.off
            session.add(user)
            return f"{user.email} is {'no longer ' if args.off else ''}an instance admin"
    finally:
        await db.dispose()


def cmd_user_admin(args: argparse.Namespace) -> int:
    print(asyncio.run(_user_admin(args)))
    return 0


async def _workspace_plan(args: argparse.Namespace) -> str:
    from flowql.db import create_database, upgrade
    from flowql.errors import NotFound
    from flowql.models import Plan
    from flowql.services.workspaces import set_plan

    settings = _settings()
    upgrade(settings)
    db = create_database(settings)
    try:
        async with db.transaction() as session:
            workspace = await _find_workspace(session, args.workspace)
            if workspace is None:
                raise NotFound("Workspace")
            if args.plan is None:
                return str(workspace.plan)
            await set_plan(session, workspace, Plan(args.plan))
            return str(workspace.plan)
    finally:
        await db.dispose()


def cmd_workspace_plan(args: argparse.Namespace) -> int:
    print(asyncio.run(_workspace_plan(args)))
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flowql")
    except PackageNotFoundError:  # run from a source tree without installing
        from flowql import __version__

        return __version__


PLANS = ("unlimited", "free", "starter", "pro", "business")  # flowql.models.Plan, no import


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowql", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"flowql {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", help="one of:")

    serve = sub.add_parser(
        "serve",
        help="run the API server (and, by default, process workers)",
        description="Migrate the database, then serve GraphQL (with GraphiQL), /hooks and the "
        "REST mounts. In development the first start creates a demo account and prints its "
        "login. Refuses to start when the port is taken.",
    )
    serve.add_argument("--host", default=None, help="address to listen on (FLOWQL_HOST; 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="port to listen on (FLOWQL_PORT; 8000)"
    )
    serve.add_argument("--no-worker", action="store_true", help="API only: run no processes")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug", "trace"],
        help="uvicorn's log level (default: info)",
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log every request (a proxy in front usually does; off saves time per request)",
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker",
        help="run procrastinate workers (PostgreSQL)",
        description="Run processes and periodic work queued by API replicas started with "
        "--no-worker (FLOWQL_DISPATCHER=procrastinate, PostgreSQL only).",
    )
    worker.add_argument(
        "--concurrency", type=int, default=4, help="processes run at once (default: 4)"
    )
    worker.add_argument(
        "--queues", nargs="*", default=None, help="processes and/or periodic (default: both)"
    )
    worker.add_argument("--health-port", type=int, default=None, help="serve /healthz, /readyz")
    worker.add_argument("--log-level", default="info", help="log level (default: info)")
    worker.set_defaults(func=cmd_worker)

    db = sub.add_parser(
        "db", help="database commands", description="Database commands."
    ).add_subparsers(dest="db_command", required=True, metavar="COMMAND", help="one of:")
    db.add_parser(
        "upgrade",
        help="apply every migration",
        description="Bring FLOWQL_DATABASE_URL's database to the newest migration (idempotent; "
        "safe when several replicas run it at once).",
    ).set_defaults(func=cmd_db_upgrade)

    user = sub.add_parser("user", help="user commands", description="User commands.")
    users = user.add_subparsers(
        dest="user_command", required=True, metavar="COMMAND", help="one of:"
    )
    create = users.add_parser(
        "create",
        help="create a user; prints its id",
        description="Create a user; prints the new user's id. With --workspace the user joins "
        "that (existing) workspace; add --create-workspace to create it, as its owner.",
    )
    create.add_argument("--email", required=True, help="the user's email (their login)")
    create.add_argument("--password", required=True, help="at least 8 characters")
    create.add_argument("--workspace", help="join this workspace: its name or id")
    create.add_argument(
        "--create-workspace",
        action="store_true",
        help="create --workspace if no workspace has that name (the user becomes its owner)",
    )
    create.add_argument(
        "--role",
        default=None,
        choices=["owner", "admin", "member"],
        help="the role in --workspace (default: owner); needs --workspace",
    )
    create.add_argument(
        "--instance-admin",
        action="store_true",
        help="make the user an instance admin (assigns workspaces' plans)",
    )
    create.set_defaults(func=cmd_user_create)
    admin = users.add_parser(
        "admin",
        help="make a user an instance admin (or stop: --off)",
        description="Instance admins assign workspaces' rate-limit plans "
        "(the assignWorkspacePlan mutation).",
    )
    admin.add_argument("email", help="the user's email")
    admin.add_argument("--off", action="store_true", help="take instance admin away instead")
    admin.set_defaults(func=cmd_user_admin)

    apikey = sub.add_parser(
        "apikey", help="API key commands", description="API key commands."
    ).add_subparsers(dest="apikey_command", required=True, metavar="COMMAND", help="one of:")
    key = apikey.add_parser(
        "create",
        help="issue an API key; the key is the last line of stdout",
        description="Issue an API key for a workspace, on behalf of its first owner. The key is "
        "shown only this once: the last line of stdout.",
    )
    key.add_argument("--workspace", required=True, help="the workspace's name or id")
    key.add_argument("--name", required=True, help="a name to recognise the key by")
    key.add_argument("--description", default="", help="what the key is for")
    key.add_argument(
        "--privilege",
        action="append",
        metavar="PRIVILEGE",
        help="repeatable, e.g. workflow:read; none given: all privileges",
    )
    key.set_defaults(func=cmd_apikey_create)

    workspace = sub.add_parser(
        "workspace", help="workspace commands", description="Workspace commands."
    ).add_subparsers(dest="workspace_command", required=True, metavar="COMMAND", help="one of:")
    plan = workspace.add_parser(
        "plan",
        help="show or set a workspace's rate-limit plan",
        description="Show (no PLAN) or set a workspace's rate-limit plan (document 004: free "
        "60/min and 1,000/day, starter 120 and 10,000, pro 300 and 50,000, business 600 and "
        "200,000). unlimited, the default, is no plan.",
    )
    plan.add_argument("workspace", help="the workspace's name or id")
    plan.add_argument("plan", nargs="?", choices=PLANS, help="the plan to set")
    plan.set_defaults(func=cmd_workspace_plan)

    schema = sub.add_parser(
        "schema", help="schema commands", description="Schema commands."
    ).add_subparsers(dest="schema_command", required=True, metavar="COMMAND", help="one of:")
    printer = schema.add_parser(
        "print", help="print the GraphQL SDL", description="Print the GraphQL schema (SDL)."
    )
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

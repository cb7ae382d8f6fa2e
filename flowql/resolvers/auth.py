"""Login, token refresh and the viewer."""

from __future__ import annotations

from flowql.auth.principal import PrincipalKind
from flowql.errors import Unauthorized
from flowql.models import User, Workspace
from flowql.resolvers.context import Context
from flowql.services import auth as service
from flowql.services.auth import TokenPair
from flowql.services.demo import DemoToken, demo_tokens


async def login(ctx: Context, email: str, password: str) -> TokenPair:
    async with ctx.db.transaction() as session:
        return await service.login(session, ctx.settings, email, password)


async def refresh_token(ctx: Context, token: str) -> TokenPair:
    return await service.refresh(ctx.db, ctx.settings, token)


async def viewer(ctx: Context) -> tuple[User | None, list[Workspace]]:
    """The calling user (None for an API key or a process) and the workspaces it can see."""
    ctx.principal.ensure_authenticated()
    user = None
    if ctx.principal.user_id is not None and ctx.principal.kind is PrincipalKind.USER:
        user = await ctx.loaders.by_id(User).load(ctx.principal.user_id)
        if user is None:
            raise Unauthorized("account no longer exists")
    workspaces = [
        w
        for w in await ctx.loaders.by_id(Workspace).load_many(ctx.principal.workspace_ids)
        if w is not None
    ]
    return user, sorted(workspaces, key=lambda w: w.number or 0)


async def demo_accounts(ctx: Context) -> list[DemoToken]:
    return await demo_tokens(ctx.db, ctx.settings)

"""Audit log resolvers: arguments in, a page of entries out."""

from __future__ import annotations

from flowql.models import AuditEntry
from flowql.resolvers.context import Context
from flowql.resolvers.pagination import Page, PageArgs, paginate
from flowql.services import audit as service
from flowql.services.audit import AuditFilter


async def audit_log(ctx: Context, filters: AuditFilter, page: PageArgs) -> Page[AuditEntry]:
    stmt = service.list_statement(ctx.principal, filters)
    async with ctx.db.read() as session:
        return await paginate(session, AuditEntry, stmt, page)

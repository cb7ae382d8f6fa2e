"""The data_output agents' feeds: which agent a feed address names, if its secret opens it."""

from __future__ import annotations

import hmac
import uuid

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.models import Agent


async def feed_agent(session: AsyncSession, agent_ref: str, secret: str) -> Agent | None:
    """The enabled data_output agent `agent_ref` (its id) when `secret` is one of its secrets;
    None otherwise (an unknown agent and a wrong secret look the same)."""
    try:
        agent_id = uuid.UUID(agent_ref)
    except ValueError:
        return None
    agent = (await session.exec(select(Agent).where(Agent.id == agent_id))).first()
    if agent is None or agent.type != "data_output" or agent.disabled:
        return None
    secrets = agent.options.get("secrets")
    listed = [str(s) for s in secrets] if isinstance(secrets, list) else []
    if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in listed):
        return None
    return agent

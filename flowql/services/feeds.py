"""The data_output agents' feeds and the liquid_output agents' pages: which agent an address
names, and whether its secret opens it."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from flowql.auth.secrets_box import SecretBox
from flowql.models import Agent
from flowql.services.workflows import unseal_secret_options


async def feed_agent(
    session: AsyncSession, box: SecretBox, agent_ref: str, secret: str
) -> Agent | None:
    """The enabled data_output agent `agent_ref` (its id) when `secret` is one of its secrets;
    None otherwise (an unknown agent and a wrong secret look the same)."""
    try:
        agent_id = uuid.UUID(agent_ref)
    except ValueError:
        return None
    agent = (await session.exec(select(Agent).where(Agent.id == agent_id))).first()
    if agent is None or agent.type != "data_output" or agent.disabled:
        return None
    try:
        secrets = unseal_secret_options(box, agent.type, agent.options).get("secrets")
    except ValueError:
        return None
    listed = [str(s) for s in secrets] if isinstance(secrets, list) else []
    if not any(hmac.compare_digest(secret.encode(), s.encode()) for s in listed):
        return None
    return agent


@dataclass(frozen=True)
class LiquidPage:
    """A liquid_output agent a page address names, its options with the secret opened, and
    whether the secret the request gave is the agent's."""

    agent: Agent
    options: dict[str, Any]
    authorized: bool


async def liquid_page(
    session: AsyncSession, box: SecretBox, agent_ref: str, secret: str
) -> LiquidPage | None:
    """The enabled liquid_output agent `agent_ref` (its id), or None (unknown or disabled, or a
    secret no key can open). Huginn's LiquidOutputAgent answers a wrong secret with 401, so the
    caller learns whether it was right."""
    try:
        agent_id = uuid.UUID(agent_ref)
    except ValueError:
        return None
    agent = (await session.exec(select(Agent).where(Agent.id == agent_id))).first()
    if agent is None or agent.type != "liquid_output" or agent.disabled:
        return None
    try:
        opened = unseal_secret_options(box, agent.type, agent.options)
    except ValueError:
        return None
    options = {**agent.options, **opened}
    expected = str(options.get("secret") or "")
    authorized = bool(expected) and hmac.compare_digest(secret.encode(), expected.encode())
    return LiquidPage(agent, options, authorized)

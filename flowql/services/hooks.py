"""What `/hooks/{workflow}/{path}` needs from the domain: the active webhook or http trigger at
an address, and whether a request carries the trigger's secret or signature. The HTTP edge
(flowql.triggers.hooks) reads the request and answers; it holds no SQL and unseals nothing."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from sqlalchemy.orm import Session
from sqlmodel import col, select

from flowql.auth.secrets_box import SecretBox
from flowql.models import Agent, Trigger, TriggerType, Workflow
from flowql.services.triggers import published
from flowql.services.workflows import unseal_secret_option


def find_hook(session: Session, workflow_ref: str, path: str) -> tuple[Workflow, Trigger] | None:
    """The active webhook or http trigger at `path` of the workflow named by id or number."""
    try:
        condition = col(Workflow.id) == uuid.UUID(workflow_ref)
    except ValueError:
        if not workflow_ref.isdigit():
            return None
        condition = col(Workflow.number) == int(workflow_ref)
    found = session.execute(
        select(Workflow, Trigger)
        .join(Trigger, col(Trigger.workflow_id) == col(Workflow.id))
        .where(condition)
        .where(published())  # a draft's triggers do not fire
        .where(col(Trigger.type).in_([TriggerType.WEBHOOK, TriggerType.HTTP]))
        .where(Trigger.path == path.strip("/"))
        .where(col(Trigger.active).is_(True))
        .order_by(col(Trigger.number))
    ).first()
    if found is None:
        return None
    workflow, trigger = found
    return workflow, trigger


def authentic(box: SecretBox, agent: Agent, secret: str, signature: str, body: bytes) -> bool:
    """The request's shared `secret` and HMAC-SHA256 `signature` of the body, checked against the
    trigger agent's sealed options (each only when the agent has one)."""
    shared = unseal_secret_option(box, agent.options, "secret")
    if shared is not None and not hmac.compare_digest(secret.encode(), shared.encode()):
        return False
    key = unseal_secret_option(box, agent.options, "hmac_secret")
    if key is not None:
        expected = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature.removeprefix("sha256="), expected):
            return False
    return True

"""Triggers: how workflows start. Each is a trigger-type agent (webhook, http, schedule, manual,
form) whose messages open processes; these mutations manage one without the agent vocabulary."""

from __future__ import annotations

import uuid

import strawberry

from flowql import models
from flowql.resolvers import triggers as resolve
from flowql.schema.base import JSON, Info, ident
from flowql.schema.workflows import Trigger, workflow_ref


@strawberry.input
class CreateTriggerInput:
    workflow_id: uuid.UUID | None = None
    workflow_number: int | None = None
    type: models.TriggerType
    name: str
    options: JSON | None = None
    active: bool = True


@strawberry.input
class UpdateTriggerInput:
    name: str | None = None
    options: JSON | None = None
    active: bool | None = None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Add a trigger (a trigger-type agent) to a workflow.")
    async def create_trigger(self, info: Info, input: CreateTriggerInput) -> Trigger:
        row = await resolve.create_trigger(
            info.context,
            workflow_ref(input.workflow_id, input.workflow_number),
            input.type,
            input.name,
            dict(input.options or {}),
            input.active,
        )
        return Trigger.from_row(row)

    @strawberry.mutation
    async def update_trigger(
        self,
        info: Info,
        id: uuid.UUID | None = None,
        number: int | None = None,
        *,
        input: UpdateTriggerInput,
    ) -> Trigger:
        row = await resolve.update_trigger(
            info.context, ident(id, number), input.name, input.options, input.active
        )
        return Trigger.from_row(row)

    @strawberry.mutation(description="Remove a trigger and its agent.")
    async def delete_trigger(
        self, info: Info, id: uuid.UUID | None = None, number: int | None = None
    ) -> Trigger:
        return Trigger.from_row(await resolve.delete_trigger(info.context, ident(id, number)))

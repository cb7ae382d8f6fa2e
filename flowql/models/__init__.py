"""SQLModel tables, one module per domain. Importing this package registers every table."""

from flowql.models.audit import AuditAction, AuditEntry
from flowql.models.auth import ApiKey, RefreshToken
from flowql.models.base import Row, UTCDateTime, WorkspaceRow, utcnow
from flowql.models.forms import Form, FormSubmission
from flowql.models.integrations import Credential, Integration
from flowql.models.processes import (
    TERMINAL_STATUSES,
    LogLevel,
    Process,
    ProcessEvent,
    ProcessLog,
    ProcessStatus,
    ProcessStep,
    StepStatus,
)
from flowql.models.scenarios import Scenario
from flowql.models.webhooks import DeliveryStatus, WebhookDelivery, WebhookSubscription
from flowql.models.workflows import (
    Agent,
    AgentSource,
    Event,
    Message,
    Trigger,
    TriggerType,
    Workflow,
    WorkflowStatus,
)
from flowql.models.workspaces import (
    Group,
    GroupMember,
    Invitation,
    InvitationStatus,
    Membership,
    Plan,
    Role,
    User,
    Workspace,
)

__all__ = [
    "TERMINAL_STATUSES",
    "Agent",
    "AgentSource",
    "ApiKey",
    "AuditAction",
    "AuditEntry",
    "Credential",
    "DeliveryStatus",
    "Event",
    "Form",
    "FormSubmission",
    "Group",
    "GroupMember",
    "Integration",
    "Invitation",
    "InvitationStatus",
    "LogLevel",
    "Membership",
    "Message",
    "Plan",
    "Process",
    "ProcessEvent",
    "ProcessLog",
    "ProcessStatus",
    "ProcessStep",
    "RefreshToken",
    "Role",
    "Row",
    "Scenario",
    "StepStatus",
    "Trigger",
    "TriggerType",
    "UTCDateTime",
    "User",
    "WebhookDelivery",
    "WebhookSubscription",
    "Workflow",
    "WorkflowStatus",
    "Workspace",
    "WorkspaceRow",
    "utcnow",
]

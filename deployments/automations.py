"""Failure notifications of the fusioncast flows, as Prefect automations.

For each flow (``retrain`` and ``forecast`` by default), registers the automation
``fusioncast: <flow> failed``: when a run of that flow ends Failed, Crashed or TimedOut, the
Prefect server sends a notification through a notification block. Re-running replaces the
automations of the same name, so this is safe to run after every deploy (scripts/deploy.sh runs it
when one of the variables below is set).

    # a notification block made in the UI (Blocks > +: Slack, Microsoft Teams, email, PagerDuty...)
    FUSIONCAST_NOTIFY_BLOCK=slack-webhook/ops-alerts python deployments/automations.py

    # or any HTTP endpoint taking JSON {"subject": ..., "body": ...}; saved as the
    # "custom-webhook/fusioncast-alerts" block, the URL (and any token in it) as a secret value
    FUSIONCAST_NOTIFY_URL=https://alerts.example.org/hook python deployments/automations.py

    FUSIONCAST_NOTIFY_FLOWS=retrain    # only the retrain flow (comma-separated flow names)

The server in ``PREFECT_API_URL`` evaluates the automations, so they fire whichever worker (or
``serve`` process) ran the flow.
"""

from __future__ import annotations

import os
import sys
from uuid import UUID

from prefect.automations import Automation, EventTrigger, Posture, SendNotification
from prefect.blocks.core import Block
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client

WEBHOOK_BLOCK_NAME = "fusioncast-alerts"
FAILED_STATES = ("Failed", "Crashed", "TimedOut")

SUBJECT = "fusioncast: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}"
BODY = """\
Flow run {{ flow.name }}/{{ flow_run.name }} ended in state {{ flow_run.state.name }} \
at {{ flow_run.state.timestamp }}.
State message: {{ flow_run.state.message }}
Flow run ID: {{ flow_run.id }}
Flow run URL: {{ flow_run|ui_url }}
"""


def automation_name(flow_name: str) -> str:
    return f"fusioncast: {flow_name} failed"


def failure_automation(flow_name: str, block_document_id: UUID) -> Automation:
    """An automation that notifies through a block when a run of ``flow_name`` fails."""
    return Automation(
        name=automation_name(flow_name),
        description=(
            f"Notify when a run of the {flow_name!r} flow ends {', '.join(FAILED_STATES)}."
        ),
        trigger=EventTrigger(
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": flow_name},
            expect={f"prefect.flow-run.{state}" for state in FAILED_STATES},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_document_id, subject=SUBJECT, body=BODY)],
    )


def notification_block_id(block_slug: str | None, webhook_url: str | None) -> UUID:
    """The id of the block to notify through: ``block_slug`` (``type/name``) if given, else a
    custom-webhook block posting ``{"subject", "body"}`` as JSON to ``webhook_url``."""
    if block_slug:
        block_id = Block.load(block_slug)._block_document_id
    elif webhook_url:
        # The URL often carries a token: kept as one of the block's secret values (masked in the
        # UI and the API), substituted when a notification is sent.
        block = CustomWebhookNotificationBlock(
            name=WEBHOOK_BLOCK_NAME,
            url="{{webhook_url}}",
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
            secrets={"webhook_url": webhook_url},
        )
        block_id = block.save(WEBHOOK_BLOCK_NAME, overwrite=True)
    else:
        raise ValueError("set FUSIONCAST_NOTIFY_BLOCK (type/name) or FUSIONCAST_NOTIFY_URL")
    if block_id is None:
        raise ValueError(f"notification block {block_slug!r} has no saved document")
    return block_id


def register(
    flow_names: list[str], block_slug: str | None = None, webhook_url: str | None = None
) -> list[Automation]:
    """Create (or replace) the failure automation of each flow; returns them."""
    block_id = notification_block_id(block_slug, webhook_url)
    created = []
    with get_client(sync_client=True) as client:
        for flow_name in flow_names:
            for existing in client.read_automations_by_name(automation_name(flow_name)):
                client.delete_automation(existing.id)
            created.append(failure_automation(flow_name, block_id).create())
    return created


def main() -> int:
    flows = os.environ.get("FUSIONCAST_NOTIFY_FLOWS", "retrain,forecast")
    try:
        automations = register(
            [name.strip() for name in flows.split(",") if name.strip()],
            block_slug=os.environ.get("FUSIONCAST_NOTIFY_BLOCK") or None,
            webhook_url=os.environ.get("FUSIONCAST_NOTIFY_URL") or None,
        )
    except ValueError as error:
        print(f"automations: {error}", file=sys.stderr)
        return 2
    for automation in automations:
        print(f"automation {automation.name!r} registered ({automation.id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cloud Function (gen2, Pub/Sub from Cloud Scheduler): compare recent inputs with the training reference."""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg.drift.service import handle_event


@functions_framework.cloud_event
def check_drift(cloud_event: CloudEvent) -> None:
    """Run one drift check; malformed messages and a missing production model are logged and acknowledged."""
    handle_event(cloud_event["type"], cloud_event.data, cloud_event["id"])

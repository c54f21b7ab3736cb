"""Cloud Function (gen2, Pub/Sub from Cloud Scheduler): compare recent inputs with the training reference.

The check itself is ``pharmaseg.drift.service.DriftService``; this module only hands it the event.
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg.drift.service import DriftService

_service: DriftService | None = None


@functions_framework.cloud_event
def check_drift(cloud_event: CloudEvent) -> None:
    """Run one drift check; malformed messages and a missing production model are logged and acknowledged."""
    global _service
    if _service is None:  # settings and clients once per instance, on the first event
        _service = DriftService.from_env()
    _service.handle(cloud_event["type"], cloud_event.data, cloud_event["id"])

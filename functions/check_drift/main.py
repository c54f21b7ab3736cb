"""Cloud Function (gen2, Pub/Sub from Cloud Scheduler): compare recent inputs with the training reference.

The check itself is ``pharmaseg.drift.service.DriftService``; this module only hands it the event.
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config
from pharmaseg.drift.service import DriftService

_settings = config.load("check_drift")  # at start: a bad or missing variable stops the revision, each one named
_service: DriftService | None = None


@functions_framework.cloud_event
def check_drift(cloud_event: CloudEvent) -> None:
    """Run one drift check; malformed messages and a missing production model are logged and acknowledged."""
    global _service
    if _service is None:  # clients once per instance, on the first event
        _service = DriftService.deployed(_settings)
    _service.handle(cloud_event["type"], cloud_event.data, cloud_event["id"])

"""Cloud Function (gen2, Pub/Sub and Eventarc): retrain on request or on a new source file, promote if the gate passes.

The work is ``pharmaseg.retraining.handler.RetrainService``; this module only hands it the event.
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config
from pharmaseg.retraining.handler import RetrainService

_settings = config.load("retrain")  # at start: a bad or missing variable stops the revision, each one named
_service: RetrainService | None = None


@functions_framework.cloud_event
def retrain(cloud_event: CloudEvent) -> None:
    """Retrain, register, gate and maybe promote; malformed requests are logged and acknowledged."""
    global _service
    if _service is None:  # clients once per instance, on the first event
        _service = RetrainService.deployed(_settings)
    _service.handle(cloud_event["type"], cloud_event.data, cloud_event["id"])

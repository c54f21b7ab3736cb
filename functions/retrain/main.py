"""Cloud Function (gen2, Pub/Sub and Eventarc): retrain on request or on a new source file, promote if the gate passes.

The work is ``pharmaseg.retraining.service.RetrainService``; this module only hands it the event.
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config
from pharmaseg.retraining.service import RetrainService

# Built when the module loads, with its clients: a missing, malformed or conflicting setting (the gate
# thresholds' JSON) stops the revision, each one named.
_service = RetrainService.deployed(config.load("retrain"))


@functions_framework.cloud_event
def retrain(cloud_event: CloudEvent) -> None:
    """Retrain, register, gate and maybe promote; malformed requests are logged and acknowledged."""
    _service.handle(cloud_event["type"], cloud_event.data, cloud_event["id"])

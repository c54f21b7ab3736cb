"""Cloud Function (gen2, Pub/Sub and Eventarc): retrain on request or on a new source file, promote if the gate passes.

The work is ``pharmaseg.retrain.service.RetrainService``; this module only hands it the event
(``pharmaseg.runtime.deliver``: what is acknowledged and what is retried).
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config, runtime
from pharmaseg.retrain.service import RetrainService

# Built when the module loads: a missing, malformed or conflicting setting stops the revision, each
# one named. The clients are created on the first event that needs them.
_service = RetrainService.deployed(config.load("retrain"))


@functions_framework.cloud_event
def retrain(cloud_event: CloudEvent) -> None:
    """Retrain, register, gate and maybe promote; malformed requests are logged and acknowledged."""
    runtime.deliver(_service, cloud_event)

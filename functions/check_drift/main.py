"""Cloud Function (gen2, Pub/Sub from Cloud Scheduler): compare recent inputs with the training reference.

The work is ``pharmaseg.check_drift.service.DriftService``; this module only hands it the event
(``pharmaseg.runtime.deliver``: what is acknowledged and what is retried).
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config, runtime
from pharmaseg.check_drift.service import DriftService

# Built when the module loads: a missing, malformed or conflicting setting stops the revision, each
# one named. The clients are created on the first event that needs them.
_service = DriftService.deployed(config.load("check_drift"))


@functions_framework.cloud_event
def check_drift(cloud_event: CloudEvent) -> None:
    """Run one drift check; malformed messages and a missing production model are logged and acknowledged."""
    runtime.deliver(_service, cloud_event)

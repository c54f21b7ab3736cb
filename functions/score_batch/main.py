"""Cloud Function (gen2, Eventarc storage finalize): a CSV in the inbox bucket is scored into BigQuery exactly once.

The work is ``pharmaseg.score_batch.service.BatchService``; this module only hands it the event
(``pharmaseg.runtime.deliver``: what is acknowledged and what is retried).
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config, runtime
from pharmaseg.score_batch.service import BatchService

# Built when the module loads: a missing, malformed or conflicting setting stops the revision, each
# one named. The clients are created on the first event that needs them.
_service = BatchService.deployed(config.load("score_batch"))


@functions_framework.cloud_event
def score_batch(cloud_event: CloudEvent) -> None:
    """Score the object the event names; malformed, foreign and stale events are logged and acknowledged."""
    runtime.deliver(_service, cloud_event)

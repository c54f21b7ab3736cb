"""Cloud Function (gen2, Eventarc storage finalize): a CSV in the inbox bucket is scored into BigQuery exactly once.

The work is ``pharmaseg.batch.service.BatchService``; this module only hands it the event.
"""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg import config
from pharmaseg.batch.service import BatchService

_settings = config.load("score_batch")  # at start: a bad or missing variable stops the revision, each one named
_service: BatchService | None = None


@functions_framework.cloud_event
def score_batch(cloud_event: CloudEvent) -> None:
    """Score the object the event names; malformed, foreign and stale events are logged and acknowledged."""
    global _service
    if _service is None:  # clients once per instance, on the first event
        _service = BatchService.deployed(_settings)
    _service.handle(cloud_event["type"], cloud_event.data, cloud_event.get("time"))

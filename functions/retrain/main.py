"""Cloud Function (gen2, Pub/Sub): retrain the segmentation on request and promote it if it passes the gate."""

import functions_framework
from cloudevents.http import CloudEvent

from pharmaseg.retraining.handler import handle_event


@functions_framework.cloud_event
def retrain(cloud_event: CloudEvent) -> None:
    """Retrain, register, gate and maybe promote; malformed requests are logged and acknowledged."""
    handle_event(cloud_event["type"], cloud_event.data, cloud_event["id"])

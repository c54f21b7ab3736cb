"""Google Cloud client factories that follow the local emulators when their variables are set.

``STORAGE_EMULATOR_HOST`` (``http://127.0.0.1:P``), ``PUBSUB_EMULATOR_HOST`` (``127.0.0.1:P``, no
scheme, as gcloud prints it) and ``BIGQUERY_EMULATOR_HOST`` (``http://127.0.0.1:P``) select the
emulators with anonymous credentials; without them the clients use Application Default
Credentials. An explicit ``endpoint`` argument wins over the environment. Each Google client
library is imported inside its factory, so importing this module costs nothing.
"""

from __future__ import annotations

from typing import Any

from pharmaseg import config

STORAGE_EMULATOR_HOST = "STORAGE_EMULATOR_HOST"
PUBSUB_EMULATOR_HOST = "PUBSUB_EMULATOR_HOST"
BIGQUERY_EMULATOR_HOST = "BIGQUERY_EMULATOR_HOST"


def _project(project: str | None) -> str | None:
    return project or config.value("GOOGLE_CLOUD_PROJECT") or None


def _anonymous() -> Any:
    from google.auth.credentials import AnonymousCredentials

    return AnonymousCredentials()


def storage_client(project: str | None = None, *, endpoint: str | None = None) -> Any:
    """A ``google.cloud.storage.Client``, on the emulator when ``STORAGE_EMULATOR_HOST`` is set."""
    from google.cloud import storage

    endpoint = endpoint or config.value(STORAGE_EMULATOR_HOST)
    if endpoint:
        return storage.Client(
            project=_project(project) or "local",
            credentials=_anonymous(),
            client_options={"api_endpoint": endpoint},
        )
    return storage.Client(project=_project(project))


def bigquery_client(project: str | None = None, *, endpoint: str | None = None) -> Any:
    """A ``google.cloud.bigquery.Client``, on the emulator when ``BIGQUERY_EMULATOR_HOST`` is set."""
    from google.cloud import bigquery

    endpoint = endpoint or config.value(BIGQUERY_EMULATOR_HOST)
    if endpoint:
        from google.api_core.client_options import ClientOptions

        return bigquery.Client(
            project=_project(project) or "local",
            credentials=_anonymous(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return bigquery.Client(project=_project(project))


def _pubsub_transport(kind: str, endpoint: str) -> Any:
    import grpc

    host = endpoint.split("://", 1)[-1]
    if kind == "publisher":
        from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

        return PublisherGrpcTransport(channel=grpc.insecure_channel(host))
    from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

    return SubscriberGrpcTransport(channel=grpc.insecure_channel(host))


def publisher_client(*, endpoint: str | None = None) -> Any:
    """A ``google.cloud.pubsub_v1.PublisherClient``, on the emulator when ``PUBSUB_EMULATOR_HOST`` is set."""
    from google.cloud import pubsub_v1

    if endpoint:
        return pubsub_v1.PublisherClient(transport=_pubsub_transport("publisher", endpoint))
    # The client itself follows PUBSUB_EMULATOR_HOST (insecure channel, anonymous credentials).
    return pubsub_v1.PublisherClient()


def subscriber_client(*, endpoint: str | None = None) -> Any:
    """A ``google.cloud.pubsub_v1.SubscriberClient``, on the emulator when ``PUBSUB_EMULATOR_HOST`` is set."""
    from google.cloud import pubsub_v1

    if endpoint:
        return pubsub_v1.SubscriberClient(transport=_pubsub_transport("subscriber", endpoint))
    return pubsub_v1.SubscriberClient()

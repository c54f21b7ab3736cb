"""Create what resources.json describes on the emulators: buckets, topics, subscriptions, tables.

Every step is idempotent, so ``pharmaseg stack up`` on a running stack only adds what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pharmaseg.gcp import clients as gcp
from pharmaseg.gcp import resources as cloud_resources
from pharmaseg_dev.stack.layout import StackLayout

# The push subscriptions that stand in for Eventarc's: redelivery, dead letters, ack deadline.
DEAD_LETTER_ATTEMPTS = 5
ACK_DEADLINE_S = 600


def create_buckets(layout: StackLayout) -> dict[str, str]:
    """Every bucket role of resources.json -> its bucket name, created if missing."""
    client = gcp.storage_client(layout.project, endpoint=layout.url("storage"))
    names = {role: cloud_resources.bucket_name(role, layout.project) for role in cloud_resources.bucket_roles()}
    existing = {b.name for b in client.list_buckets()}
    for name in names.values():
        if name not in existing:
            client.create_bucket(name)
    return names


def _exists(call) -> bool:
    from google.api_core import exceptions

    try:
        call()
        return True
    except exceptions.NotFound:
        return False


# Topics whose messages wait in a pull subscription for a person: the dead letters, and the
# notifications that `pharmaseg notifications` prints.
PULLED = ("dead_letter", "notifications")


def pull_subscription(role: str) -> str:
    """The pull subscription on a topic of PULLED (Terraform names the dead letters' the same)."""
    return f"{cloud_resources.topic_name(role)}-pull"


def create_topics(layout: StackLayout) -> dict[str, str]:
    """Every topic role -> topic name, created if missing; plus the pull subscriptions of PULLED."""
    publisher = gcp.publisher_client(endpoint=layout.pubsub_host)
    subscriber = gcp.subscriber_client(endpoint=layout.pubsub_host)
    names = {role: cloud_resources.topic_name(role) for role in cloud_resources.topic_roles()}
    for name in names.values():
        path = publisher.topic_path(layout.project, name)
        if not _exists(lambda p=path: publisher.get_topic(topic=p)):
            publisher.create_topic(name=path)
    for role in PULLED:
        sub = subscriber.subscription_path(layout.project, pull_subscription(role))
        if not _exists(lambda s=sub: subscriber.get_subscription(subscription=s)):
            subscriber.create_subscription(name=sub, topic=publisher.topic_path(layout.project, names[role]))
    return names


@dataclass(frozen=True)
class Trigger:
    """One Eventarc trigger of a function, as the local relay serves it.

    ``topic`` is the Pub/Sub topic role the emulator's push subscription reads: the trigger's own
    topic, or ``storage_events`` where fake-gcs-server publishes every bucket's notifications.
    ``bucket`` is the bucket name a storage trigger filters on (None for a Pub/Sub trigger).
    """

    function: str
    topic: str
    bucket: str | None = None

    @property
    def subscription(self) -> str:
        suffix = f"{self.bucket}-" if self.bucket else ""
        return f"{cloud_resources.topic_name(self.topic)}-{self.function}-{suffix}push"

    def endpoint(self, relay_url: str) -> str:
        """The relay's path for this trigger: /<function>/pubsub/<topic> or /<function>/storage/<bucket>."""
        kind, name = ("storage", self.bucket) if self.bucket else ("pubsub", cloud_resources.topic_name(self.topic))
        return f"{relay_url.rstrip('/')}/{self.function}/{kind}/{name}"


def triggers(function: str, project: str) -> list[Trigger]:
    """The triggers of ``function`` in resources.json (its own and its extra ones; none for HTTP)."""
    spec = cloud_resources.functions()[function]
    found = []
    for trigger in [spec, *spec.get("extra_triggers", [])]:
        if trigger["trigger"] == "storage_finalize":
            found.append(Trigger(function, "storage_events", cloud_resources.bucket_name(trigger["bucket"], project)))
        elif trigger["trigger"] == "pubsub":
            found.append(Trigger(function, trigger["topic"]))
    return found


def create_push_subscriptions(layout: StackLayout, functions: list[str]) -> dict[str, dict[str, Any]]:
    """A push subscription per trigger of each running event-driven function, delivering through the
    Eventarc relay; keyed by subscription name.

    The dead-letter policy forwards a message after DEAD_LETTER_ATTEMPTS failed deliveries; if the
    emulator refuses the policy the subscription is created without it (reported as such).
    """
    from google.api_core import exceptions
    from google.pubsub_v1 import types

    publisher = gcp.publisher_client(endpoint=layout.pubsub_host)
    subscriber = gcp.subscriber_client(endpoint=layout.pubsub_host)
    dead_topic = publisher.topic_path(layout.project, cloud_resources.topic_name("dead_letter"))
    created = {}
    for function in functions:
        for trigger in triggers(function, layout.project):
            name = trigger.subscription
            path = subscriber.subscription_path(layout.project, name)
            topic = publisher.topic_path(layout.project, cloud_resources.topic_name(trigger.topic))
            push = types.PushConfig(push_endpoint=trigger.endpoint(layout.url("eventarc")))
            try:
                current = subscriber.get_subscription(subscription=path)
            except exceptions.NotFound:
                current = None
            if current is not None and current.push_config.push_endpoint != push.push_endpoint:
                subscriber.delete_subscription(subscription=path)
                current = None
            dead_letter = True
            if current is None:
                request = {
                    "name": path,
                    "topic": topic,
                    "push_config": push,
                    "ack_deadline_seconds": ACK_DEADLINE_S,
                    "dead_letter_policy": types.DeadLetterPolicy(
                        dead_letter_topic=dead_topic, max_delivery_attempts=DEAD_LETTER_ATTEMPTS
                    ),
                    "retry_policy": types.RetryPolicy(minimum_backoff={"seconds": 1}, maximum_backoff={"seconds": 10}),
                }
                try:
                    subscriber.create_subscription(request=request)
                except exceptions.GoogleAPICallError:
                    dead_letter = False
                    request.pop("dead_letter_policy")
                    request.pop("retry_policy")
                    subscriber.create_subscription(request=request)
            else:
                dead_letter = bool(current.dead_letter_policy.dead_letter_topic)
            created[name] = {
                "function": function,
                "topic": cloud_resources.topic_name(trigger.topic),
                "bucket": trigger.bucket,
                "push_endpoint": push.push_endpoint,
                "dead_letter": dead_letter,
            }
    return created


def delete_push_subscriptions(layout: StackLayout, functions: list[str]) -> None:
    """Drop the push subscriptions of functions that are not running (no retries into a dead port)."""
    from google.api_core import exceptions

    subscriber = gcp.subscriber_client(endpoint=layout.pubsub_host)
    for function in functions:
        for trigger in triggers(function, layout.project):
            try:
                subscriber.delete_subscription(
                    subscription=subscriber.subscription_path(layout.project, trigger.subscription)
                )
            except exceptions.NotFound:
                pass


def create_tables(layout: StackLayout) -> dict[str, Any]:
    """The dataset and every table with its schema; partitioning/clustering kept if the emulator takes them."""
    from google.api_core import exceptions
    from google.cloud import bigquery

    client = gcp.bigquery_client(layout.project, endpoint=layout.url("bigquery"))
    dataset = cloud_resources.dataset_name()
    client.create_dataset(bigquery.Dataset(f"{layout.project}.{dataset}"), exists_ok=True)
    tables = {}
    for role in cloud_resources.table_roles():
        spec = cloud_resources.table_spec(role)
        table_id = f"{layout.project}.{dataset}.{spec['table']}"
        schema = [bigquery.SchemaField.from_api_repr(f) for f in cloud_resources.table_schema(role)]
        table = bigquery.Table(table_id, schema=schema)
        if spec.get("partition_field"):
            table.time_partitioning = bigquery.TimePartitioning(field=spec["partition_field"])
        if spec.get("clustering"):
            table.clustering_fields = spec["clustering"]
        partitioned = True
        try:
            client.create_table(table, exists_ok=True)
        except exceptions.BadRequest:
            partitioned = False
            client.create_table(bigquery.Table(table_id, schema=schema), exists_ok=True)
        tables[role] = {"table": spec["table"], "id": table_id, "partitioned": partitioned}
    return {"dataset": dataset, "tables": tables}

"""A stand-in for google.cloud.pubsub_v1.PublisherClient in unit tests: what was published, in order."""

from __future__ import annotations

from collections.abc import Callable


class Future:
    def __init__(self, result):
        self._result = result

    def result(self, timeout=None):
        if isinstance(self._result, Exception):
            raise self._result
        return self._result


class FakePublisher:
    """The two calls the notifier makes. ``fail`` makes every publish's future raise it; ``on_publish``
    runs at each publish (a test looks at what is already recorded at that moment)."""

    def __init__(self, fail: Exception | None = None, on_publish: Callable[[], None] | None = None):
        self.published, self.fail, self.on_publish = [], fail, on_publish

    def topic_path(self, project, topic):
        return f"projects/{project}/topics/{topic}"

    def publish(self, topic, data, **attributes):
        if self.on_publish is not None:
            self.on_publish()
        self.published.append((topic, data, attributes))
        return Future(self.fail or f"message-{len(self.published)}")

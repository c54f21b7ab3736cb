"""Read-only access to one bucket through the GCS JSON API, for the prediction function's cold path.

Serving reads a few small objects (an alias, a version's metadata, an artifact; for the strategy
page, a report pointer and the reports themselves, streamed), yet
``google.cloud.storage`` imports gRPC, protobuf and OpenTelemetry: about twice the import time
of google-auth with urllib3 on these machines. Writes (registration, promotion with generation
preconditions) stay with the full client in ``pharmaseg.model.registry``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote, urlencode

from pharmaseg import config

PUBLIC_ENDPOINT = "https://storage.googleapis.com"
READ_ONLY_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"


class GcsReader:
    """``read`` and ``generation`` of objects in one bucket; the emulator when STORAGE_EMULATOR_HOST is set."""

    def __init__(self, bucket: str, endpoint: str | None = None, http=None):
        self.bucket_name = bucket
        self._emulator = endpoint or config.value("STORAGE_EMULATOR_HOST")
        endpoint = (self._emulator or PUBLIC_ENDPOINT).rstrip("/")
        self._objects = f"{endpoint}/storage/v1/b/{quote(bucket, safe='')}/o"  # the JSON API's object list
        self._pool = http

    @property
    def _http(self):
        """The connection pool, made on the first read: building the reader (when the function's
        module loads) looks up no credentials. Two threads racing here both build one; one is kept."""
        if self._pool is None:
            import urllib3

            # Transient GCS answers are retried with backoff, as google-cloud-storage would.
            retries = urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(429, 500, 502, 503, 504))
            if self._emulator:
                self._pool = urllib3.PoolManager(retries=retries)
            else:
                import google.auth
                from google.auth.transport.urllib3 import AuthorizedHttp

                credentials, _ = google.auth.default(scopes=[READ_ONLY_SCOPE])
                self._pool = AuthorizedHttp(credentials, http=urllib3.PoolManager(retries=retries))
        return self._pool

    def _url(self, name: str, media: bool) -> str:
        return f"{self._objects}/{quote(name, safe='')}" + ("?alt=media" if media else "?fields=generation")

    def _get(self, name: str, media: bool, *, stream: bool = False):
        response = self._http.request("GET", self._url(name, media), timeout=30.0, preload_content=not stream)
        if response.status == 404:
            response.release_conn()
            return None
        if response.status != 200:
            detail = response.data[:200] if not stream else response.read(200)
            response.release_conn()
            raise OSError(f"GET gs://{self.bucket_name}/{name}: HTTP {response.status} {detail!r}")
        return response

    def read(self, name: str) -> tuple[bytes, int] | None:
        """The object's bytes and generation, or None when it does not exist."""
        response = self._get(name, media=True)
        if response is None:
            return None
        return response.data, int(response.headers["x-goog-generation"])

    def generation(self, name: str) -> int | None:
        response = self._get(name, media=False)
        return None if response is None else int(json.loads(response.data)["generation"])

    def stream(self, name: str, chunk: int = 64 * 1024) -> Iterator[bytes] | None:
        """The object's bytes in chunks (a report is sent on without being held whole), or None."""
        response = self._get(name, media=True, stream=True)
        if response is None:
            return None

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(chunk)
            finally:
                response.release_conn()

        return chunks()

    def names(self, prefix: str, delimiter: str | None = None) -> list[str]:
        """Object names under ``prefix`` (with ``delimiter``, the "folders" one level down instead)."""
        found: list[str] = []
        token = None
        while True:
            query = {"prefix": prefix, "fields": "items(name),prefixes,nextPageToken"}
            if delimiter:
                query["delimiter"] = delimiter
            if token:
                query["pageToken"] = token
            response = self._http.request("GET", f"{self._objects}?{urlencode(query)}", timeout=30.0)
            if response.status != 200:
                raise OSError(f"LIST gs://{self.bucket_name}/{prefix}: HTTP {response.status} {response.data[:200]!r}")
            page = json.loads(response.data)
            found += page.get("prefixes", []) if delimiter else [item["name"] for item in page.get("items", [])]
            token = page.get("nextPageToken")
            if not token:
                return found

"""Read training or scoring data from a local path or a gs:// URI with one call."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pharmaseg import config
from pharmaseg.errors import PharmasegError

# The team's copy of the OECD panel, beside the repository (never committed; ../shared/data/README.md).
DEFAULT_DATA = Path(__file__).resolve().parents[4] / "shared" / "data" / "oecd_pharma_spending.csv"


def default_data() -> str:
    """The OECD panel the CLI, demo and benchmarks read: $PHARMASEG_DATA, else the team's copy."""
    return config.value("PHARMASEG_DATA", str(DEFAULT_DATA))


def sha256_of(data: bytes) -> str:
    """The data's identity in lineage and idempotency keys: the same bytes train the same model."""
    return hashlib.sha256(data).hexdigest()


def split_gs_uri(uri: str) -> tuple[str, str, int | None]:
    """``gs://bucket/path/to/object[#generation]`` -> (bucket, path/to/object, generation or None).

    The ``#generation`` suffix (gsutil's notation) pins one version of an object, so a retrain
    asked for by a new upload trains on that upload even if the object is replaced meanwhile.
    """
    if not uri.startswith("gs://"):
        raise PharmasegError(f"{uri!r} is not a gs:// URI")
    bucket, _, rest = uri[len("gs://") :].partition("/")
    name, _, generation = rest.partition("#")
    if not bucket or not name or (generation and not generation.isdigit()):
        raise PharmasegError(f"{uri!r} must name a bucket and an object: gs://BUCKET/OBJECT[#GENERATION]")
    return bucket, name, int(generation) if generation else None


def read_bytes(uri: str, storage_client=None) -> bytes:
    if uri.startswith("gs://"):
        from google.api_core.exceptions import NotFound

        from pharmaseg.gcp.clients import storage_client as default_client

        bucket, name, generation = split_gs_uri(uri)
        client = storage_client or default_client()
        try:
            return client.bucket(bucket).blob(name, generation=generation).download_as_bytes()
        except NotFound:
            raise PharmasegError(f"{uri}: no such object") from None
    path = Path(uri)
    if not path.is_file():
        raise PharmasegError(f"{uri}: no such file")
    return path.read_bytes()

"""One exception base so callers (CLI, functions) can turn any library failure into a clean message."""


class PharmasegError(Exception):
    """Base of every error the library raises on purpose."""


class Unprocessable(PharmasegError):
    """An event no retry can process (malformed, untrainable, stale): logged at ERROR and acknowledged.

    ``pharmaseg.runtime.accept`` applies the rule. ``log_event`` names the log line (``event=``)
    and ``fields`` are added to it; without a ``log_event`` the service's ``refused`` name is used.
    """

    def __init__(self, message: str, *, log_event: str | None = None, **fields: object):
        super().__init__(message)
        self.log_event = log_event
        self.fields = fields


class DataValidationError(PharmasegError):
    """Input data breaks the contract; the message names the row and column."""

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        problems: list[tuple[str, str]] | None = None,
    ):
        super().__init__(message)
        self.row = row
        self.column = column
        self.problems = problems or [(column or "", message)]  # (field path, problem) pairs


class ArtifactError(PharmasegError):
    """A model artifact is malformed, of an unknown format, or fails its checksum."""


class RegistryError(PharmasegError):
    """A registry operation failed: unknown version, missing alias, bad bucket."""


class VersionNotFoundError(RegistryError):
    """The requested model version (or alias target) does not exist."""


class ConcurrentUpdateError(RegistryError):
    """Someone else moved the alias between our read and our write (generation mismatch)."""

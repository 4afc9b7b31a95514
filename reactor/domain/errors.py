"""Errors users see. Each names what was wrong so a caller can fix the input."""

from __future__ import annotations


class ReactorError(Exception):
    """Base of every error the reactor raises on purpose."""


class ValidationError(ReactorError):
    """A request was rejected before anything started.

    `job` is the key of the offending job (None for batch-level problems) and
    `field` the dotted path of the offending value, so tools can point at it.
    """

    def __init__(self, message: str, *, job: str | None = None, field: str | None = None):
        self.job = job
        self.field = field
        where = []
        if job is not None:
            where.append(f"job {job!r}")
        if field is not None:
            where.append(field)
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.reason = message


class ReducerError(ReactorError):
    """Raised by reducers for an action that is invalid for the current state."""


class DocumentNotFoundError(ReactorError):
    pass


class AmbiguousIdentifierError(ReactorError):
    pass


class JobNotFoundError(ValidationError):
    """A well-formed job id that names no job: its batch does not exist, or
    has fewer jobs. A ValidationError on `job_id`, as for a malformed id:
    the caller's argument is what is wrong."""


class JobFailedError(ReactorError):
    """A job ended FAILED; raised by helpers that wait for success."""


class ConsistencyTimeoutError(ReactorError):
    """A consistency token was not reached in time. `coordinate` is the first
    one still behind (a Coordinate) and `behind` who has not indexed it, so a
    caller can say what it waited for."""

    def __init__(self, message: str, *, coordinate: object = None, behind: str | None = None):
        super().__init__(message)
        self.coordinate = coordinate
        self.behind = behind


class ShutdownError(ReactorError):
    """The reactor was killed and accepts no more writes."""

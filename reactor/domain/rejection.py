"""JobRejected: what ends a job FAILED with nothing written.

Anything the job itself causes and would cause again (a reducer's error, a
state the hash or the database cannot hold, a value PostgreSQL refuses) is a
rejection; anything else raised while applying a job is the
infrastructure's, and the activity is retried."""

from __future__ import annotations

from reactor.domain.errors import ReactorError, ReducerError


class JobRejected(ReactorError):
    """The job cannot be applied (reducer error, missing document, data the
    hash or PostgreSQL cannot hold...): it fails and writes nothing. Anything
    else raised while applying propagates, and the activity is retried."""

    def __init__(self, error_type: str, message: str):
        # The message is stored as jsonb and text: no NUL, no lone surrogate.
        super().__init__(message.encode("utf-8", "backslashreplace").decode().replace("\0", "\\0"))
        self.error_type = error_type

    @classmethod
    def of_model(cls, exc: Exception, where: str) -> JobRejected:
        """Model code raised: a ReducerError (or another reactor error) says
        what was wrong with the action; anything else is the model's bug."""
        if isinstance(exc, JobRejected):
            return exc
        if isinstance(exc, ReactorError):
            name = "ReducerError" if isinstance(exc, ReducerError) else type(exc).__name__
            return cls(name, f"{where}: {exc}")
        return cls(type(exc).__name__, f"{where}: {exc!r}")

    @classmethod
    def of_serialization(cls, exc: Exception, where: str) -> JobRejected:
        """The state or an action cannot be turned into the JSON that is
        hashed and stored (an int of 2**64 or more, a lone surrogate)."""
        return cls("UnserializableState", f"{where}: {_one_line(exc)}")

    @classmethod
    def of_database(cls, exc: Exception) -> JobRejected:
        """PostgreSQL (or asyncpg, encoding an argument) refused the job's
        data; the same write would be refused again."""
        return cls(type(exc).__name__, f"the database refused the job's data: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    """`Type: message` on one line: a ledger row, not a traceback."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

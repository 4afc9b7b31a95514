"""Which failures are worth retrying.

A job's write either fails the same way every time (the data cannot be
stored: a NUL in a text value, a number out of range, a constraint it
breaks) or because the database was briefly out of reach (a restart, a
dropped connection, a deadlock). The first must end the job FAILED; the
second must propagate so Temporal retries the activity with backoff. This
module is the one place that tells them apart.
"""

from __future__ import annotations

import asyncpg
from asyncpg import exceptions as pg

# Server errors that depend on the moment, not on the job: a retry can
# succeed. Class 08 (connection), 40 (rollback: serialization, deadlock),
# 53 (resources: too many connections, disk full), 55P03 (lock not
# available), 57 (operator intervention: shutdown, cannot connect now, a
# cancelled statement), 58 (system I/O) and XX (internal).
_TRANSIENT_SERVER: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,
    pg.TransactionRollbackError,
    pg.InsufficientResourcesError,
    pg.LockNotAvailableError,
    pg.OperatorInterventionError,
    pg.PostgresSystemError,
    pg.InternalServerError,
)

# Server errors the same input raises again: class 22 (data exception: a
# character the encoding cannot hold, a number out of range), 23 (integrity
# constraint), 42 (syntax or access rule) and 54 (program limit exceeded: a
# row or index entry too large).
_DETERMINISTIC_SERVER: tuple[type[BaseException], ...] = (
    pg.DataError,
    pg.IntegrityConstraintViolationError,
    pg.SyntaxOrAccessError,
    pg.ProgramLimitExceededError,
)

# Client-side: the connection is gone or its protocol state is unusable
# (asyncpg reports a server's FATAL message that arrived between two
# statements as "cannot switch to state N"). The connection is dropped and
# the next attempt takes a fresh one.
_TRANSIENT_CLIENT: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,  # ConnectionError and its refused/reset subclasses among them
    TimeoutError,
)


def is_argument_error(exc: BaseException) -> bool:
    """asyncpg could not encode a query argument (a lone surrogate in a
    string, an int too big for its column type): its client-side DataError,
    which is both an InterfaceError and a ValueError."""
    return isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)


def is_deterministic(exc: BaseException) -> bool:
    """A database failure that the same write would raise again."""
    return is_argument_error(exc) or isinstance(exc, _DETERMINISTIC_SERVER)


def is_transient(exc: BaseException) -> bool:
    """A failure of the infrastructure, not of the job: retry it."""
    if is_deterministic(exc):
        return False
    return isinstance(exc, _TRANSIENT_SERVER + _TRANSIENT_CLIENT)


def one_line(exc: BaseException) -> str:
    """`Type: message` on one line, for logs that must not sprawl."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

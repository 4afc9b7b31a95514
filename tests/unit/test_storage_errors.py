"""Which database failures end a job and which are retried."""

from __future__ import annotations

import asyncpg
import pytest
from asyncpg import exceptions as pg
from asyncpg.exceptions import _base

from reactor.storage.errors import is_deterministic, is_transient, one_line

DETERMINISTIC: list[BaseException] = [
    pg.DataError("x"),
    pg.UntranslatableCharacterError("\\u0000 cannot be converted to text"),
    pg.CharacterNotInRepertoireError("invalid byte sequence"),
    pg.NumericValueOutOfRangeError("out of range"),
    pg.InvalidTextRepresentationError("bad"),
    pg.NotNullViolationError("null"),
    pg.CheckViolationError("check"),
    pg.UniqueViolationError("dup"),
    pg.PostgresSyntaxError("syntax"),
    pg.ProgramLimitExceededError("index row too big"),
    _base.DataError("invalid input for query argument $1 (str is not valid UTF-8)"),
]

TRANSIENT: list[BaseException] = [
    pg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    pg.ConnectionFailureError("x"),
    pg.CannotConnectNowError("the database system is starting up"),
    pg.AdminShutdownError("terminating connection due to administrator command"),
    pg.CrashShutdownError("crash"),
    pg.QueryCanceledError("canceling statement"),
    pg.TooManyConnectionsError("too many"),
    pg.SerializationError("could not serialize"),
    pg.DeadlockDetectedError("deadlock"),
    pg.LockNotAvailableError("lock"),
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.InternalClientError("cannot switch to state 12; another operation is in progress"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "reset"),
    OSError("network unreachable"),
    TimeoutError(),
]


@pytest.mark.parametrize("exc", DETERMINISTIC, ids=lambda e: type(e).__name__)
def test_data_errors_are_deterministic(exc: BaseException) -> None:
    assert is_deterministic(exc)
    assert not is_transient(exc)


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_infrastructure_errors_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)
    assert not is_deterministic(exc)


@pytest.mark.parametrize(
    "exc", [ValueError("x"), TypeError("x"), RuntimeError("x"), KeyError("k")], ids=repr
)
def test_other_errors_are_neither(exc: BaseException) -> None:
    assert not is_transient(exc)
    assert not is_deterministic(exc)


def test_one_line_folds_a_multiline_message() -> None:
    exc = pg.AdminShutdownError("terminating connection\n  due to administrator command")
    assert one_line(exc) == (
        "AdminShutdownError: terminating connection due to administrator command"
    )
    assert one_line(TimeoutError()) == "TimeoutError"

"""An outage is one log line, with no traceback; other failures log as they did."""

from __future__ import annotations

import logging
import sys

import asyncpg
import pytest
from asyncpg import exceptions as pg

from reactor.observability.outage import (
    OUTAGE,
    OUTAGE_LOGGERS,
    OutageLogFilter,
    install_outage_filter,
)


def record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "temporalio.activity",
        logging.WARNING,
        __file__,
        1,
        "Completing activity as failed",
        (),
        exc_info,
    )


def test_an_outage_logs_one_line_without_a_traceback() -> None:
    outage = OutageLogFilter()
    first = record_of(pg.AdminShutdownError("terminating connection\ndue to administrator command"))
    assert outage.filter(first)
    assert first.exc_info is None
    assert first.getMessage() == (
        "database unavailable: AdminShutdownError: terminating connection due to"
        " administrator command; retrying"
    )
    assert "\n" not in logging.Formatter().format(first)
    for exc in (ConnectionRefusedError(111, "refused"), pg.CannotConnectNowError("starting up")):
        assert not outage.filter(record_of(exc))
    assert outage.dropped == 2


def test_a_success_ends_the_outage_and_the_next_one_logs_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageLogFilter()
    assert outage.filter(record_of(ConnectionResetError(104, "reset")))
    assert not outage.filter(record_of(ConnectionResetError(104, "reset")))
    with caplog.at_level(logging.WARNING, logger="reactor.outage"):
        outage.succeeded()
        outage.succeeded()  # no outage: says nothing
    assert [r.getMessage() for r in caplog.records] == [
        "database reachable again (1 more attempts had failed)"
    ]
    assert outage.filter(record_of(asyncpg.InterfaceError("connection is closed")))


def test_a_cause_that_is_transient_counts() -> None:
    outage = OutageLogFilter()
    try:
        try:
            raise pg.ConnectionDoesNotExistError("closed in the middle of operation")
        except Exception as inner:
            raise RuntimeError("apply failed") from inner
    except RuntimeError as outer:
        wrapped = outer
    assert outage.filter(record_of(wrapped))
    assert outage.in_outage


@pytest.mark.parametrize(
    "exc", [ValueError("bug"), pg.UntranslatableCharacterError("\\u0000"), KeyError("k")]
)
def test_other_failures_keep_their_traceback(exc: BaseException) -> None:
    outage = OutageLogFilter()
    record = record_of(exc)
    assert outage.filter(record)
    assert record.exc_info is not None
    assert not outage.in_outage


def test_records_without_an_exception_pass() -> None:
    outage = OutageLogFilter()
    record = logging.LogRecord("temporalio.activity", logging.INFO, __file__, 1, "hi", (), None)
    assert outage.filter(record)


def test_the_filter_sits_once_on_every_logger_that_reports_database_failures() -> None:
    install_outage_filter()
    install_outage_filter()
    for name in OUTAGE_LOGGERS:
        assert logging.getLogger(name).filters.count(OUTAGE) == 1
    for name in ("temporalio.activity", "asyncpg.pool", "asyncio", "reactor.notify"):
        assert name in OUTAGE_LOGGERS


def test_work_begun_before_the_outage_does_not_end_it(caplog: pytest.LogCaptureFixture) -> None:
    outage = OutageLogFilter()
    before = outage.mark()  # a chunk's commits, made before the restart
    assert outage.filter(record_of(FileNotFoundError(2, "No such file or directory")))
    with caplog.at_level(logging.WARNING, logger="reactor.outage"):
        outage.succeeded(before)  # its commit notification failed, the chunk still succeeded
        assert outage.in_outage and not caplog.records
        during = outage.mark()  # a retry, begun while the database is down
        assert not outage.filter(record_of(ConnectionRefusedError(111, "refused")))
        outage.succeeded(during)
    assert not outage.in_outage
    assert [r.getMessage() for r in caplog.records] == [
        "database reachable again (1 more attempts had failed)"
    ]


def test_every_component_logs_one_line_per_outage_through_the_process_filter(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool, the LISTEN connection, commit notifications, a reaction
    drain and an unretrieved task exception, all in one outage: one line,
    no traceback; a real error on the same loggers keeps its traceback."""
    install_outage_filter()
    monkeypatch.setattr(OUTAGE, "in_outage", False)
    monkeypatch.setattr(OUTAGE, "outages", 0)
    failures: list[tuple[str, BaseException]] = [
        ("asyncpg.pool", pg.CannotConnectNowError("the database system is shutting down")),
        ("reactor.notify", FileNotFoundError(2, "No such file or directory")),
        ("reactor.notify", ConnectionRefusedError(111, "Connection refused")),
        ("reactor.reactions", asyncpg.InterfaceError("connection is closed")),
        ("asyncio", FileNotFoundError(2, "No such file or directory")),
        ("temporalio.activity", pg.ConnectionDoesNotExistError("connection was closed")),
    ]
    since = OUTAGE.mark()
    with caplog.at_level(logging.WARNING):
        for name, exc in failures:
            logging.getLogger(name).warning("attempt failed", exc_info=exc)
        logging.getLogger("reactor.reactions").error("handler failed", exc_info=KeyError("k"))
        OUTAGE.succeeded(since + 1)  # the reconnect began after the outage was noticed
    said = [(r.name, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert said == [
        (
            "asyncpg.pool",
            "database unavailable: CannotConnectNowError: the database system is shutting down;"
            " retrying",
            False,
        ),
        ("reactor.reactions", "handler failed", True),
        ("reactor.outage", "database reachable again (5 more attempts had failed)", False),
    ]


def test_a_failure_after_a_quiet_spell_starts_a_new_outage() -> None:
    now = [0.0]
    outage = OutageLogFilter(quiet_s=60, clock=lambda: now[0])
    assert outage.filter(record_of(ConnectionResetError(104, "reset")))
    now[0] = 59.0
    assert not outage.filter(record_of(ConnectionResetError(104, "reset")))
    now[0] = 118.0  # 59 s after the last failure: the same outage
    assert not outage.filter(record_of(ConnectionResetError(104, "reset")))
    now[0] = 200.0  # no failure for 82 s, and no success seen (an idle worker)
    assert outage.filter(record_of(ConnectionResetError(104, "reset")))
    assert outage.dropped == 0

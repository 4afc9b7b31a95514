"""One log line per database outage instead of a traceback per attempt.

While PostgreSQL restarts, every apply attempt fails with a connection error
and Temporal retries it with backoff: expected, and handled. temporalio logs
each failed attempt with its traceback, asyncpg's pool each failed attempt
to reconnect its idle connections, and the LISTEN connection, commit
notifications, reaction drains and read models each their own, which
buries whatever else the process says. `OutageLogFilter` sits on all of
those loggers (OUTAGE_LOGGERS), in workers and in client-only processes
alike: the first infrastructure failure of an outage becomes one line,
"database unavailable: <error>; retrying", the ones after it are dropped,
and once the database answers again (an activity succeeds, the LISTEN
connection is back) one line says so. Every other record passes as is, a
real error with its traceback.

A component whose failure may be an outage logs it with `exc_info=exc`
and leaves the wording to the filter; it calls `OUTAGE.succeeded()` when
the database answers it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from reactor.storage.errors import is_transient, one_line

ACTIVITY_LOGGER = "temporalio.activity"
POOL_LOGGER = "asyncpg.pool"

# A logger's filters see the records made on it, not its children's: each
# logger that may report a failed database attempt is named.
OUTAGE_LOGGERS: tuple[str, ...] = (
    ACTIVITY_LOGGER,  # a failed activity attempt, which Temporal retries
    "temporalio.worker._activity",  # heartbeats and completions
    POOL_LOGGER,  # the pool restoring its idle connections
    "asyncio",  # "Task exception was never retrieved" and the like
    "reactor.notify",  # the LISTEN connection, commit notifications
    "reactor.reactions",  # reaction drains and wake-ups
    "reactor.read_models",
    "reactor.subscriptions",
    "reactor.jobs",
    "reactor.events",
    "reactor.batches",
    "reactor.notices",
)

log = logging.getLogger("reactor.outage")


def transient_cause(exc: BaseException | None) -> BaseException | None:
    """`exc`, or the first exception it was raised from or during, when that
    one is an infrastructure failure."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if is_transient(exc):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class OutageLogFilter(logging.Filter):
    """An outage ends when the database answers again (`succeeded`), or (a
    process with nothing to do sees no success) after `quiet_s` without an
    infrastructure failure."""

    def __init__(self, quiet_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self.clock = clock
        self.in_outage = False
        self.outages = 0  # outages begun in this process
        self.dropped = 0  # failed attempts not logged during the current outage
        self._last_failure = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        cause = transient_cause(exc)
        if cause is None:
            return True
        now, last = self.clock(), self._last_failure
        self._last_failure = now
        if self.in_outage and now - last < self.quiet_s:
            self.dropped += 1
            return False
        self.in_outage = True
        self.outages += 1
        self.dropped = 0
        record.msg = "database unavailable: %s; retrying"
        record.args = (one_line(cause),)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True

    def mark(self) -> int:
        """Taken before some database work, for `succeeded` once it is done."""
        return self.outages

    def succeeded(self, mark: int | None = None) -> None:
        """Database work finished: the outage, if there was one, is over.

        Work that began before the outage was noticed (its `mark` is older)
        says nothing of it: a chunk whose commits landed just before the
        restart, and whose commit notification then failed, must not
        announce the database back while it is still down."""
        if not self.in_outage or (mark is not None and mark < self.outages):
            return
        self.in_outage = False
        log.warning("database reachable again (%d more attempts had failed)", self.dropped)
        self.dropped = 0


OUTAGE = OutageLogFilter()


def install_outage_filter(logger_names: tuple[str, ...] = OUTAGE_LOGGERS) -> OutageLogFilter:
    """Puts the process's filter on the loggers, once each; returns it."""
    for name in logger_names:
        target = logging.getLogger(name)
        if OUTAGE not in target.filters:
            target.addFilter(OUTAGE)
    return OUTAGE

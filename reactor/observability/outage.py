"""One log line per database outage instead of a traceback per attempt.

While PostgreSQL restarts, every apply attempt fails with a connection error
and Temporal retries it with backoff: expected, and handled. temporalio logs
each failed attempt with its traceback, and asyncpg's pool each failed
attempt to reconnect its idle connections, which buries whatever else the
worker says. `OutageLogFilter` sits on both loggers: the first
infrastructure failure of an outage becomes one line, "database
unavailable: <error>; retrying", the ones after it are dropped, and once an
activity succeeds again one line says so. Every other record passes as is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from reactor.storage.errors import is_transient, one_line

ACTIVITY_LOGGER = "temporalio.activity"
POOL_LOGGER = "asyncpg.pool"

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
    """An outage ends when an activity succeeds, or (a worker with nothing
    to do sees no success) after `quiet_s` without an infrastructure
    failure."""

    def __init__(self, quiet_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.quiet_s = quiet_s
        self.clock = clock
        self.in_outage = False
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
        self.dropped = 0
        record.msg = "database unavailable: %s; retrying"
        record.args = (one_line(cause),)
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True

    def succeeded(self) -> None:
        """An activity finished: the outage, if there was one, is over."""
        if self.in_outage:
            self.in_outage = False
            log.warning("database reachable again (%d more attempts had failed)", self.dropped)
            self.dropped = 0


OUTAGE = OutageLogFilter()


def install_outage_filter(
    logger_names: tuple[str, ...] = (ACTIVITY_LOGGER, POOL_LOGGER),
) -> OutageLogFilter:
    """Puts the process's filter on the loggers, once each; returns it."""
    for name in logger_names:
        target = logging.getLogger(name)
        if OUTAGE not in target.filters:
            target.addFilter(OUTAGE)
    return OUTAGE

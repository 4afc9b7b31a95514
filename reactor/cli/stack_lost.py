"""A command whose stack goes away under it: one line and exit 3, not the
tracebacks of every layer that noticed.

A command line process reports the outage itself, once, as it exits, so the
retries its libraries log meanwhile (asyncpg's pool restoring idle
connections, a lost LISTEN connection) are dropped rather than printed."""

from __future__ import annotations

import logging

from temporalio.service import RPCError, RPCStatusCode

from reactor.domain.errors import ReactorError
from reactor.observability.outage import install_outage_filter
from reactor.storage.errors import is_transient, one_line

# Temporal's answers when its frontend cannot be reached or did not answer.
_UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


class StackLostError(ReactorError):
    """The connection to the stack was lost while a submitted batch ran: the
    batch goes on where it runs; this process only stopped watching it."""

    def __init__(self, batch_id: str, cause: BaseException) -> None:
        super().__init__(
            f"lost the connection to the stack while waiting ({one_line(cause)}); "
            f"batch {batch_id} goes on where it runs: check it with "
            f"`reactor status {batch_id}:0` or `reactor batches` once the stack is back"
        )
        self.batch_id = batch_id


def connection_lost(exc: BaseException) -> BaseException | None:
    """The infrastructure failure behind `exc` (a database or Temporal
    connection error, here or in what it was raised from), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, RPCError) and current.status in _UNREACHABLE:
            return current
        if is_transient(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class _DropOutages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return exc is None or connection_lost(exc) is None


def quiet_outages(handler: logging.Handler) -> None:
    """For a command line process: records of failed connection attempts
    are not printed (the command's last line says the stack was lost),
    neither as they are nor as the outage filter's one line, which speaks
    for a worker that retries."""
    outage = install_outage_filter()
    drop = _DropOutages()
    handler.addFilter(drop)
    for logger in logging.Logger.manager.loggerDict.values():
        # Ahead of the outage filter, which would rewrite the record first.
        if isinstance(logger, logging.Logger) and outage in logger.filters:
            logger.filters.insert(0, drop)
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)

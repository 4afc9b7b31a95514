"""Leaving the process."""

from __future__ import annotations

import os
import sys


def exit_now(rc: int) -> None:
    """Exits without interpreter finalization, which the Temporal client's
    native runtime can abort ("PyGILState_Release", temporalio/sdk-python#300).
    Everything that needs an orderly stop (services, workers, database pools)
    has stopped by now; spans and output are flushed here."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)

"""Entry point: run one reactor worker against the stack named by
REACTOR_DATABASE_URL / REACTOR_TEMPORAL_ADDRESS (or a running `reactor dev`).

    python worker.py        # same as `reactor worker`
"""

from __future__ import annotations

import asyncio
import logging

from reactor.observability.tracing import configure_tracing
from reactor.runtime.process import exit_now
from reactor.runtime.settings import Settings
from reactor.runtime.worker import run_worker


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    configure_tracing(console=False)  # OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
    asyncio.run(run_worker(Settings.from_env()))
    exit_now(0)  # the worker has drained; skip finalization (see reactor.runtime.process)


if __name__ == "__main__":
    main()

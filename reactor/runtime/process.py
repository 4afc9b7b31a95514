"""Leaving the process: a stop that is bounded whatever the work in flight
does, and an exit that skips interpreter finalization."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

# The last part of the grace period: in-flight activities are cancelled this
# long before it ends, so work that honours cancellation, and the services'
# own stop, still fit inside it; at its end the process leaves regardless.
FORCE_MARGIN_S = 5.0


def drain_period(grace_s: float) -> float:
    """What in-flight activities get before they are cancelled: the grace
    period less the margin their cancellation and the services' stop need."""
    return grace_s - min(FORCE_MARGIN_S, grace_s / 2)


class BoundedStop:
    """SIGINT/SIGTERM handling whose outcome does not depend on the event loop.

    The first signal asks for an orderly stop (`event` is set on the bound
    loop) and arms a watchdog thread. In-flight activities get `drain_s` to
    finish; a second signal, or the end of `grace_s`, runs `on_force`
    (stopping services fast) and leaves the process. The handlers are plain signal handlers, not the
    loop's: an activity that blocks the loop (a reducer stuck in a
    synchronous call) cannot hold the signal back, and the watchdog is a
    thread, so nothing on the loop can delay it."""

    def __init__(self, grace_s: float, on_force: Callable[[], None] | None = None):
        self.grace_s = grace_s
        self.on_force = on_force
        self._requested = threading.Event()
        self._now = threading.Event()
        self._signum: int = signal.SIGTERM
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._forcing = threading.Lock()

    @property
    def drain_s(self) -> float:
        return drain_period(self.grace_s)

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    @property
    def exit_status(self) -> int:
        """128 + the signal that asked for the stop."""
        return 128 + self._signum

    def install(self) -> None:
        """From the main thread (Python delivers signals there only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def bind(self, event: asyncio.Event) -> None:
        """`event` is set, on the running loop, when a stop is asked (at once
        if one already was)."""
        self._loop = asyncio.get_running_loop()
        self._event = event
        if self.requested:
            event.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two bytecodes of the main thread, which may hold any
        # lock: only thread-safe calls here, no printing.
        if self._requested.is_set():
            self._now.set()
            return
        self._signum = signum
        self._requested.set()
        loop, event = self._loop, self._event
        if loop is not None and event is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop closed meanwhile
                pass
        threading.Thread(target=self._watch, name="bounded-stop", daemon=True).start()

    def _watch(self) -> None:
        again = self._now.wait(self.grace_s)
        self.force(
            "a second signal: stopping now"
            if again
            else f"still running {self.grace_s:g} s after the stop was asked: stopping now"
        )

    def force(self, why: str) -> None:
        """Stops services fast and leaves, exit status 128 + the signal."""
        if not self._forcing.acquire(blocking=False):
            return
        _say(f"reactor: {why}\n")
        if self.on_force is not None:
            try:
                self.on_force()
            except Exception as exc:  # leave anyway; the guard process reaps the rest
                _say(f"reactor: fast stop failed: {exc!r}\n")
        _say("\x1b[?25h" if _is_tty(2) else "")  # a live status line may have hidden the cursor
        os._exit(self.exit_status)


def _say(text: str) -> None:
    if text:
        try:
            os.write(2, text.encode())
        except OSError:
            pass


def _is_tty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


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

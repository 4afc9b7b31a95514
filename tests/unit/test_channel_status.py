"""How a sync channel's backoff grows, and the line the Temporal UI shows
for a channel in each phase."""

from __future__ import annotations

from datetime import UTC, datetime

from reactor.domain.channel_status import (
    ChannelPhase,
    ChannelState,
    ChannelStatus,
    backoff_after,
)
from workflows.sync import ERROR_SHOWN, render_details


def test_the_backoff_doubles_from_the_first_failure_up_to_its_maximum() -> None:
    waits = [backoff_after(n, 1.0, 60.0) for n in range(0, 9)]
    assert waits == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff_after(10_000, 1.0, 60.0) == 60.0  # no overflow after days of failures


def test_a_failing_channel_shows_its_attempts_next_round_and_error_on_one_line() -> None:
    status = ChannelStatus(
        name="peer-1",
        state=ChannelState.FAILED,
        phase=ChannelPhase.BACKING_OFF,
        rounds=7,
        pulled=12,
        pushed=3,
        attempts=3,
        last_error="RemoteUnavailableError: http://peer:8080:\n  ConnectError: refused",
        last_round_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        backoff_s=4.0,
    )
    assert render_details(status) == (
        "**sync `peer-1`** · FAILED 3× in a row · next round in 4 s · "
        "12 pulled, 3 pushed in 7 rounds · last round 2026-01-02 03:04:05 UTC · "
        "last error: RemoteUnavailableError: http://peer:8080: ConnectError: refused"
    )


def test_a_healthy_channel_shows_what_it_waits_for_and_a_long_error_is_cut() -> None:
    waiting = ChannelStatus(name="p", state=ChannelState.SUCCEEDED, phase=ChannelPhase.WAITING)
    assert render_details(waiting) == (
        "**sync `p`** · SUCCEEDED · waiting for changes · 0 pulled, 0 pushed in 0 rounds"
    )
    failing = waiting.model_copy(update={"state": ChannelState.FAILED, "last_error": "x" * 999})
    shown = render_details(failing).split("last error: ")[1]
    assert len(shown) == ERROR_SHOWN and shown.endswith("…")

"""BoundedStop, in a child process whose main thread is held by a
synchronous loop (as a stuck reducer holds a worker's event loop): the first
signal asks for a stop and the process still leaves once the grace period is
over; a second signal leaves at once; the forced stop runs
`on_force` first. The grace setting is checked before anything starts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reactor.runtime.process import BoundedStop
from reactor.runtime.settings import DEFAULT_GRACE_S, GRACE_ENV, shutdown_grace

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import sys, time
from pathlib import Path
from reactor.runtime.process import BoundedStop

grace = float(sys.argv[1])
marker = Path(sys.argv[2])
guard = BoundedStop(grace, on_force=lambda: marker.write_text("forced"))
guard.install()
print("ready", flush=True)
while True:  # holds the main thread; no event loop ever runs
    time.sleep(0.05)
"""


def start_child(grace: float, marker: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(grace), str(marker)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=60)  # a liveness bound
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_the_first_signal_leaves_once_the_grace_period_is_over(tmp_path: Path) -> None:
    marker = tmp_path / "forced"
    proc = start_child(0.2, marker)
    proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 128 + signal.SIGTERM
    assert "still running 0.2 s after the stop was asked" in err
    assert marker.read_text() == "forced"


def test_activities_are_cancelled_inside_the_grace_period() -> None:
    assert BoundedStop(30).drain_s == 25  # the margin fits inside the 30 s
    assert BoundedStop(4).drain_s == 2  # a short period keeps half for the drain


def test_a_second_signal_leaves_at_once(tmp_path: Path) -> None:
    marker = tmp_path / "forced"
    proc = start_child(3600, marker)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    assert proc.poll() is None  # the first one only asked
    proc.send_signal(signal.SIGINT)
    rc, err = finish(proc)  # long before the hour is over
    assert rc == 128 + signal.SIGINT
    assert "a second signal: stopping now" in err
    assert marker.read_text() == "forced"


def test_the_grace_period_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(GRACE_ENV, raising=False)
    assert shutdown_grace() == DEFAULT_GRACE_S == 30
    monkeypatch.setenv(GRACE_ENV, "12.5")
    assert shutdown_grace() == 12.5
    for bad in ("soon", "0", "-1", "7200"):
        monkeypatch.setenv(GRACE_ENV, bad)
        with pytest.raises(SystemExit, match=GRACE_ENV):
            shutdown_grace()

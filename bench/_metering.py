"""What the stack's processes spend while a benchmark runs: resident memory
sampled in a background thread, and CPU seconds per process tree."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psutil

# RSS is sampled this often; listing a tree's children scans /proc, so that
# happens every CHILDREN_EVERY samples only.
RSS_INTERVAL_S = 0.05
CHILDREN_EVERY = 20


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_rss(pid: int) -> int:
    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_cpu(pid: int, *, children: bool = True) -> float:
    """CPU seconds (user + system) of a process and its live children, plus
    its reaped children (PostgreSQL backends that already exited). With
    `children=False`, the process alone."""
    total = 0.0
    procs = process_tree(pid) if children else process_tree(pid)[:1]
    for i, proc in enumerate(procs):
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
        if i == 0 and children:
            total += t.children_user + t.children_system
    return total


class RssSampler:
    """Samples the resident set of a process tree every `interval` seconds in
    a background thread. `peak` is over the whole run; `mark()` starts a new
    window whose peak is `window_peak`."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL_S):
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.window_peak = 0
        self.last = 0
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def mark(self) -> None:
        with self._lock:
            self.window_peak = self.last

    def _run(self) -> None:
        procs: list[psutil.Process] = []
        tick = 0
        while not self._stop.is_set():
            if tick % CHILDREN_EVERY == 0:
                procs = process_tree(self.pid)
            tick += 1
            rss = 0
            for proc in procs:
                try:
                    rss += proc.memory_info().rss
                except psutil.Error:
                    pass
            if rss:
                with self._lock:
                    self.last = rss
                    self.samples += 1
                    self.peak = max(self.peak, rss)
                    self.window_peak = max(self.window_peak, rss)
            self._stop.wait(self.interval)


@dataclass
class CpuMeter:
    """CPU seconds spent by each part of the stack between `start()` and
    `stop()`: the worker, the Temporal dev server, PostgreSQL (process trees)
    and this process alone (the dev server and PostgreSQL may be its children)."""

    pids: dict[str, int]
    alone: frozenset[str] = frozenset({"bench"})
    _start: dict[str, float] = field(default_factory=dict)
    _system: Any = None
    system: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> dict[str, float]:
        return {
            name: tree_cpu(pid, children=name not in self.alone) for name, pid in self.pids.items()
        }

    def start(self) -> None:
        self._start = self.snapshot()
        self._system = psutil.cpu_times()

    def stop(self) -> dict[str, float]:
        """Per process tree; machine-wide busy and iowait percentages (of all
        cores) land in `system`."""
        now = self.snapshot()
        end = psutil.cpu_times()
        if self._system is not None:
            delta = {k: getattr(end, k) - getattr(self._system, k) for k in end._fields}
            total = sum(delta.values()) or 1.0
            idle = delta.get("idle", 0.0) + delta.get("iowait", 0.0)
            tracked = sum(now[name] - self._start.get(name, 0.0) for name in now)
            self.system = {
                "busy_pct": 100 * (total - idle) / total,
                "iowait_pct": 100 * delta.get("iowait", 0.0) / total,
                # CPU seconds nobody in the stack accounts for: other
                # processes on the machine (a shared box), kernel threads.
                "other_cpu_s": max(0.0, total - idle - tracked),
            }
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


def background_load(seconds: float = 2.0) -> dict[str, float]:
    """Machine-wide busy % over `seconds`, measured before the stack starts:
    other processes competing for the cores skew every number."""
    before = psutil.cpu_times()
    time.sleep(seconds)
    after = psutil.cpu_times()
    delta = {k: getattr(after, k) - getattr(before, k) for k in after._fields}
    total = sum(delta.values()) or 1.0
    busy = 100 * (total - delta.get("idle", 0.0) - delta.get("iowait", 0.0)) / total
    return {"busy_pct_before_start": busy, "load_avg_1m_before_start": os.getloadavg()[0]}

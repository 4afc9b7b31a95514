"""Summarizes a py-spy `--format raw` (collapsed stacks) recording.

    python bench/_hotspots.py stacks.txt [--top 25]

Prints the functions with the most samples on CPU by themselves (self) and
including their callees (inclusive), and the share of samples under a few
subsystems (the reactor's own code, pydantic, the Temporal SDK, asyncpg...).
Samples whose innermost frame is a known wait (epoll, a condition or queue
wait, sleep) are counted as idle and left out of the percentages.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# Frames look like "function (path/to/file.py:123)"; drop the line number so a
# function is counted once however many lines it samples at.
_LINE = re.compile(r":\d+\)$")

SUBSYSTEMS: list[tuple[str, str]] = [
    ("reactor + activities (not workflows)", r"\((reactor|activities)/"),
    ("workflows/ (sandboxed workflow code)", r"\(workflows/"),
    ("temporalio: workflow sandbox", r"temporalio/worker/workflow_sandbox/"),
    ("temporalio: other", r"temporalio/"),
    ("pydantic", r"pydantic"),
    ("asyncpg", r"asyncpg"),
    ("json / hashlib", r"(json/|hashlib)"),
    ("asyncio", r"asyncio/"),
]


IDLE_LEAVES = re.compile(
    r"^(EpollSelector\.select|select|poll|Condition\.wait|Event\.wait|Queue\.get|"
    r"_worker|sleep|Popen\._wait|wait|_wait_for_tstate_lock|Thread\.join|_recv_into)\s"
)


# Frames every stack passes through (thread roots, the event loop).
STRUCTURAL = re.compile(
    r"^(<module>|Thread\.\w+|BaseEventLoop\.\w+|Runner\.run|run|main|Handle\._run|"
    r"_run_module_as_main|_run_code|Context\.run)\s"
)


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append(([_LINE.sub(")", f) for f in frames.split(";")], int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], top: int) -> str:
    idle = sum(n for frames, n in stacks if frames and IDLE_LEAVES.match(frames[-1]))
    stacks = [(f, n) for f, n in stacks if f and not IDLE_LEAVES.match(f[-1])]
    total = sum(n for _, n in stacks) or 1
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    subsystem: Counter[str] = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        self_time[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
        joined = ";".join(frames)
        for name, pattern in SUBSYSTEMS:
            if re.search(pattern, joined):
                subsystem[name] += n
    lines = [
        f"{total:,} samples on CPU ({idle:,} idle samples left out)",
        "",
        f"top {top} by self time:",
    ]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in self_time.most_common(top)]
    lines += ["", f"top {top} by inclusive time (thread/process roots skipped):"]
    shown = 0
    for f, n in inclusive.most_common():
        if n / total > 0.97 or STRUCTURAL.match(f):
            continue  # the process/thread roots and the event loop itself
        lines.append(f"  {100 * n / total:5.1f}%  {f}")
        shown += 1
        if shown == top:
            break
    lines += ["", "samples with a frame in (overlapping):"]
    lines += [f"  {100 * subsystem[name] / total:5.1f}%  {name}" for name, _ in SUBSYSTEMS]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarize(load(args.path), args.top))


if __name__ == "__main__":
    main()

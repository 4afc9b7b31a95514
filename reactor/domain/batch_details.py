"""The batch workflow's current details: the markdown the Temporal UI shows
on a batch's page, so that a person who opens a failed or slow batch sees
why without running a query. Pure: it runs inside the workflow."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from reactor.domain.batch import PlanEntry
from reactor.domain.jobs import JobError, JobStatus
from reactor.domain.scheduling import Scheduler

LISTED_JOBS = 20  # failed (and held) jobs listed; the rest are counted
FIRST_KEYS = 3  # job keys that name a chunk
MESSAGE_CHARS = 300


@dataclass
class ChunkInFlight:
    """A chunk the workflow handed to an activity and is waiting for."""

    indices: list[int]
    actions: int
    local: bool
    since: datetime
    # The only attempts the workflow sees: a local chunk's, exhausted before
    # it moved to a regular activity. A regular activity's attempts stay on
    # the server, which the UI lists under Pending Activities.
    local_attempts: int = 0
    failures: list[str] = field(default_factory=list)


def first_keys(entries: list[PlanEntry], indices: list[int], limit: int = FIRST_KEYS) -> str:
    keys = ", ".join(f"`{_code(entries[i].key, 40)}`" for i in indices[:limit])
    return keys + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def render(
    batch_id: str,
    total: int,
    sched: Scheduler | None,
    in_flight: list[ChunkInFlight],
) -> str:
    if sched is None:
        return f"**Batch** `{_code(batch_id, 80)}`: loading the plan of {total} jobs"
    state = "finished" if sched.finished else "running"
    counts = ", ".join(
        f"{status.value} {sched.counts[status]}" for status in JobStatus if sched.counts[status]
    )
    lines = [f"**Batch** `{_code(batch_id, 80)}` {state}: {total} jobs ({counts})"]
    if sched.failed_order:
        lines += ["", f"**Failed jobs** ({len(sched.failed_order)})", ""]
        lines += _listed(sched, sched.failed_order)
    if sched.held_order:
        lines += ["", f"**Written, not indexed** ({len(sched.held_order)})", ""]
        lines += _listed(sched, sched.held_order)
    if in_flight:
        plural = "s" if len(in_flight) != 1 else ""
        lines += ["", f"**In flight** ({len(in_flight)} chunk{plural})", ""]
        for chunk in in_flight:
            line = (
                f"- {len(chunk.indices)} jobs ({chunk.actions} actions) from "
                f"{first_keys(sched.entries, chunk.indices)}: {_attempts(chunk)}, "
                f"since {chunk.since:%Y-%m-%d %H:%M:%S} UTC"
            )
            if chunk.failures:
                line += f"; last failure: {_plain(chunk.failures[-1], MESSAGE_CHARS)}"
            lines.append(line)
    return "\n".join(lines)


def _attempts(chunk: ChunkInFlight) -> str:
    if chunk.local:
        return "local activity"
    text = "activity, attempts: see Pending Activities"
    if chunk.local_attempts:
        text += f" (after {chunk.local_attempts} local attempts)"
    return text


def _listed(sched: Scheduler, indices: list[int]) -> list[str]:
    out = []
    for i in indices[:LISTED_JOBS]:
        entry, error = sched.entries[i], sched.states[i].error
        out.append(
            f"- `{_code(entry.key, 80)}` (document `{_code(entry.document_id, 80)}`): "
            + _error(error)
        )
    if len(indices) > LISTED_JOBS:
        out.append(f"- and {len(indices) - LISTED_JOBS} more")
    return out


def _error(error: JobError | None) -> str:
    if error is None:
        return "no error recorded"
    text = f"**{_plain(error.type, 60)}**: {_plain(error.message, MESSAGE_CHARS)}"
    if error.dependency is not None:
        text += f" (failed dependency `{_code(error.dependency, 80)}`)"
    return text


def _code(text: str, limit: int) -> str:
    """For inside a code span: one line, no backtick, at most `limit` characters."""
    flat = " ".join(text.split()).replace("`", "'")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _plain(text: str, limit: int) -> str:
    """For prose: as `_code`, with emphasis and HTML characters escaped (an
    underscore inside a word, as in ADD_TODO_ITEM, is no emphasis)."""
    flat = _code(text, limit)
    for c in "\\*<>":
        flat = flat.replace(c, "\\" + c)
    return flat

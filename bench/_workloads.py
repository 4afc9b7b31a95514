"""What each phase of bench/throughput.py submits: its documents, jobs and
batches (see the phases in that script's docstring).

Every action adds one todo item, and every operation hashes the document's
whole state, so the cost of an operation grows with the document. Every run
of a phase works on its own fresh todo-list documents,
`bench-<phase><repetition>-doc-NN` (`bench-b2-doc-07`), with job keys and
item ids prefixed the same way, so phases and repetitions stay independent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DOCS = 20
TODO = "powerhouse/todo-list"
PHASE_ORDER = "aebcds"
SUSTAINED_DOCS = 200
# --preload: jobs of this many ADD_TODO_ITEM actions, in batches of this many jobs
PRELOAD_ACTIONS_PER_JOB = 50
PRELOAD_BATCH_JOBS = 100

Job = dict[str, Any]


@dataclass
class Phase:
    name: str
    label: str
    batches: list[list[Job]]
    actions_per_job: int
    # "batch": one execute_batch per batch; "execute": one reactor.execute()
    # per job, all concurrent (the reactor coalesces them into shared batches)
    mode: str = "batch"
    # which repetition (1-based); `tag` (name + repetition) prefixes the run's
    # document ids, job keys and item ids
    repetition: int = 1
    docs: int = DOCS
    # "f": the run of the floors next to repetition `repetition` (own documents)
    variant: str = ""

    @property
    def tag(self) -> str:
        return f"{self.name}{self.repetition}{self.variant}"

    @property
    def documents(self) -> list[str]:
        return [doc_id(self.tag, n, self.docs) for n in range(self.docs)]

    @property
    def jobs(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def actions(self) -> int:
        return self.jobs * self.actions_per_job


def doc_id(tag: str, n: int | None, docs: int = DOCS) -> str:
    """Document n % docs of the run `tag`; `bench-<tag>-doc-NN` for n=None."""
    return f"bench-{tag}-doc-{'NN' if n is None else f'{n % docs:02d}'}"


def add_item(item_id: str) -> dict[str, Any]:
    return {"type": "ADD_TODO_ITEM", "input": {"id": item_id, "text": f"item {item_id}"}}


def single_action_jobs(tag: str, count: int) -> list[Job]:
    """Job i adds item `<tag>-i` to document i % 20."""
    return [
        {"key": f"{tag}-{i}", "document_id": doc_id(tag, i), "actions": [add_item(f"{tag}-{i}")]}
        for i in range(count)
    ]


def chunks(jobs: list[Job], size: int) -> list[list[Job]]:
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def chain_jobs(tag: str, chains: int, length: int) -> list[Job]:
    jobs: list[Job] = []
    for c in range(chains):
        for link in range(length):
            key = f"{tag}-c{c}-{link}"
            jobs.append(
                {
                    "key": key,
                    "document_id": doc_id(tag, c),
                    "actions": [add_item(key)],
                    "depends_on": [f"{tag}-c{c}-{link - 1}"] if link else [],
                }
            )
    return jobs


def multi_action_jobs(tag: str, count: int, actions: int, docs: int = DOCS) -> list[Job]:
    return [
        {
            "key": f"{tag}-m-{i}",
            "document_id": doc_id(tag, i, docs),
            "actions": [add_item(f"{tag}-m-{i}-{a}") for a in range(actions)],
        }
        for i in range(count)
    ]


def create_jobs(tag: str, docs: int) -> list[Job]:
    return [
        {
            "key": f"{tag}-create-{n}",
            "document_id": doc_id(tag, n, docs),
            "scope": "document",
            "actions": [{"type": "CREATE_DOCUMENT", "input": {"document_type": TODO}}],
        }
        for n in range(docs)
    ]


def preload_jobs(tag: str, items: int, docs: int) -> list[Job]:
    """`items` todo items on each of the run's documents, in jobs of 50
    actions; job k of every document comes before job k + 1 of any, so each
    batch spreads over all the documents."""
    jobs: list[Job] = []
    for start in range(0, items, PRELOAD_ACTIONS_PER_JOB):
        stop = min(items, start + PRELOAD_ACTIONS_PER_JOB)
        for n in range(docs):
            prefix = f"{tag}-p{n:02d}"
            jobs.append(
                {
                    "key": f"{prefix}-{start}",
                    "document_id": doc_id(tag, n, docs),
                    "actions": [add_item(f"{prefix}-{k}") for k in range(start, stop)],
                }
            )
    return jobs


def build_phase(name: str, scale: float, repetition: int, variant: str = "") -> Phase:
    phase = _build_phase(name, scale, repetition, f"{name}{repetition}{variant}")
    phase.variant = variant
    return phase


def _build_phase(name: str, scale: float, repetition: int, tag: str) -> Phase:
    n = max(DOCS, round(2000 * scale))
    chains = max(1, round(50 * scale))
    multi = max(1, round(200 * scale))
    if name == "a":
        return Phase(
            "a",
            f"{n:,} × 1-job batches",
            [[j] for j in single_action_jobs(tag, n)],
            1,
            repetition=repetition,
        )
    if name == "e":
        return Phase(
            "e",
            f"{n:,} × execute() (1 job each, concurrent)",
            [[j] for j in single_action_jobs(tag, n)],
            1,
            mode="execute",
            repetition=repetition,
        )
    if name == "b":
        return Phase(
            "b",
            f"{n // 100 or 1} × 100-job batches",
            chunks(single_action_jobs(tag, n), 100),
            1,
            repetition=repetition,
        )
    if name == "c":
        return Phase(
            "c",
            f"1 batch: {chains} chains × 10",
            [chain_jobs(tag, chains, 10)],
            1,
            repetition=repetition,
        )
    if name == "d":
        return Phase(
            "d",
            f"{multi} jobs × 10 actions, batches of 100",
            chunks(multi_action_jobs(tag, multi, 10), 100),
            10,
            repetition=repetition,
        )
    if name == "s":
        docs = max(1, round(SUSTAINED_DOCS * scale))
        return Phase(
            "s",
            f"{multi * 10:,} jobs × 10 actions on {docs} documents, batches of 100",
            chunks(multi_action_jobs(tag, multi * 10, 10, docs), 100),
            10,
            repetition=repetition,
            docs=docs,
        )
    raise ValueError(f"unknown phase {name!r}")

"""The pure parts of bench/sync.py's set-up: the merge phase's incoming
operation rewinds exactly the number of local operations it is meant to,
and the writes reach each document in order."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from _merge_cost import incoming_load, local_at  # noqa: E402
from _sync_peer import OPS_PER_JOB, write_jobs  # noqa: E402

from reactor.domain.actions import Action  # noqa: E402
from reactor.domain.merge import plan_load  # noqa: E402


@dataclass(frozen=True)
class Logged:
    id: str
    index: int
    skip: int
    timestamp: datetime
    action: Action


def lane(doc: str, local: int) -> list[Logged]:
    """A lane as write_jobs stamps it: item k at local_at(k)."""
    [_, *batches] = write_jobs([doc], local, local_at)
    actions = [Action.model_validate(a) for b in batches for job in b for a in job["actions"]]
    return [Logged(f"op-{k}", k, 0, a.timestamp, a) for k, a in enumerate(actions)]


@pytest.mark.parametrize("rewound", [0, 1, 7, 20])
def test_the_incoming_operation_rewinds_exactly_the_last_n_local_ones(rewound: int) -> None:
    log = lane("merge-doc", 20)
    load = incoming_load("merge-doc", 20, rewound)
    plan = plan_load(log, load.operations, load.after, scope="global", job_id="sync.x.y:0")
    assert plan.merged
    assert plan.rewound == rewound
    assert plan.base == 20 - rewound
    incoming = load.operations[0].action.id
    moved = [log[i].action.id for i in range(20 - rewound, 20)]
    assert [p.action.id for p in plan.ops] == [incoming, *moved]


def test_writes_create_first_then_each_documents_items_in_order() -> None:
    docs = ["d0", "d1"]
    ops = OPS_PER_JOB * 2 + 3
    [creates, *batches] = write_jobs(docs, ops)
    assert [j["document_id"] for j in creates] == docs
    assert all(j["actions"][0]["type"] == "CREATE_DOCUMENT" for j in creates)
    for doc in docs:
        items = [
            a["id"] for b in batches for j in b if j["document_id"] == doc for a in j["actions"]
        ]
        assert items == [f"{doc}-{k}" for k in range(ops)]
    assert all(len(j["actions"]) <= OPS_PER_JOB for b in batches for j in b)

"""Loading and merging lanes (reactor/domain/merge.py, loading.py), on
in-memory replicas written through the apply path's pure functions."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reactor.domain.history import undo_target
from reactor.domain.rejection import JobRejected
from reactor.domain.signing import Ed25519Signer, Ed25519Verifier
from reactor.domain.sync import MERGED_MARK, OperationRef
from tests.support.replica import Replica, at, quiesce, sync


def append(r: Replica, value: str, seconds: float) -> None:
    assert r.write("APPEND", {"value": value}, at(seconds), f"{r.name}-{value}")


def undo(r: Replica, seconds: float, n: int) -> bool:
    return r.write("UNDO", {}, at(seconds), f"{r.name}-undo-{n}")


def test_one_way_load_appends_verbatim_with_the_senders_hashes() -> None:
    a, b = Replica("a"), Replica("b")
    for n in range(3):
        append(a, f"x{n}", n)
    assert sync(a, b) == 3
    assert [op.id for op in b.log] == [op.id for op in a.log]
    assert [op.hash for op in b.log] == [op.hash for op in a.log]
    assert b.state() == ["x0", "x1", "x2"]


def test_loading_the_same_operations_again_appends_nothing() -> None:
    a, b = Replica("a"), Replica("b")
    append(a, "x", 1)
    runs = a.outgoing("b")
    after, ops = runs[0]
    assert b.load("a", after, ops) == 1
    assert b.load("a", after, ops) == 0
    assert len(b.log) == 1


def test_concurrent_writes_merge_by_timestamp_and_skip_covers_the_rewound() -> None:
    a, b = Replica("a"), Replica("b")
    append(a, "a1", 1)
    append(b, "b1", 2)
    append(a, "a2", 3)
    # b loads a's two operations: b1 (t=2) sorts between them.
    sync(a, b)
    assert b.state() == ["a1", "b1", "a2"]
    assert [op.skip for op in b.log] == [0, 1, 0, 0]  # b1, then a1 (skip 1), b1', a2
    assert [op.id for op in b.log[:1]] == [b.log[0].id]  # the stored row is untouched
    copies = b.log[1:]
    assert all(MERGED_MARK in (op.action.context or {}) for op in copies)
    quiesce(a, b)
    assert a.state() == b.state() == ["a1", "b1", "a2"]
    assert a.head.hash == b.head.hash
    assert a.effective() == b.effective()


def test_a_local_order_out_of_timestamp_order_converges_too() -> None:
    a, b = Replica("a"), Replica("b")
    append(a, "late", 5)
    append(a, "early", 1)  # applied after, stamped before
    append(b, "mid", 3)
    quiesce(a, b)
    assert a.state() == b.state() == ["early", "mid", "late"]
    assert a.head.hash == b.head.hash


def test_an_undo_on_one_side_removes_the_action_on_both() -> None:
    a, b = Replica("a"), Replica("b")
    append(a, "keep", 1)
    append(a, "drop", 2)
    quiesce(a, b)
    append(b, "b", 3)
    assert undo(a, 4, 1)
    quiesce(a, b)
    assert a.state() == b.state() == ["keep", "b"]
    assert a.head.hash == b.head.hash
    assert "a-drop" in a.held() and "a-drop" in b.held()


def test_missing_predecessor_is_refused_and_nothing_is_appended() -> None:
    a, b = Replica("a"), Replica("b")
    append(a, "x0", 0)
    append(a, "x1", 1)
    (_, ops), *_ = a.outgoing("b")
    gap = ops[1:]
    after = OperationRef(id="unknown", action_id="unknown", index=0, hash="h")
    with pytest.raises(JobRejected) as err:
        b.load("a", after, gap)
    assert err.value.error_type == "MissingOperationsError"
    assert b.log == []


def test_a_tampered_hash_is_refused() -> None:
    a, b = Replica("a"), Replica("b")
    append(a, "x", 0)
    (after, ops), *_ = a.outgoing("b")
    forged = [ops[0].model_copy(update={"hash": "0" * 64})]
    with pytest.raises(JobRejected) as err:
        b.load("a", after, forged)
    assert err.value.error_type == "HashMismatchError"
    assert b.log == []


def test_rewinding_more_than_the_limit_is_refused() -> None:
    a, b = Replica("a"), Replica("b", max_rewind=3)
    for n in range(5):
        append(b, f"b{n}", 10 + n)
    append(a, "old", 1)
    with pytest.raises(JobRejected) as err:
        sync(a, b)
    assert err.value.error_type == "ExcessiveReshuffleError"
    assert len(b.log) == 5


def test_an_undo_does_not_reach_across_a_merge() -> None:
    a, b = Replica("a"), Replica("b")
    append(b, "b1", 2)
    append(a, "a1", 1)
    sync(a, b)  # b: b1, a1' (skip 1), b1'
    assert b.state() == ["a1", "b1"]
    assert undo(b, 5, 1)  # undoes b1' (the newest)
    assert b.state() == ["a1"]
    # The next would undo the merge's first operation: refused.
    assert undo_target(b.log, len(b.log)) is None
    assert not undo(b, 6, 2)


def test_signatures_are_checked_against_the_senders_chain() -> None:
    signer = Ed25519Signer()
    a = Replica("a", signer=signer)
    b = Replica("b", verifier=Ed25519Verifier({signer.public_key()}))
    append(a, "x0", 0)
    append(a, "x1", 1)
    assert undo(a, 2, 1)
    assert sync(a, b) == 3  # the UNDO's NOOP is checked as the UNDO that was signed
    append(a, "x2", 3)
    (after, ops), *_ = a.outgoing("b")
    action = ops[0].action
    forged = action.model_copy(update={"input": {"value": "forged"}})
    with pytest.raises(JobRejected) as err:
        b.load("a", after, [ops[0].model_copy(update={"action": forged})])
    assert err.value.error_type == "SignatureError"
    unsigned = Replica("u")
    unsigned.write("APPEND", {"value": "u"}, at(5), "u-1")
    (after, ops), *_ = unsigned.outgoing("b")
    fresh = Replica("c", verifier=Ed25519Verifier({signer.public_key()}))
    with pytest.raises(JobRejected) as err:
        fresh.load("u", after, ops)
    assert err.value.error_type == "SignatureError"
    assert fresh.log == []


# -- property: any interleaving converges -------------------------------------

step = st.one_of(
    st.tuples(st.just("write"), st.sampled_from("ab"), st.integers(0, 40)),
    st.tuples(st.just("undo"), st.sampled_from("ab"), st.integers(0, 40)),
    st.tuples(st.just("redo"), st.sampled_from("ab"), st.integers(0, 40)),
    st.tuples(st.just("prune"), st.sampled_from("ab"), st.integers(0, 40)),
    st.tuples(st.just("sync"), st.sampled_from(["ab", "ba"]), st.just(0)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=1, max_size=30))
def test_random_interleavings_of_two_logs_converge(steps: list[tuple[str, str, int]]) -> None:
    """Writes (stamped out of order), UNDO, REDO, PRUNE and partial syncs
    either way, then a full exchange: both sides hold every write, in the
    same effective order, with the same state and hash."""
    replicas = {"a": Replica("a"), "b": Replica("b")}
    written: set[str] = set()
    clock = 100.0
    for n, (kind, who, jitter) in enumerate(steps):
        clock += 1
        # Timestamps wander up to 40 s back: writes land out of order on a
        # side, and concurrent writes interleave across sides.
        stamp = clock - jitter
        if kind == "write":
            r = replicas[who]
            r.write("APPEND", {"value": f"{who}{n}"}, at(stamp), f"{who}-{n}")
            written.add(f"{who}-{n}")
        elif kind in ("undo", "redo"):
            r = replicas[who]
            if r.write(kind.upper(), {}, at(stamp), f"{who}-{kind}-{n}"):
                written.add(f"{who}-{kind}-{n}")
        elif kind == "prune":
            r = replicas[who]
            span = {"start": jitter % max(1, len(r.log)), "end": len(r.log)}
            if r.write("PRUNE", span, at(stamp), f"{who}-prune-{n}"):
                written.add(f"{who}-prune-{n}")
        else:
            sync(replicas[who[0]], replicas[who[1]])
    a, b = replicas["a"], replicas["b"]
    quiesce(a, b)
    assert a.state() == b.state()
    assert a.head.hash == b.head.hash
    assert a.effective() == b.effective()
    assert written <= a.held() and written <= b.held()

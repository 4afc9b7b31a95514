"""JobGraph and ReadySet: the one dependency graph validation, the Scheduler
and the apply activity's chunk runner share (pure, deterministic)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from reactor.domain.graph import CycleError, JobGraph, ReadySet, Step, dependency_failed


@dataclass
class Job:
    key: str
    deps: list[int] = field(default_factory=list)
    after: int | None = None
    index: int = 0


def graph(*jobs: Job) -> JobGraph:
    return JobGraph.of(list(jobs))


# --- the graph -----------------------------------------------------------------------


def test_edges_in_both_directions() -> None:
    # b depends on a; c follows b on its lane and depends on a; d depends on b and c.
    g = graph(Job("a"), Job("b", [0]), Job("c", [0], after=1), Job("d", [1, 2]))
    assert g.preds == [[], [0], [0, 1], [1, 2]]
    assert g.successors == [[1, 2], [2, 3], [3], []]
    # Failure travels along depends_on only: c is not b's dependent.
    assert g.dependents == [[1, 2], [3], [3], []]


def test_a_dependency_that_is_also_the_lane_predecessor_counts_once() -> None:
    g = graph(Job("a"), Job("b", [0, 0], after=0))
    assert g.preds == [[], [0]]
    assert g.successors == [[1], []]
    assert g.order == [0, 1]


def test_order_puts_every_job_after_its_predecessors_lowest_index_first() -> None:
    g = graph(Job("a", [2]), Job("b", [0]), Job("c"), Job("d"), Job("e", after=3))
    assert g.order == [2, 0, 1, 3, 4]


def test_order_does_not_depend_on_how_the_edges_are_listed() -> None:
    one = graph(Job("a"), Job("b"), Job("c", [0, 1]), Job("d", [2, 1, 0]))
    two = graph(Job("a"), Job("b"), Job("c", [1, 0]), Job("d", [0, 2, 1]))
    assert one.order == two.order == [0, 1, 2, 3]
    assert graph(Job("x", [1]), Job("y")).order == [1, 0]


def test_a_chunk_graph_keeps_only_the_edges_inside_the_chunk() -> None:
    # Plan jobs 4, 7 and 9; 7 depends on 4 and on 2 (outside); 9 follows 7 on
    # its lane and depends on 5 (outside).
    g = JobGraph.within(
        [
            Job("p4", index=4),
            Job("p7", [2, 4], index=7),
            Job("p9", [5], after=7, index=9),
        ]
    )
    assert g.keys == ["p4", "p7", "p9"]
    assert g.deps == [[], [0], []]
    assert g.preds == [[], [0], [1]]
    assert g.order == [0, 1, 2]
    # A lane predecessor outside the chunk is no edge either.
    assert JobGraph.within([Job("late", after=3, index=8)]).preds == [[]]


# --- cycles --------------------------------------------------------------------------


def cycle_of(*jobs: Job) -> CycleError:
    with pytest.raises(CycleError) as caught:
        graph(*jobs)
    return caught.value


def test_a_self_loop_is_a_cycle() -> None:
    err = cycle_of(Job("a", [0]))
    assert err.cycle == ["a", "a"]
    assert err.job == "a"
    assert str(err) == (
        "dependency cycle: 'a' -> 'a' (jobs on the same document also run in submission order)"
    )


def test_two_jobs_waiting_for_each_other() -> None:
    err = cycle_of(Job("a", [1]), Job("b", [0]))
    assert err.cycle == ["a", "b", "a"]
    assert err.job == "a"
    assert err.reason == (
        "dependency cycle: 'a' -> 'b' -> 'a' (jobs on the same document also run in "
        "submission order)"
    )


def test_a_long_cycle_names_every_job_in_the_order_they_wait() -> None:
    # a waits for e, e for d, ... b for a; x and y hang off it.
    jobs = [Job("a", [4]), Job("b", [0]), Job("c", [1]), Job("d", [2]), Job("e", [3])]
    err = cycle_of(Job("x"), *[Job(j.key, [d + 1 for d in j.deps]) for j in jobs], Job("y", [1]))
    assert err.cycle == ["a", "e", "d", "c", "b", "a"]
    assert err.job == "a"
    assert "'a' -> 'e' -> 'd' -> 'c' -> 'b' -> 'a'" in str(err)


def test_a_cycle_closed_by_lane_order() -> None:
    # first runs before second (same lane), yet depends on it.
    err = cycle_of(Job("first", [1]), Job("second", after=0))
    assert err.cycle == ["first", "second", "first"]
    assert "submission order" in str(err)


def test_a_cycle_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="dependency cycle"):
        graph(Job("a", [1]), Job("b", [0]))


def test_a_cycle_elsewhere_in_the_graph_is_found() -> None:
    # The search from a reaches d through b, then c, which leads back to d.
    err = cycle_of(Job("a"), Job("b", [0]), Job("c", [3]), Job("d", [2, 1]))
    assert err.cycle == ["d", "c", "d"]
    assert err.job == "d"


# --- failing at once: the Scheduler's cascade -----------------------------------------


def test_cascade_fails_dependents_transitively_naming_the_job_that_reached_them() -> None:
    g = graph(Job("parent"), Job("child", [0]), Job("grandchild", [1]), Job("bystander"))
    assert g.cascade(0, lambda i: True) == [(1, 0), (2, 1)]


def test_cascade_leaves_siblings_and_lane_successors_alone() -> None:
    # sibling shares nothing; "next" follows the failed job on its lane only.
    g = graph(Job("a"), Job("sibling"), Job("next", after=0), Job("dep", [0]))
    assert g.cascade(0, lambda i: True) == [(3, 0)]


def test_cascade_skips_jobs_that_are_not_pending() -> None:
    # b already runs (same chunk): its own outcome decides it, and so c's.
    g = graph(Job("a"), Job("b", [0]), Job("c", [1]), Job("d", [0]))
    assert g.cascade(0, lambda i: i != 1) == [(3, 0)]


def test_cascade_through_a_diamond_fails_the_bottom_once() -> None:
    # a -> b, a -> c, (b, c) -> d: the last dependent pushed is followed first.
    g = graph(Job("a"), Job("b", [0]), Job("c", [0]), Job("d", [1, 2]))
    assert g.cascade(0, lambda i: True) == [(2, 0), (3, 2), (1, 0)]


# --- the ready set: a chunk's jobs as they end ------------------------------------------


def test_independent_jobs_are_ready_together() -> None:
    r = ReadySet(graph(Job("a"), Job("b"), Job("c")))
    assert r.take() == [Step(0), Step(1), Step(2)]
    assert r.take() == []
    assert not r.finished
    for i in range(3):
        r.end(i, True)
    assert r.finished


def test_a_job_waits_for_its_dependency_and_its_lane_predecessor() -> None:
    r = ReadySet(graph(Job("a"), Job("b"), Job("c", [0], after=1), Job("d")))
    assert r.take() == [Step(0), Step(1), Step(3)]
    r.end(1, True)
    assert r.take() == []  # a still runs
    r.end(0, True)
    assert r.take() == [Step(2)]


def test_jobs_freed_together_come_lowest_index_first() -> None:
    r = ReadySet(graph(Job("root"), Job("x", [0]), Job("y", [0]), Job("z", [0])))
    assert r.take() == [Step(0)]
    r.end(0, True)
    assert r.take() == [Step(1), Step(2), Step(3)]


def test_a_failed_dependency_fails_its_dependents_transitively() -> None:
    r = ReadySet(graph(Job("parent"), Job("child", [0]), Job("grandchild", [1]), Job("sibling")))
    assert r.take() == [Step(0), Step(3)]
    r.end(0, False)
    # The child fails naming its parent, the grandchild naming the child.
    assert r.take() == [Step(1, failed_dependency=0), Step(2, failed_dependency=1)]
    assert not r.finished  # the sibling still runs, unaffected
    r.end(3, True)
    assert r.finished


def test_a_failed_lane_predecessor_does_not_stop_its_lane() -> None:
    r = ReadySet(graph(Job("a"), Job("b", after=0)))
    assert r.take() == [Step(0)]
    r.end(0, False)
    assert r.take() == [Step(1)]


def test_a_dependent_of_a_failure_waits_for_its_other_predecessors() -> None:
    # c depends on a (fails) and follows b on its lane (still running).
    r = ReadySet(graph(Job("a"), Job("b"), Job("c", [0], after=1)))
    assert r.take() == [Step(0), Step(1)]
    r.end(0, False)
    assert r.take() == []
    r.end(1, True)
    assert r.take() == [Step(2, failed_dependency=0)]


def test_diamond_with_one_failed_branch() -> None:
    r = ReadySet(graph(Job("top"), Job("left", [0]), Job("right", [0]), Job("bottom", [1, 2])))
    assert r.take() == [Step(0)]
    r.end(0, True)
    assert r.take() == [Step(1), Step(2)]
    r.end(2, False)
    assert r.take() == []  # bottom waits for left too
    r.end(1, True)
    assert r.take() == [Step(3, failed_dependency=2)]


def test_diamond_with_both_branches_failed_names_the_first_in_depends_on_order() -> None:
    for deps, named in (([1, 2], 1), ([2, 1], 2)):
        r = ReadySet(graph(Job("top"), Job("left", [0]), Job("right", [0]), Job("bottom", deps)))
        r.take()
        r.end(0, True)
        r.take()
        r.end(2, False)
        r.end(1, False)
        assert r.take() == [Step(3, failed_dependency=named)]


def test_a_failed_top_fails_the_whole_diamond() -> None:
    r = ReadySet(graph(Job("top"), Job("left", [0]), Job("right", [0]), Job("bottom", [1, 2])))
    r.take()
    r.end(0, False)
    assert r.take() == [Step(1, 0), Step(2, 0), Step(3, 1)]
    assert r.finished


def test_a_job_that_raised_strands_everything_after_it() -> None:
    # b depends on a, c follows b on its lane, d depends on c; x is independent.
    r = ReadySet(graph(Job("a"), Job("b", [0]), Job("c", after=1), Job("d", [2]), Job("x")))
    assert r.take() == [Step(0), Step(4)]
    r.end(0, None)
    assert r.take() == []  # none of b, c, d runs: the retry runs them in order
    assert r.stranded == [1, 2, 3]
    r.end(4, True)
    assert r.finished


def test_a_raised_predecessor_outweighs_a_failed_dependency() -> None:
    r = ReadySet(graph(Job("a"), Job("b"), Job("c", [0], after=1)))
    r.take()
    r.end(0, False)
    r.end(1, None)
    assert r.take() == []
    assert r.stranded == [2]


def test_jobs_ended_before_they_were_handed_out_free_their_successors() -> None:
    # b was given up before it started: c, after it on the lane, goes on,
    # and b is never handed out once a ends.
    r = ReadySet(graph(Job("a"), Job("b", [0]), Job("c", after=1), Job("d", [1])))
    r.end(1, False)
    assert r.take() == [Step(0), Step(2), Step(3, failed_dependency=1)]
    r.end(0, True)
    assert r.take() == []
    r.end(2, True)
    assert r.finished


def test_a_job_ends_once() -> None:
    r = ReadySet(graph(Job("a")))
    r.take()
    r.end(0, True)
    with pytest.raises(ValueError, match="'a' already ended"):
        r.end(0, False)


def test_the_error_of_a_failed_dependency_names_it() -> None:
    err = dependency_failed("parent")
    assert err.type == "DependencyFailed"
    assert err.dependency == "parent"
    assert err.message == "dependency 'parent' failed"


# --- random graphs -----------------------------------------------------------------------


def random_jobs(rng: random.Random, size: int) -> list[Job]:
    """Acyclic by construction (every edge points from a lower rank to a
    higher one), with indices shuffled so that edges point both ways."""
    rank = list(range(size))
    rng.shuffle(rank)
    at_rank = {r: i for i, r in enumerate(rank)}
    jobs = [Job(f"j{i}") for i in range(size)]
    last: dict[int, int] = {}
    for r in range(size):
        i = at_rank[r]
        lane = rng.randrange(4)
        jobs[i].after = last.get(lane)
        last[lane] = i
        jobs[i].deps = [at_rank[p] for p in rng.sample(range(r), min(r, rng.randrange(4)))]
    return jobs


SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_order_respects_every_edge_and_is_reproducible(seed: int) -> None:
    rng = random.Random(seed)
    jobs = random_jobs(rng, rng.randrange(1, 40))
    g = JobGraph.of(jobs)
    position = {job: n for n, job in enumerate(g.order)}
    assert sorted(g.order) == list(range(len(jobs)))
    for i, job in enumerate(jobs):
        for p in [*job.deps, *([job.after] if job.after is not None else [])]:
            assert position[p] < position[i]
    assert JobGraph.of(jobs).order == g.order


@pytest.mark.parametrize("seed", SEEDS)
def test_random_runs_follow_the_rules(seed: int) -> None:
    """Jobs end in a random order, some failing or raising: every job is
    decided once, only after its predecessors, and as soon as they ended."""
    rng = random.Random(seed)
    jobs = random_jobs(rng, rng.randrange(1, 40))
    g = JobGraph.of(jobs)
    r = ReadySet(g)
    ended: dict[int, bool | None] = {}
    running: list[int] = []
    while True:
        for step in r.take():
            preds = g.preds[step.job]
            assert all(p in ended for p in preds), "decided before its predecessors ended"
            assert all(ended[p] is not None for p in preds)
            assert step.job not in ended
            failed = [d for d in jobs[step.job].deps if ended[d] is False]
            assert step.failed_dependency == (failed[0] if failed else None)
            if step.failed_dependency is None:
                running.append(step.job)
            else:
                ended[step.job] = False
        for job in r.stranded:
            if job not in ended:
                assert any(ended.get(p, 0) is None for p in g.preds[job])
                ended[job] = None
        # Nothing left waiting whose predecessors all ended.
        for i in range(len(jobs)):
            if i not in ended and i not in running:
                assert not all(p in ended for p in g.preds[i])
        if not running:
            break
        job = running.pop(rng.randrange(len(running)))
        ended[job] = rng.choice([True, True, True, False, None])
        r.end(job, ended[job])
    assert r.finished
    assert sorted(ended) == list(range(len(jobs)))

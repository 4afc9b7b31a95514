"""The write cache: bounded lanes, a ring of recent revisions per lane, and
never a state for a revision other than the one asked for."""

from reactor.application.write_cache import CachedState, WriteCache


def entry(rev: int) -> CachedState:
    return CachedState(rev, f"h{rev}", {"rev": rev})


def test_hit_only_at_the_exact_revision() -> None:
    cache = WriteCache(max_documents=10)
    cache.put(("d", "global", "main"), entry(3))
    assert cache.get(("d", "global", "main"), 3) == entry(3)
    assert cache.get(("d", "global", "main"), 4) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_ring_keeps_the_last_n_revisions_per_lane() -> None:
    cache = WriteCache(max_documents=10, ring_buffer_size=2)
    for rev in (1, 2, 3):
        cache.put(("d", "global", "main"), entry(rev))
    assert cache.get(("d", "global", "main"), 1) is None
    assert cache.get(("d", "global", "main"), 2) == entry(2)
    assert cache.get(("d", "global", "main"), 3) == entry(3)


def test_least_recently_used_lane_is_evicted() -> None:
    cache = WriteCache(max_documents=2)
    cache.put(("a", "global", "main"), entry(1))
    cache.put(("b", "global", "main"), entry(1))
    cache.get(("a", "global", "main"), 1)
    cache.put(("c", "global", "main"), entry(1))
    assert len(cache) == 2
    assert cache.get(("b", "global", "main"), 1) is None
    assert cache.get(("a", "global", "main"), 1) is not None


def test_an_older_revision_put_after_a_newer_one_drops_the_newer() -> None:
    """A retry may re-put an older head: the ring must not keep a 'future'."""
    cache = WriteCache(max_documents=2, ring_buffer_size=3)
    cache.put(("a", "global", "main"), entry(5))
    cache.put(("a", "global", "main"), entry(4))
    assert cache.get(("a", "global", "main"), 5) is None
    assert cache.get(("a", "global", "main"), 4) == entry(4)

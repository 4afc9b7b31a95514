"""GC settings (reactor/runtime/gc_tuning.py): the worker's, and the pause
around planning a batch."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reactor.runtime.gc_tuning import WORKER_THRESHOLDS, gc_paused, tune_for_worker
from reactor.runtime.settings import gc_thresholds_from_env as thresholds_from_env


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_workers_use_the_worker_thresholds_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("REACTOR_GC_THRESHOLDS", raising=False)
    assert thresholds_from_env() == WORKER_THRESHOLDS
    monkeypatch.setenv("REACTOR_GC_THRESHOLDS", "5000, 10, 10")
    assert thresholds_from_env() == (5000, 10, 10)
    monkeypatch.setenv("REACTOR_GC_THRESHOLDS", "default")
    assert thresholds_from_env() is None


@pytest.mark.parametrize("raw", ["700,10", "a,b,c", "700,10,-1", "1,2,3,4"])
def test_a_malformed_setting_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("REACTOR_GC_THRESHOLDS", raw)
    with pytest.raises(ValueError, match="REACTOR_GC_THRESHOLDS"):
        thresholds_from_env()


@pytest.mark.usefixtures("restore_gc")
def test_tuning_freezes_what_exists_and_sets_the_thresholds() -> None:
    tune_for_worker((12_345, 7, 9))
    assert gc.get_threshold() == (12_345, 7, 9)
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("restore_gc")
def test_default_leaves_the_collector_alone() -> None:
    before = gc.get_threshold()
    tune_for_worker(None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _collections() -> int:
    return sum(g["collections"] for g in gc.get_stats())


def test_gc_paused_holds_collection_off_then_restores_it() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        before = _collections()
        keep = [_Cycle() for _ in range(20_000)]  # far past any threshold
        assert _collections() == before
    assert gc.isenabled()
    del keep


def test_gc_paused_restores_the_collector_when_the_stretch_raises() -> None:
    with pytest.raises(ValueError), gc_paused():
        raise ValueError("bad batch")
    assert gc.isenabled()


def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()

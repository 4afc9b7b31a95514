"""Worker GC settings (reactor/runtime/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from reactor.runtime.gc_tuning import WORKER_THRESHOLDS, thresholds_from_env, tune_for_worker


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

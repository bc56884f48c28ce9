"""``EVENTS_GC_THRESHOLD`` (shared/app/runtime.py ``tune_garbage_collection``): the worker's
collector thresholds, and Python's left alone with 0."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared.app.runtime import GC_OLDER_THRESHOLDS, tune_garbage_collection


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_a_threshold_sets_the_collectors_generations() -> None:
    tune_garbage_collection(12_345)
    assert gc.get_threshold() == (12_345, *GC_OLDER_THRESHOLDS)


def test_zero_leaves_pythons_thresholds() -> None:
    gc.set_threshold(700, 10, 10)
    tune_garbage_collection(0)
    assert gc.get_threshold() == (700, 10, 10)

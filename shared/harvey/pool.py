"""A thread pool that refuses work instead of queueing it without limit.

Drafts (async and streamed) and document uploads run off the request thread. Each pool has `workers`
threads and at most `workers + queue_depth` jobs admitted; past that `submit` raises `Full` before the
caller has written anything, so the client gets a 503 + Retry-After instead of an unbounded wait.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Full(Exception):
    """Every slot of the pool is taken."""


class BoundedPool:
    def __init__(self, name: str, workers: int, queue_depth: int) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix=f"harvey-{name}")
        self._slots = threading.BoundedSemaphore(workers + queue_depth)

    def submit(self, prepare: Callable[[], T], work: Callable[[T], R]) -> tuple[T, Future[R]]:
        """Take a slot (Full when none is free), run `prepare` in the caller's thread (e.g. write the row),
        then `work(prepared)` on a pool thread. The slot is free again when `work` ends or `prepare` raises."""
        if not self._slots.acquire(blocking=False):
            raise Full
        try:
            prepared = prepare()
            return prepared, self._executor.submit(self._run, work, prepared)
        except BaseException:
            self._slots.release()
            raise

    def _run(self, work: Callable[[T], R], prepared: T) -> R:
        try:
            return work(prepared)
        finally:  # before the future is resolved: whoever waits on it finds the slot free
            self._slots.release()


_lock = threading.Lock()
_pools: dict[tuple[str, int, int], BoundedPool] = {}


def named(name: str, workers: int, queue_depth: int) -> BoundedPool:
    """The process's pool called `name` of that size, made on first use (a scaled-from-zero pod starts none)."""
    with _lock:
        key = (name, workers, queue_depth)
        if key not in _pools:
            _pools[key] = BoundedPool(name, workers, queue_depth)
        return _pools[key]

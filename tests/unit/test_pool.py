"""The bounded pool admits workers + queue_depth jobs, refuses the next before `prepare` runs, and frees
a slot when a job ends or its `prepare` fails."""

from __future__ import annotations

import threading

import pytest
from harvey.pool import BoundedPool, Full


def test_past_its_slots_the_pool_refuses_before_anything_is_prepared():
    pool, release, prepared = BoundedPool("t", 1, 1), threading.Event(), []
    for n in range(2):
        pool.submit(lambda n=n: prepared.append(n), lambda _: release.wait(5))
    with pytest.raises(Full):
        pool.submit(lambda: prepared.append("third"), lambda _: None)
    assert prepared == [0, 1]
    release.set()


def test_a_finished_job_and_a_failed_prepare_give_their_slot_back():
    pool = BoundedPool("t", 1, 0)
    _, done = pool.submit(lambda: 2, lambda x: x * 21)
    assert done.result(5) == 42
    done.exception(5)
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0, lambda _: None)
    _, again = pool.submit(lambda: "free", lambda x: x)
    assert again.result(5) == "free"

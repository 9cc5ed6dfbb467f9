"""`runner.workers.Workers` alone; whole interrupted runs: test_run_ending.py."""

from __future__ import annotations

import threading

import pytest

from runner.workers import Workers


def test_workers_run_every_item_on_at_most_count_daemon_threads() -> None:
    seen: list[tuple[int, str]] = []
    lock = threading.Lock()

    def work(item: int) -> None:
        with lock:
            seen.append((item, threading.current_thread().name))
        assert threading.current_thread().daemon

    workers = Workers(work, range(10), count=3, name="test")
    workers.start()

    assert workers.wait(timeout=5)
    assert sorted(item for item, _ in seen) == list(range(10))
    assert {name for _, name in seen} <= {"test-0", "test-1", "test-2"}


def test_workers_wait_returns_false_while_an_item_is_still_running() -> None:
    release = threading.Event()
    workers = Workers(lambda _: release.wait(5), [1], count=4, name="test")
    workers.start()

    assert not workers.wait(timeout=0.05)
    release.set()
    assert workers.wait(timeout=5)


def test_workers_error_is_raised_in_the_waiter_after_the_other_items_ran() -> None:
    done: list[int] = []

    def work(item: int) -> None:
        if item == 0:
            raise ValueError("item 0 broke")
        done.append(item)

    workers = Workers(work, range(3), count=1, name="test")
    workers.start()

    with pytest.raises(ValueError, match="item 0 broke"):
        workers.wait(timeout=5)
    assert done == [1, 2]


def test_workers_with_no_items_are_done_at_once() -> None:
    workers: Workers[int] = Workers(lambda _: None, [], count=4, name="test")
    workers.start()
    assert workers.wait(timeout=0)

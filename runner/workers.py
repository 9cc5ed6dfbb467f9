"""Worker threads that a run can walk away from: the suites' pool.

`concurrent.futures.ThreadPoolExecutor` would do the scheduling, but the
interpreter joins its threads when it exits. A worker blocked reading a
response that never comes is not woken by closing its httpx client, so
after Ctrl-C the process would live on until that request timed out. The
threads here are daemons: the run waits for them as long as it chooses,
then leaves a stuck one behind, and the interpreter drops it at exit.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

__all__ = ["Workers"]

Item = TypeVar("Item")


class Workers(Generic[Item]):
    """Calls `work` on every item, in order, on at most `count` daemon threads.

    Args:
        work: What each item is handed to; it runs in a worker thread.
        items: The items; a worker takes the next one when it is free.
        count: How many threads (fewer when there are fewer items).
        name: The threads' name prefix, for debuggers and thread dumps.
    """

    def __init__(
        self,
        work: Callable[[Item], None],
        items: Iterable[Item],
        *,
        count: int,
        name: str,
    ) -> None:
        self._work = work
        self._items = collections.deque(items)
        self._lock = threading.Lock()
        self._running = min(count, len(self._items))
        self._done = threading.Event()
        self._error: BaseException | None = None
        self._threads = [
            threading.Thread(target=self._loop, name=f"{name}-{number}", daemon=True)
            for number in range(self._running)
        ]
        if not self._threads:
            self._done.set()

    def start(self) -> None:
        """Start the threads."""
        for thread in self._threads:
            thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every item is done, or for `timeout` seconds.

        Ctrl-C interrupts the wait (a `KeyboardInterrupt` in the caller).

        Returns:
            True when every item is done, False when time ran out first.

        Raises:
            BaseException: The first exception that `work` raised, once every
                item is done; the other items still ran.
        """
        if not self._done.wait(timeout):
            return False
        if self._error is not None:
            raise self._error
        return True

    def _loop(self) -> None:
        try:
            while True:
                with self._lock:
                    if not self._items:
                        return
                    item = self._items.popleft()
                try:
                    self._work(item)
                except BaseException as error:  # re-raised in the waiting thread
                    with self._lock:
                        self._error = self._error or error
        finally:
            with self._lock:
                self._running -= 1
                if self._running == 0:
                    self._done.set()

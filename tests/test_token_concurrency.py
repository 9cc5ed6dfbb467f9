"""The token manager under threads: one fetch in flight per connection.

Many requests at once share one fetch, a revoked token is renewed once, a
waiter that gives up does not break the fetch for the others, and a slow
token endpoint holds up only its own connection. The rules one at a time
are in test_tokens.py.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from runner.errors import TokenError
from runner.tokens import RetryPolicy, TokenManager
from tests.oauth_servers import FixtureServer, Reply, SecretWatch, wait_until

REQUESTS = 500
WORKERS = 64


# Every test is watched for leaked secrets (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("watch")


class Interrupted(BaseException):
    """Stands for KeyboardInterrupt, which would stop pytest itself."""


@contextmanager
def interrupt_main_thread_after(delay: float) -> Iterator[None]:
    """Deliver a real SIGINT to the main thread after `delay` seconds.

    The handler raises `Interrupted` wherever the main thread is, exactly
    as Ctrl-C raises KeyboardInterrupt in a blocked ``Lock.acquire`` or a
    socket read.
    """

    def handler(signum: int, frame: object) -> None:
        raise Interrupted

    main = threading.main_thread().ident
    assert main is not None and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, handler)
    timer = threading.Timer(delay, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)


def run_threads(count: int, target: Callable[[], object]) -> list[object]:
    """Run `target` in `count` threads at once; their results or exceptions."""
    results: list[object] = [None] * count

    def work(index: int) -> None:
        try:
            results[index] = target()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert not any(thread.is_alive() for thread in threads)
    return results


def send_all(
    watch: SecretWatch, server: FixtureServer, manager: TokenManager
) -> list[int]:
    """Send REQUESTS GETs through one client from WORKERS threads; the statuses."""
    client = watch.client(manager)

    def get(number: int) -> int:
        return client.get(f"{server.api_url}/items/{number}").status_code

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(get, range(REQUESTS), timeout=60))


def test_500_requests_at_once_fetch_the_token_exactly_once(watch: SecretWatch) -> None:
    """The token endpoint is slow (0.3 s), so nearly every worker waits for it."""
    server = watch.fixture_server(token_delay=0.3)
    manager = watch.manager(server)

    statuses = send_all(watch, server, manager)

    assert statuses == [200] * REQUESTS
    assert server.token_requests == manager.fetches == 1
    assert server.api_requests == REQUESTS


def test_token_revoked_in_flight_is_renewed_by_exactly_one_fetch(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server()
    server.revoke_after_api_requests = 100
    manager = watch.manager(server)

    statuses = send_all(watch, server, manager)

    assert statuses == [200] * REQUESTS
    assert server.token_requests == 2
    assert server.api_statuses[401] >= 1
    assert server.api_requests == REQUESTS + server.api_statuses[401]


def test_api_always_401_under_load_costs_two_fetches(watch: SecretWatch) -> None:
    """Every request is sent twice; the renewed token is not renewed again."""
    server = watch.fixture_server(api_always_401=True)
    manager = watch.manager(server)

    statuses = send_all(watch, server, manager)

    assert statuses == [401] * REQUESTS
    assert server.api_requests == 2 * REQUESTS
    assert server.token_requests == 2


def test_threads_waiting_on_a_refused_fetch_fail_fast_with_one_request(
    watch: SecretWatch,
) -> None:
    server = watch.fixture_server(token_delay=0.3)
    manager = watch.manager(server, client_secret="wrong-secret-for-load")
    watch.secret_values.add("wrong-secret-for-load")

    results = run_threads(WORKERS, manager.token)

    assert all(isinstance(result, TokenError) for result in results)
    messages = {str(result) for result in results}
    assert len(messages) == 1 and "invalid_client" in messages.pop()
    assert len({id(result) for result in results}) == WORKERS
    watch.seen(*results)
    assert server.token_requests == 1


def test_callers_arriving_during_a_retry_wait_do_not_fetch(watch: SecretWatch) -> None:
    server = watch.fixture_server()
    server.replies.append(Reply.json(503, {}, {"Retry-After": "1"}))
    manager = watch.manager(server)

    results = run_threads(32, manager.token)

    assert results == [server.issued[0]] * 32
    assert server.token_requests == 2


def test_interrupted_waiter_does_not_break_the_fetch_for_others(
    watch: SecretWatch,
) -> None:
    """A worker whose wait for the lock is interrupted leaves; the fetch goes on."""
    server = watch.fixture_server(token_delay=1.0)
    manager = watch.manager(server)
    fetcher = threading.Thread(target=manager.token)
    fetcher.start()
    assert wait_until(lambda: server.token_requests == 1)
    waiters: list[object] = []
    waiting = threading.Thread(
        target=lambda: waiters.extend(run_threads(8, manager.token))
    )
    waiting.start()

    with interrupt_main_thread_after(0.2), pytest.raises(Interrupted):
        manager.token()

    fetcher.join(timeout=10)
    waiting.join(timeout=10)
    assert waiters == [server.issued[0]] * 8
    assert manager.token() == server.issued[0]
    assert server.token_requests == manager.fetches == 1


def test_interrupted_fetch_is_not_cached_and_a_waiter_fetches_again(
    watch: SecretWatch,
) -> None:
    """The thread holding the lock is interrupted mid-fetch: nothing is remembered."""
    server = watch.fixture_server(token_delay=1.0)
    manager = watch.manager(server)
    waiters: list[object] = []

    def start_waiters_once_the_fetch_is_in_flight() -> None:
        if wait_until(lambda: server.token_requests == 1):
            server.token_delay = 0.0
            waiters.extend(run_threads(8, manager.token))

    helper = threading.Thread(target=start_waiters_once_the_fetch_is_in_flight)
    helper.start()
    try:
        with interrupt_main_thread_after(0.4), pytest.raises(Interrupted):
            manager.token()
    finally:
        helper.join(timeout=15)

    assert server.token_requests == manager.fetches == 2
    assert waiters == [server.issued[1]] * 8
    assert manager.failure is None


def test_slow_token_fetch_does_not_hold_up_another_connection(
    watch: SecretWatch,
) -> None:
    slow_server = watch.fixture_server(token_delay=2.0)
    fast_server = watch.fixture_server()
    slow = watch.manager(slow_server, name="slow")
    fast = watch.manager(fast_server, name="fast")
    slow_client = watch.client(slow)
    fast_client = watch.client(fast)
    slow_statuses: list[int] = []
    slow_request = threading.Thread(
        target=lambda: slow_statuses.append(
            slow_client.get(f"{slow_server.api_url}/x").status_code
        )
    )

    slow_request.start()
    assert wait_until(lambda: slow_server.token_requests == 1)
    started = time.monotonic()
    fast_statuses = [
        fast_client.get(f"{fast_server.api_url}/{n}").status_code for n in range(20)
    ]
    fast_elapsed = time.monotonic() - started
    slow_still_fetching = slow_request.is_alive()
    slow_request.join(timeout=10)

    assert fast_statuses == [200] * 20
    assert fast_elapsed < 1.0
    assert slow_still_fetching
    assert slow_statuses == [200]


def test_retry_backoff_of_one_connection_does_not_block_another(
    watch: SecretWatch,
) -> None:
    failing = watch.fixture_server()
    failing.replies.extend(Reply.json(503, {}) for _ in range(3))
    healthy = watch.fixture_server()
    backing_off = watch.manager(
        failing, name="failing", retry=RetryPolicy(base_delay=0.2)
    )
    other = watch.manager(healthy, name="healthy")
    thread = threading.Thread(target=backing_off.token)

    thread.start()
    assert wait_until(lambda: failing.token_requests >= 1)
    started = time.monotonic()
    other.token()
    elapsed = time.monotonic() - started
    thread.join(timeout=10)

    assert elapsed < 0.5
    assert failing.token_requests == 4

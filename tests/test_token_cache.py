"""The token cache across runs (``runner run --token-cache``, runner/token_cache.py).

Whole runs against the fixture token server on 127.0.0.1, the cache folder
under tmp_path through ``RUNNER_CACHE_DIR``: reuse, expiry, a changed
secret, file modes, untrusted folders and files, a revoked cached token,
and processes started together. The margin arithmetic and the lock's
timeout are tested on the token manager alone, at the end. The token
manager without a cache is tested in test_tokens.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import runner.token_cache
from runner.cli import main
from runner.errors import TokenError
from runner.secrets import Redactor
from runner.token_cache import TokenCache, default_cache_folder
from runner.tokens import RetryPolicy, TokenManager
from tests.oauth_servers import ABSENT, FixtureServer, SecretWatch, connection_for

SECRET_ENV = "RUNNER_TEST_CLIENT_SECRET"
SUITE = "connection: connection.yaml\nrequests: [{url: a}, {url: b}]\n"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    with FixtureServer() as server:
        monkeypatch.setenv(SECRET_ENV, server.client_secret)
        yield server


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The runner's cache folder; the tokens go in its ``tokens`` folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(folder))
    return folder


def _suite(folder: Path, server: FixtureServer, text: str = SUITE) -> Path:
    connection = f"""\
        url: {server.api_url}
        token_url: {server.token_url}
        client_id: {server.client_id}
        client_secret: "{{{{ env.{SECRET_ENV} }}}}"
        """
    (folder / "connection.yaml").write_text(textwrap.dedent(connection), "utf-8")
    suite = folder / "suite.yaml"
    suite.write_text(text, encoding="utf-8")
    return suite


def _run(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", "--token-cache", *args], stdout=out, stderr=err)
    return status, out.getvalue() + err.getvalue()


def _entries(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "tokens").glob("*.json"))


def _only_entry(cache_dir: Path) -> Path:
    entries = _entries(cache_dir)
    assert len(entries) == 1, entries
    return entries[0]


def _assert_no_secrets(text: str, server: FixtureServer) -> None:
    for secret in (server.client_secret, *server.issued):
        assert secret not in text


def test_second_run_reuses_the_cached_token_without_a_fetch(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, server)

    first_status, first = _run(str(suite))
    # -vv traces the token requests and every Authorization header: masked.
    second_status, second = _run("-vv", str(suite))

    assert first_status == 0 and second_status == 0, first + second
    assert server.token_requests == 1
    assert server.api_statuses[200] == 4
    assert "2 passed, 0 failed; 1 token fetched;" in first.splitlines()[-1]
    assert "; 0 tokens fetched, 1 from cache;" in second.splitlines()[-1]
    assert "token request" not in second  # no trace: nothing was fetched
    _assert_no_secrets(first + second, server)


def test_cached_token_within_its_margin_of_expiry_is_fetched_again(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    """A 1 s token is kept for half its life (0.5 s): 0.6 s later it is stale."""
    server.expires_in = 1
    suite = _suite(tmp_path, server, "connection: connection.yaml\nrequests: [{}]\n")

    assert _run(str(suite))[0] == 0
    time.sleep(0.6)
    status, out = _run(str(suite))

    assert status == 0, out
    assert server.token_requests == 2
    assert "1 token fetched;" in out.splitlines()[-1]
    assert "from cache" not in out
    entry = json.loads(_only_entry(cache_dir).read_text())
    assert entry["access_token"] == server.issued[-1]


def test_changed_client_secret_fetches_a_new_token_and_keeps_the_old_entry(
    server: FixtureServer,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    suite = _suite(tmp_path, server)
    old_secret, new_secret = server.client_secret, "a-rotated-secret-9f2k"

    assert _run(str(suite))[0] == 0
    server.client_secret = new_secret
    monkeypatch.setenv(SECRET_ENV, new_secret)
    rotated_status, rotated = _run(str(suite))
    server.client_secret = old_secret
    monkeypatch.setenv(SECRET_ENV, old_secret)
    back_status, back = _run(str(suite))

    assert rotated_status == 0 and back_status == 0, rotated + back
    assert server.token_requests == 2
    assert "1 token fetched;" in rotated.splitlines()[-1]
    assert "0 tokens fetched, 1 from cache" in back.splitlines()[-1]
    assert len(_entries(cache_dir)) == 2
    on_disk = b"".join(path.read_bytes() for path in (cache_dir / "tokens").iterdir())
    for secret in (old_secret, new_secret):
        assert secret.encode() not in on_disk
        assert secret not in " ".join(path.name for path in _entries(cache_dir))
    _assert_no_secrets(rotated + back + new_secret, server)


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_cache_folder_is_0700_and_its_files_0600_whatever_the_umask(
    server: FixtureServer, cache_dir: Path, tmp_path: Path, umask: int
) -> None:
    """Too open (0) or taking the owner's own bits (0o277): the modes are set."""
    suite = _suite(tmp_path, server)
    cache_dir.mkdir()

    previous = os.umask(umask)
    try:
        status, out = _run(str(suite))
    finally:
        os.umask(previous)

    assert status == 0, out
    folder = cache_dir / "tokens"
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700
    names = sorted(path.suffix or path.name for path in folder.iterdir())
    assert names == [".json", ".lock", "key"]  # no temporary file left behind
    for path in folder.iterdir():
        assert stat.S_IMODE(path.lstat().st_mode) == 0o600, path.name
        assert path.lstat().st_uid == os.getuid()


def test_own_cache_folder_readable_by_others_is_tightened_and_used(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    folder = cache_dir / "tokens"
    folder.mkdir(parents=True)
    folder.chmod(0o755)
    suite = _suite(tmp_path, server)

    status, out = _run(str(suite))

    assert status == 0 and "warning" not in out, out
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700
    assert len(_entries(cache_dir)) == 1


def _world_writable(folder: Path) -> None:
    folder.mkdir(parents=True)
    folder.chmod(0o777)


def _symlink(folder: Path) -> None:
    target = folder.parent / "elsewhere"
    target.mkdir(parents=True, mode=0o700)
    folder.symlink_to(target, target_is_directory=True)


def _a_file(folder: Path) -> None:
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")


@pytest.mark.parametrize(
    ("prepare", "reason"),
    [
        (_world_writable, "may be written by other users (mode 777)"),
        (_symlink, "is a symbolic link"),
        (_a_file, "is not a folder"),
    ],
)
def test_untrusted_cache_folder_is_not_used_and_the_run_warns(
    server: FixtureServer,
    cache_dir: Path,
    tmp_path: Path,
    prepare: Callable[[Path], None],
    reason: str,
) -> None:
    folder = cache_dir / "tokens"
    prepare(folder)
    suite = _suite(tmp_path, server)

    results = [_run(str(suite)), _run(str(suite))]

    assert [status for status, _ in results] == [0, 0], results
    for _, out in results:
        assert f"warning: token cache: {folder} {reason}; tokens are not" in out
    assert server.token_requests == 2
    written = [path.name for path in cache_dir.rglob("*") if path.is_file()]
    assert written in ([], ["tokens"])  # only the file the test itself made
    assert not any((cache_dir / "elsewhere").glob("*"))


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff not json at all")


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _edited(**changes: object) -> Callable[[Path], None]:
    def edit(path: Path) -> None:
        document = json.loads(path.read_text())
        document.update(changes)
        path.write_text(json.dumps(document))

    return edit


def _readable_by_others(path: Path) -> None:
    path.chmod(0o644)


def _another_owner(path: Path) -> None:
    if os.getuid() != 0:
        pytest.skip("only root can give a file to another user")
    os.chown(path, 54321, 54321)


def _a_symlink(path: Path) -> None:
    target = path.with_name("elsewhere.json")
    path.rename(target)
    path.symlink_to(target)


@pytest.mark.parametrize(
    "spoil",
    [
        _garbage,
        _truncated,
        _empty,
        _edited(identity="0" * 64),  # another identity's entry
        _edited(version=99),
        _edited(access_token="has a space"),
        _edited(lifetime=True),
        _edited(expires_at=4102444800.0),  # more life left than its lifetime
        _readable_by_others,
        _another_owner,
        _a_symlink,
    ],
    ids=lambda spoil: getattr(spoil, "__name__", "edit"),
)
def test_untrusted_entry_is_ignored_and_replaced(
    server: FixtureServer,
    cache_dir: Path,
    tmp_path: Path,
    spoil: Callable[[Path], None],
) -> None:
    suite = _suite(tmp_path, server)
    assert _run(str(suite))[0] == 0
    entry = _only_entry(cache_dir)
    spoil(entry)

    spoiled_status, spoiled = _run(str(suite))
    again_status, again = _run(str(suite))

    assert spoiled_status == 0 and again_status == 0, spoiled + again
    assert server.token_requests == 2
    assert "1 token fetched;" in spoiled.splitlines()[-1]
    assert "0 tokens fetched, 1 from cache" in again.splitlines()[-1]
    assert not entry.is_symlink()
    info = entry.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
    assert json.loads(entry.read_text())["access_token"] == server.issued[-1]
    _assert_no_secrets(spoiled + again, server)


def test_token_of_unknown_lifetime_is_not_cached(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    server.expires_in = ABSENT
    suite = _suite(tmp_path, server)

    results = [_run(str(suite)), _run(str(suite))]

    assert [status for status, _ in results] == [0, 0], results
    assert server.token_requests == 2
    assert _entries(cache_dir) == []


def test_revoked_cached_token_is_renewed_once_and_replaced_in_the_cache(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, server)
    assert _run(str(suite))[0] == 0
    server.revoke_all()

    renewed_status, renewed = _run(str(suite))
    after_status, after = _run(str(suite))

    assert renewed_status == 0 and after_status == 0, renewed + after
    assert server.token_requests == 2
    assert server.api_statuses[401] == 1  # the cached token, refused once
    assert "1 token fetched, 1 from cache" in renewed.splitlines()[-1]
    assert "0 tokens fetched, 1 from cache" in after.splitlines()[-1]
    entry = json.loads(_only_entry(cache_dir).read_text())
    assert entry["access_token"] == server.issued[1]
    _assert_no_secrets(renewed + after, server)


def test_processes_started_together_share_one_fetch(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    """Three processes, a token endpoint slow enough that all of them wait on it."""
    server.token_delay = 2.0
    suite = _suite(tmp_path, server)
    env = {**os.environ, "NO_COLOR": "1"}
    command = [sys.executable, "-m", "runner", "run", "--token-cache", str(suite)]

    processes = [
        subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs: list[str] = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=30)[0])
    finally:
        for process in processes:
            process.kill()
            process.wait(timeout=5)

    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    assert server.token_requests == 1
    summaries = sorted(output.splitlines()[-1].split("; ")[1] for output in outputs)
    assert summaries == [
        "0 tokens fetched, 1 from cache",
        "0 tokens fetched, 1 from cache",
        "1 token fetched",
    ]
    # They overlapped: each request waited for the one fetch in flight (a
    # request with a token at hand takes a few milliseconds here).
    for output in outputs:
        first = output.splitlines()[0]
        assert first.startswith("PASS") and first.endswith(" ms"), output
        assert float(first.split()[-2]) > 250, output
    _assert_no_secrets("".join(outputs), server)


def test_cache_folder_defaults_to_the_xdg_cache_home_unless_overridden() -> None:
    home = Path.home()

    assert default_cache_folder({"RUNNER_CACHE_DIR": "/srv/c"}) == Path("/srv/c/tokens")
    assert default_cache_folder({"XDG_CACHE_HOME": "/x"}) == Path("/x/runner/tokens")
    # A relative XDG_CACHE_HOME is invalid (XDG Base Directory spec): ignored.
    relative = {"XDG_CACHE_HOME": "rel"}
    assert default_cache_folder(relative) == home / ".cache/runner/tokens"
    assert default_cache_folder({}) == home / ".cache/runner/tokens"


# The token manager with a cache, alone ----------------------------------------


class WallClock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("expires_in", "kept"),
    [(3600, 3600 - 60), (100, 50)],  # the margin: 60 s, at most half the life
)
def test_cached_token_is_served_until_the_margin_before_its_expiry(
    watch: SecretWatch, tmp_path: Path, expires_in: int, kept: float
) -> None:
    server = watch.fixture_server(expires_in=expires_in)
    clock = WallClock()
    cache = TokenCache.open(tmp_path / "tokens", clock=clock)
    assert cache is not None
    assert watch.manager(server, cache=cache).token() == server.issued[0]

    clock.now += kept - 1
    inside = watch.manager(server, cache=cache)
    assert inside.token() == server.issued[0]
    clock.now += 2
    past = watch.manager(server, cache=cache)
    assert past.token() == server.issued[1]

    assert (inside.tokens_from_cache, inside.tokens_issued) == (1, 0)
    assert (past.tokens_from_cache, past.tokens_issued) == (0, 1)


def test_token_read_from_the_cache_is_registered_with_the_redactor(
    watch: SecretWatch, tmp_path: Path
) -> None:
    server = watch.fixture_server()
    cache = TokenCache.open(tmp_path / "tokens")
    assert cache is not None
    watch.manager(server, cache=cache).token()

    redactor = Redactor()
    with TokenManager(
        connection_for(server), redactor, name="api", cache=cache
    ) as manager:
        token = manager.token()

    assert manager.tokens_from_cache == 1 and server.token_requests == 1
    assert redactor.redact(f"Bearer {token}") == "Bearer ***"


def test_lock_held_past_the_timeout_fetches_without_the_cache(
    watch: SecretWatch, tmp_path: Path
) -> None:
    server = watch.fixture_server()
    warnings: list[str] = []
    folder = tmp_path / "tokens"
    cache = TokenCache.open(folder, lock_timeout=0.2, warn=warnings.append)
    assert cache is not None
    watch.manager(server, cache=cache).token()
    (lock_path,) = folder.glob("*.lock")

    # Another run (another open file description) holds the lock.
    with lock_path.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        token = watch.manager(server, cache=cache).token()

    assert token == server.issued[1] and server.token_requests == 2
    assert warnings == [
        "token cache: another run held the lock for more than 0.2 s; fetching "
        "a token without the cache"
    ]
    # Not written without the lock: the entry still holds the first token.
    (entry,) = folder.glob("*.json")
    assert json.loads(entry.read_text())["access_token"] == server.issued[0]


@contextlib.contextmanager
def _hold(path: Path) -> Iterator[None]:
    """Hold the flock of `path` as another run would (another open file)."""
    with path.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


def test_lock_wait_ends_at_once_when_the_run_stops_and_fetches_nothing(
    watch: SecretWatch, tmp_path: Path
) -> None:
    """Ctrl-C sets the run's stop event; a worker waiting for the lock sees it."""
    server = watch.fixture_server()
    warnings: list[str] = []
    folder = tmp_path / "tokens"
    cache = TokenCache.open(folder, lock_timeout=30, warn=warnings.append)
    assert cache is not None
    watch.manager(server, cache=cache).token()
    (lock_path,) = folder.glob("*.lock")
    stop = threading.Event()
    manager = watch.manager(server, cache=cache, stop=stop)
    errors: list[TokenError] = []

    def wait_for_a_token() -> None:
        try:
            manager.token()
        except TokenError as error:
            errors.append(error)

    worker = threading.Thread(target=wait_for_a_token)
    with _hold(lock_path):
        worker.start()
        time.sleep(0.3)  # the worker is waiting for the lock by now
        assert worker.is_alive()
        stopped_at = time.monotonic()
        stop.set()
        worker.join(timeout=5)
        waited = time.monotonic() - stopped_at

    assert not worker.is_alive() and waited < 1.0
    assert [error.message for error in errors] == [
        "the run is stopping; no token was fetched"
    ]
    assert server.token_requests == 1  # the first manager's, nothing since
    assert manager.failure is None  # a stop is not the connection's failure
    assert warnings == []


def test_lock_wait_lasts_the_managers_retry_budget_plus_its_timeout(
    watch: SecretWatch, tmp_path: Path
) -> None:
    """Derived from the manager (0.4 s + 0.3 s here), not a fixed 10 s."""
    server = watch.fixture_server()
    warnings: list[str] = []
    folder = tmp_path / "tokens"
    cache = TokenCache.open(folder, warn=warnings.append)
    assert cache is not None
    watch.manager(server, cache=cache).token()
    (lock_path,) = folder.glob("*.lock")
    manager = watch.manager(
        server, cache=cache, retry=RetryPolicy(total=0.4), timeout=0.3
    )

    with _hold(lock_path):
        started = time.monotonic()
        token = manager.token()
        waited = time.monotonic() - started

    assert token == server.issued[1]
    assert 0.6 <= waited < 3.0
    assert warnings == [
        "token cache: another run held the lock for more than 0.7 s; fetching "
        "a token without the cache"
    ]


def test_default_lock_wait_outlasts_a_fetch_with_all_its_retries(
    watch: SecretWatch, tmp_path: Path
) -> None:
    """Another run fetching for 1.5 s (backing off, say) is waited for."""
    server = watch.fixture_server()
    folder = tmp_path / "tokens"
    cache = TokenCache.open(folder)
    assert cache is not None
    first = watch.manager(server, cache=cache)
    first.token()
    (lock_path,) = folder.glob("*.lock")
    (entry,) = folder.glob("*.json")
    entry.unlink()
    # A short retry budget, so that a wait of the old fixed length would
    # not be the reason this passes.
    waiting = watch.manager(
        server, cache=cache, retry=RetryPolicy(total=1.0), timeout=1.0
    )

    def other_run_fetches() -> None:
        with _hold(lock_path):
            time.sleep(1.5)
            with TokenManager(
                connection_for(server), watch.redactor, name="other"
            ) as other:
                token = other.token()
            document = {
                "version": runner.token_cache.CACHE_VERSION,
                "identity": entry.stem,
                "access_token": token,
                "expires_at": time.time() + 3000,
                "lifetime": 3600,
            }
            runner.token_cache._write_atomically(
                folder, entry.name, json.dumps(document).encode()
            )

    holder = threading.Thread(target=other_run_fetches)
    holder.start()
    time.sleep(0.2)
    try:
        token = waiting.token()
    finally:
        holder.join(timeout=10)

    assert token == server.issued[1] and server.token_requests == 2
    assert waiting.tokens_from_cache == 1 and waiting.tokens_issued == 0


def _readable_lock(path: Path) -> None:
    path.chmod(0o644)


def _symlinked_lock(path: Path) -> None:
    target = path.with_name("elsewhere")
    target.write_text("")
    path.unlink()
    path.symlink_to(target)


def _fifo_lock(path: Path) -> None:
    path.unlink()
    os.mkfifo(path, 0o600)


@pytest.mark.parametrize(
    "spoil", [_readable_lock, _symlinked_lock, _fifo_lock, _another_owner]
)
def test_lock_file_that_is_not_private_is_repaired_and_the_cache_used(
    server: FixtureServer,
    cache_dir: Path,
    tmp_path: Path,
    spoil: Callable[[Path], None],
) -> None:
    """A lock holds no data: repaired, not a reason to give the cache up."""
    suite = _suite(tmp_path, server)
    assert _run(str(suite))[0] == 0
    (lock,) = (cache_dir / "tokens").glob("*.lock")
    spoil(lock)

    status, out = _run(str(suite))
    again_status, again = _run(str(suite))

    assert status == 0 and again_status == 0, out + again
    assert "warning" not in out + again
    assert "0 tokens fetched, 1 from cache" in out.splitlines()[-1]
    assert server.token_requests == 1
    info = lock.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.getuid()
    elsewhere = cache_dir / "tokens" / "elsewhere"
    assert not elsewhere.exists() or elsewhere.read_text() == ""


def test_lock_file_that_cannot_be_replaced_is_named_in_the_warning(
    server: FixtureServer, cache_dir: Path, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, server)
    assert _run(str(suite))[0] == 0
    (lock,) = (cache_dir / "tokens").glob("*.lock")
    lock.unlink()
    lock.mkdir()  # a folder cannot be opened for writing, nor unlinked

    status, out = _run(str(suite))

    assert status == 0, out
    assert f"warning: token cache: lock file {lock} " in out
    assert server.token_requests == 2


def test_broken_key_replaced_by_two_runs_at_once_ends_with_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both runs see the broken key before either replaces it; one key wins."""
    folder = tmp_path / "tokens"
    assert TokenCache.open(folder) is not None
    (folder / "key").write_bytes(b"short")
    seen = threading.Barrier(2, timeout=5)
    first_look: set[int] = set()
    untrusted = runner.token_cache._untrusted

    def both_look_first(info: os.stat_result) -> str | None:
        # Each thread's first look at the key waits for the other's; then
        # one of them is slow, so the other has replaced the key before it.
        me = threading.get_ident()
        if me not in first_look:
            first_look.add(me)
            if seen.wait() == 0:
                time.sleep(0.3)
        return untrusted(info)

    monkeypatch.setattr(runner.token_cache, "_untrusted", both_look_first)
    keys: list[bytes] = []

    def open_cache() -> None:
        cache = TokenCache.open(folder)
        assert cache is not None
        keys.append(cache._key)

    threads = [threading.Thread(target=open_cache) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(keys) == 2 and keys[0] == keys[1]
    assert (folder / "key").read_bytes() == keys[0]
    assert sorted(path.name for path in folder.iterdir()) == ["key"]

"""Access tokens kept on disk between runs (``runner run --token-cache``).

A developer who runs a suite twenty times a minute should not ask the
provider for twenty tokens. With the cache, a token with a known lifetime
is written to a file of its own, and later runs on the machine reuse it
while more than the token manager's margin of its life remains.

The layout, in the folder ``$RUNNER_CACHE_DIR/tokens`` (by default
``$XDG_CACHE_HOME/runner/tokens``, or ``~/.cache/runner/tokens``)::

    key           32 random bytes, the key of the file names (see `_identity`)
    <id>.json     one connection identity's token and its expiry
    <id>.lock     held with flock while a run checks the entry and fetches

Trust: the folder must be a real folder (not a symlink) of the current
user that neither group nor others may write to; it is created mode 0700
and every file mode 0600 whatever the umask. A folder that fails those
checks is not used at all (a warning says why, and the run goes on without
the cache). A file that is corrupt, truncated, of another version, owned
by someone else, readable by others, or that holds another identity's
token is ignored and replaced, never trusted.

Concurrency: the ``.lock`` file is held across check-the-entry-then-fetch,
so runs started together on one machine share one fetch. The wait for it
is bounded by what the caller says one fetch may take (a token manager:
its retry budget plus its timeout), after which a run fetches a token of
its own rather than hang behind a stuck one; it ends at once when the
caller's stop event is set (Ctrl-C). A lock file holds no data, so one
that is not private is repaired, not refused: its mode is set back to 0600,
or, if it is not a regular file of ours, it is replaced. Entries are written
to a temporary file in the folder and renamed over the old one, so a reader
sees the old entry or the new one, never half of one. The key is created,
and a broken one replaced, with ``link()`` while the folder itself is
flocked, so runs that start together end up with one key.

Known shortcomings:

- The token is stored as it is (only the file mode protects it), as the
  credential caches of most command-line tools do: whoever can read your
  files can use it until it expires.
- Expiry is stored as wall-clock time, since monotonic clocks do not
  survive the process. A clock set back makes a token look younger than it
  is (the API's 401 then renews it, see `runner.tokens.BearerAuth`); an
  entry claiming more life left than its whole lifetime is refused.
- Only the ``tokens`` folder itself is checked, not its parents, which are
  the user's own cache and home folders.
- Lock files stay behind (removing one another run may hold is racy); there
  is one per identity ever used.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.connections import OAuth2Connection
from runner.tokens import MAX_LIFETIME_SECONDS

__all__ = [
    "CACHE_DIR_VARIABLE",
    "CACHE_VERSION",
    "DEFAULT_LOCK_TIMEOUT",
    "CacheEntry",
    "CachedToken",
    "TokenCache",
    "default_cache_folder",
]

log = logging.getLogger(__name__)

CACHE_DIR_VARIABLE = "RUNNER_CACHE_DIR"
CACHE_VERSION = 1
# The wait for a lock when the caller does not say how long its fetch may
# take; a token manager says (see `TokenCache.entry`).
DEFAULT_LOCK_TIMEOUT = 10.0
# Held only for the few system calls that replace a key file.
_KEY_LOCK_TIMEOUT = 5.0

_KEY_NAME = "key"
_KEY_BYTES = 32
_MAX_ENTRY_BYTES = 16 * 1024
# RFC 6750 section 2.1: what an Authorization header can carry.
_HEADER_VISIBLE = frozenset(chr(code) for code in range(0x21, 0x7F))
_POLL_FIRST, _POLL_MAX = 0.01, 0.1


def default_cache_folder(environ: Mapping[str, str]) -> Path:
    """The folder of the token cache: ``$RUNNER_CACHE_DIR/tokens`` or the XDG one.

    A relative ``XDG_CACHE_HOME`` is ignored, as the XDG Base Directory
    specification asks.
    """
    override = environ.get(CACHE_DIR_VARIABLE)
    if override:
        return Path(override).expanduser() / "tokens"
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "runner" / "tokens"


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token read from the cache.

    Attributes:
        value: The access token (a secret: register it with the redactor).
        remaining: Seconds of life it had left when it was read.
        lifetime: Its whole lifetime, as the provider announced it.
    """

    value: str = field(repr=False)
    remaining: float
    lifetime: float


class TokenCache:
    """The token files of one user, shared by the runs on a machine.

    Make one with `TokenCache.open`, which prepares the folder; hand it to
    `runner.tokens.TokenManager` (or `runner.sending.ConnectionSession`),
    which reads and writes entries through `entry`. One object may serve
    any number of managers and threads: it holds no state but the folder
    and the key.

    Args:
        folder: The prepared folder (see `open`).
        key: The key of the file names.
        lock_timeout: Seconds to wait for an identity's lock, whatever the
            caller of `entry` asks (tests); by default the caller decides.
        clock: Wall-clock seconds since the epoch (tests).
        warn: Called with a one-line message when the cache cannot help
            this time (a lock not had in time).
    """

    def __init__(
        self,
        folder: Path,
        key: bytes,
        *,
        lock_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.folder = folder
        self._key = key
        self._lock_timeout = lock_timeout
        self._clock = clock
        self._warn = warn or _log_warning

    def __repr__(self) -> str:
        return f"<TokenCache {self.folder}>"

    @classmethod
    def open(
        cls,
        folder: Path | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        lock_timeout: float | None = None,
        clock: Callable[[], float] = time.time,
        warn: Callable[[str], None] | None = None,
    ) -> TokenCache | None:
        """Create or check the folder and its key; None if it cannot be trusted.

        Args:
            folder: The folder; by default `default_cache_folder` of `environ`.
            environ: The environment (default: ``os.environ``).
            lock_timeout: See `TokenCache`.
            clock: See `TokenCache`.
            warn: Told why, when the folder is not used; also passed on.
        """
        warn = warn or _log_warning
        if folder is None:
            folder = default_cache_folder(os.environ if environ is None else environ)
        try:
            problem = _prepare_folder(folder)
            key = None if problem else _read_or_make_key(folder)
        except OSError as error:
            problem = f"cannot be used ({_os_reason(error)})"
            key = None
        if problem or key is None:
            reason = problem or "its key file cannot be read"
            warn(f"token cache: {folder} {reason}; tokens are not cached this run")
            return None
        return cls(folder, key, lock_timeout=lock_timeout, clock=clock, warn=warn)

    @contextlib.contextmanager
    def entry(
        self,
        connection: OAuth2Connection,
        *,
        timeout: float = DEFAULT_LOCK_TIMEOUT,
        stop: threading.Event | None = None,
    ) -> Iterator[CacheEntry | None]:
        """Hold `connection`'s lock for the block, and give its entry.

        Args:
            connection: Whose entry.
            timeout: Seconds to wait for the lock: as long as the fetch of
                the run holding it may take, so that waiting runs do not all
                fetch while the provider asks for patience.
            stop: Ends the wait at once when set (the run is stopping).

        Yields None when the lock was not had in time, the wait was stopped
        or the lock file cannot be used: the caller then fetches without
        the cache (or, when stopped, not at all).
        """
        name = _identity(self._key, connection)
        if self._lock_timeout is not None:
            timeout = self._lock_timeout
        lock = self._acquire(name, timeout, stop)
        if lock is None:
            yield None
            return
        try:
            yield CacheEntry(self.folder, name, self._clock)
        finally:
            os.close(lock)  # closing the descriptor releases the flock

    def _acquire(
        self, name: str, timeout: float, stop: threading.Event | None
    ) -> int | None:
        """The open lock file of `name`, locked; None if not had in time."""
        path = self.folder / f"{name}.lock"
        try:
            fd = _open_lock_file(path)
        except OSError as error:
            reason = _os_reason(error)
            self._warn(
                f"token cache: lock file {path} cannot be opened ({reason}); "
                "not using the cache"
            )
            return None
        if isinstance(fd, str):
            self._warn(f"token cache: lock file {path} {fd}; not using the cache")
            return None

        locked = False
        try:
            locked = _wait_for_flock(fd, timeout, stop)
        except OSError as error:  # flock on a file system that has none, say
            reason = _os_reason(error)
            self._warn(f"token cache: lock file {path} cannot be locked ({reason})")
            return None
        finally:
            if not locked:
                os.close(fd)

        if not locked and not (stop is not None and stop.is_set()):
            self._warn(
                f"token cache: another run held the lock for more than "
                f"{timeout:g} s; fetching a token without the cache"
            )
        return fd if locked else None


class CacheEntry:
    """One identity's entry, read and written while its lock is held.

    Every problem is logged and swallowed: the cache may save a fetch, it
    must never cost a run.
    """

    def __init__(self, folder: Path, name: str, clock: Callable[[], float]) -> None:
        self._folder = folder
        self._name = name
        self._path = folder / f"{name}.json"
        self._clock = clock

    def __repr__(self) -> str:
        return f"<CacheEntry {self._path.name}>"

    def read(self, margin: float, *, rejected: str | None = None) -> CachedToken | None:
        """The cached token, if it is trustworthy and lives past the margin.

        Args:
            margin: Seconds before expiry at which a token is no longer
                used; never more than half its lifetime.
            rejected: A token the API refused: never served, whatever the
                file says.
        """
        document = self._load()
        if document is None:
            return None
        problem = self._problem(document)
        if problem:
            log.info("token cache: ignored entry %s: %s", self._path.name, problem)
            return None

        value: str = document["access_token"]
        lifetime = float(document["lifetime"])
        remaining = float(document["expires_at"]) - self._clock()
        if value == rejected or remaining <= min(margin, lifetime / 2):
            return None
        return CachedToken(value, remaining, lifetime)

    def write(self, value: str, *, remaining: float, lifetime: float) -> None:
        """Store `value`, which expires `remaining` seconds from now."""
        document = {
            "version": CACHE_VERSION,
            "identity": self._name,
            "access_token": value,
            "expires_at": self._clock() + remaining,
            "lifetime": lifetime,
        }
        data = json.dumps(document).encode()
        try:
            _write_atomically(self._folder, self._path.name, data)
        except OSError as error:
            log.info("token cache: could not write an entry: %s", _os_reason(error))

    def clear(self) -> None:
        """Remove the entry (the token it held must not be served again)."""
        try:
            os.unlink(self._path)
        except FileNotFoundError:
            pass
        except OSError as error:
            log.info("token cache: could not remove an entry: %s", _os_reason(error))

    def _load(self) -> dict[str, Any] | None:
        """The entry file as a JSON object, or None (missing or unreadable)."""
        try:
            # O_NONBLOCK: a FIFO put in place of an entry must not hang the run.
            fd = os.open(self._path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as error:
            log.info("token cache: ignored an entry: %s", _os_reason(error))
            return None
        data: bytes | None = None
        try:
            problem = _untrusted(os.fstat(fd))
            if problem is None:
                data = _read_capped(fd)
                if data is None:
                    problem = f"larger than {_MAX_ENTRY_BYTES} bytes"
        except OSError as error:
            problem = _os_reason(error)
        finally:
            os.close(fd)
        if problem or data is None:
            log.info("token cache: ignored entry %s: %s", self._path.name, problem)
            return None

        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            log.info("token cache: ignored entry %s: not JSON", self._path.name)
            return None
        return document

    def _problem(self, document: Mapping[str, Any]) -> str | None:
        """Why `document` cannot be trusted, or None."""
        if document.get("version") != CACHE_VERSION:
            return "another version"
        identity = document.get("identity")
        if not isinstance(identity, str) or not hmac.compare_digest(
            identity.encode(), self._name.encode()
        ):
            return "the entry of another identity"
        value = document.get("access_token")
        if not isinstance(value, str) or not value or not set(value) <= _HEADER_VISIBLE:
            return "no usable access_token"
        lifetime = _number(document.get("lifetime"))
        expires_at = _number(document.get("expires_at"))
        if lifetime is None or not 0 < lifetime <= MAX_LIFETIME_SECONDS:
            return "no usable lifetime"
        if expires_at is None:
            return "no usable expiry"
        if expires_at - self._clock() > lifetime:
            return "more life left than its lifetime (was the clock set back?)"
        return None


def _identity(key: bytes, connection: OAuth2Connection) -> str:
    """The name of `connection`'s entry: HMAC-SHA256 of all that decides its token.

    Why a keyed hash: the name depends on the client secret (a new secret
    must mean a new token), and a plain hash of a weak secret could be
    tested offline by anyone who sees a file name. Keyed with the 32
    random bytes of the folder's ``key`` file, a name tells nothing without
    the key, and whoever can read the key (mode 0600) can read the tokens
    beside it anyway. A slow KDF would only slow down guessing a weak secret
    by a constant factor, at a cost every run pays; the cure for a weak
    secret is a strong one.
    """
    parts = [
        CACHE_VERSION,
        str(connection.token_url),
        connection.client_id,
        connection.scope_text(),
        sorted(connection.token_params.items()),
        connection.auth_method,
        connection.client_secret.get_secret_value(),
    ]
    message = json.dumps(parts, separators=(",", ":")).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _prepare_folder(folder: Path) -> str | None:
    """Create `folder` (mode 0700) if needed; why it cannot be trusted, or None."""
    folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
        # mkdir's mode passes through the umask, which may also take bits
        # away that the owner needs; chmod is not masked.
        os.chmod(folder, 0o700)

    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if info.st_uid != os.getuid():
        return "belongs to another user"
    if info.st_mode & 0o022:
        return f"may be written by other users (mode {info.st_mode & 0o777:o})"
    if info.st_mode & 0o777 != 0o700:
        # Ours and written only by us, merely too open to reading: tighten.
        os.chmod(folder, 0o700)
    return None


def _read_or_make_key(folder: Path) -> bytes | None:
    """The folder's key, made on first use; a broken one is replaced.

    Only one run at a time makes or replaces the key (it holds a flock on
    the folder), and it publishes the new one with link(), which fails if
    the file exists: runs that start together all end up with one key, and
    none ever reads half of one.
    """
    path = folder / _KEY_NAME
    found = _read_key(path)
    if isinstance(found, bytes):
        return found

    with _folder_locked(folder):
        for _ in range(3):
            # Again under the lock: another run may have replaced it meanwhile.
            found = _read_key(path)
            if isinstance(found, bytes):
                return found
            if found is not None:
                # A new key orphans the old entries, all a broken key deserves.
                log.info("token cache: replaced a key file that %s", found)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            temporary = _write_temporary(folder, secrets.token_bytes(_KEY_BYTES))
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # a run without the lock created one first: use it
            finally:
                os.unlink(temporary)
    return None


def _read_key(path: Path) -> bytes | str | None:
    """The key in `path`; why it is broken; or None when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as error:  # a symbolic link (ELOOP), say
        return _os_reason(error)
    try:
        problem = _untrusted(os.fstat(fd))
        if problem is not None:
            return problem
        key = os.read(fd, _KEY_BYTES + 1)
    finally:
        os.close(fd)
    return key if len(key) == _KEY_BYTES else "was broken"


@contextlib.contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Hold a flock on `folder` itself for the block, if it can be had.

    Best effort: without the lock (a file system with no flock, a holder
    stopped in the middle) the key is still published with link(), which
    keeps concurrent creators to one key; only concurrent replacements of
    a broken key may then disagree, once.
    """
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            locked = _wait_for_flock(fd, _KEY_LOCK_TIMEOUT)
        except OSError as error:
            locked = False
            log.info("token cache: cannot lock %s (%s)", folder, _os_reason(error))
        if not locked:
            log.info("token cache: using %s's key without its lock", folder)
        yield
    finally:
        os.close(fd)  # releases the flock


def _open_lock_file(path: Path) -> int | str:
    """`path` opened for flock, mode 0600; or why it cannot be.

    A lock file holds no data, so one that is not ours to trust is not a
    reason to give the cache up: a regular file of ours gets its mode back,
    anything else (a symbolic link, a FIFO, another user's file: the folder
    is ours and 0700, so only root or an accident puts them there) is
    removed and created again. It is removed only if it is still the file
    looked at, since another run may have replaced it already and hold the
    new one's lock (a few system calls' worth of that race remain).
    """
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as error:
            if not path.is_symlink():
                raise
            seen = os.lstat(path)
            problem = f"was a symbolic link ({_os_reason(error)})"
        else:
            seen = os.fstat(fd)
            if stat.S_ISREG(seen.st_mode) and seen.st_uid == os.getuid():
                # Also repairs the bits the umask may have taken from the owner.
                os.fchmod(fd, 0o600)
                return fd
            os.close(fd)
            problem = _untrusted(seen) or "could not be used"
        with contextlib.suppress(FileNotFoundError):
            current = os.lstat(path)
            if (current.st_dev, current.st_ino) == (seen.st_dev, seen.st_ino):
                log.info("token cache: replaced lock file %s, which %s", path, problem)
                os.unlink(path)
    return "cannot be replaced by a private file"


def _untrusted(info: os.stat_result) -> str | None:
    """Why a file with this status cannot be trusted, or None."""
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_uid != os.getuid():
        return "belongs to another user"
    if info.st_mode & 0o077:
        return "may be read or written by other users"
    return None


def _write_temporary(folder: Path, data: bytes) -> Path:
    """A new file of `data` in `folder`, mode 0600 whatever the umask."""
    path = folder / f".{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # No fsync: a file torn by a crash reads as corrupt and is replaced.
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return path


def _write_atomically(folder: Path, name: str, data: bytes) -> None:
    """Replace `folder`/`name` by `data` in one step (a rename in the folder)."""
    temporary = _write_temporary(folder, data)
    try:
        os.replace(temporary, folder / name)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _wait_for_flock(
    fd: int, timeout: float, stop: threading.Event | None = None
) -> bool:
    """Take an exclusive flock on `fd` within `timeout` seconds.

    Polled, not blocking: a blocked flock can be given neither a timeout nor
    a stop. The polls sleep on `stop`, so setting it (Ctrl-C, in a run's
    worker thread, which no signal reaches) ends the wait at once: False.
    """
    deadline = time.monotonic() + timeout
    delay = _POLL_FIRST
    pause: Callable[[float], object] = time.sleep if stop is None else stop.wait
    while stop is None or not stop.is_set():
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        pause(min(delay, left))
        delay = min(delay * 2, _POLL_MAX)
    return False


def _read_capped(fd: int) -> bytes | None:
    """The file's bytes, or None if it is larger than an entry can be."""
    chunks: list[bytes] = []
    size = 0
    while chunk := os.read(fd, 4096):
        size += len(chunk)
        if size > _MAX_ENTRY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def _log_warning(message: str) -> None:
    log.warning("%s", message)

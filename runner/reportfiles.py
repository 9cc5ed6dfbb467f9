"""Report files: checking where they go, writing them whole, naming suite files.

A report file (``--junit``, ``--report``) is written once, after the run.
Its path is checked before anything is sent, so that a typo in a folder
name costs nothing; the file itself is written to a temporary file beside
it and renamed into place, so that a CI job never reads half a report, and
an old report is replaced only by a complete new one.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["check_output_path", "relative_path", "write_atomically"]


def check_output_path(option: str, path: Path) -> str | None:
    """Why `path` cannot take a report file, or None when it looks writable.

    Args:
        option: The command-line option that named it, for the message.
        path: The file to be written.

    Returns:
        A one-line message, or None. Only what can be seen before the run
        is checked; a write can still fail later (a full disk).
    """
    parent = path.parent
    if path.is_dir():
        return f"{option} {path}: is a folder, not a file"
    if not parent.exists():
        return f"{option} {path}: the folder {parent} does not exist"
    if not parent.is_dir():
        return f"{option} {path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{option} {path}: the folder {parent} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{option} {path}: the file is not writable"
    return None


def write_atomically(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file and a rename.

    The rename is atomic on POSIX and on Windows when both names are in
    one folder, which is why the temporary file is made beside `path`.

    Raises:
        OSError: the file could not be written; `path` is left as it was.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    # 0o666 less the umask, as `open` would give: mkstemp's 0o600 would make
    # a report that the CI user's upload step may not read.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def relative_path(file: str, cwd: Path | None = None) -> str:
    """`file` relative to `cwd` (the current folder), with forward slashes.

    CI tools resolve paths against the checkout, which is where a CI job
    runs from; a file outside `cwd` keeps its absolute path.
    """
    base = (cwd or Path.cwd()).resolve()
    absolute = Path(file).resolve()
    try:
        return absolute.relative_to(base).as_posix()
    except ValueError:
        return absolute.as_posix()

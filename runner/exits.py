"""The exit statuses of every command, defined once.

``runner run`` returns `ExitStatus.OK` when every request passed,
`ExitStatus.FAILED` when some request failed or could not be sent (or a
report file could not be written), `ExitStatus.INVALID` when the input is
invalid (then nothing at all was sent) and `ExitStatus.INTERRUPTED` after
Ctrl-C. ``check``, ``schema --check``, ``docs --check`` and ``demo`` use the
same values with the same meanings.
"""

from __future__ import annotations

import enum

__all__ = ["ExitStatus"]


class ExitStatus(enum.IntEnum):
    """What a command tells the shell; an `int`, so it can be returned as one."""

    OK = 0
    FAILED = 1
    INVALID = 2
    # 128 + SIGINT, as shells report a process that Ctrl-C ended.
    INTERRUPTED = 130

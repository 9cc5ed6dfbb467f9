"""Reading ``Retry-After``: how long a server asks a client to wait.

Shared by the token manager (`runner.tokens`) and the retries of API
requests (`runner.retrying`), which both honour it up to a cap of their own.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after"]

# Delay-seconds is a non-negative integer; ten digits are more than any wait.
_DELAY_SECONDS = re.compile(r"[0-9]{1,10}")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 section 10.2.3).

    Args:
        value: The header's value: delay-seconds or an HTTP date.
        now: The current POSIX time, for tests (default: the clock).

    Returns:
        The wait in seconds (0 for a date in the past), or None when the
        header is absent or unreadable.
    """
    if value is None:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        return float(value)
    try:
        date = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, date.timestamp() - current)

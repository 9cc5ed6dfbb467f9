"""The one redactor every sink writes through.

A run registers each secret it learns (client secrets, access tokens,
values read from ``env``) with a `Redactor`; the terminal output, verbose
traces, error messages and reports all pass their text through
`Redactor.redact` before writing it. Masking is by value, and covers the
encoded forms a secret travels in: form-urlencoded, percent-encoded (fully,
or as a URL path or query escapes it), escaped inside a JSON string, and
inside a base64 HTTP Basic credential.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator
from typing import NoReturn, SupportsIndex
from urllib.parse import quote, quote_plus

__all__ = [
    "LOGGERS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "SENSITIVE_HEADERS",
    "NeverPickled",
    "RedactingFilter",
    "Redactor",
    "masked_logs",
]

MASK = "***"

# Shorter values would mask ordinary words and numbers all over the output
# while protecting nothing: a three-character secret is guessed anyway.
MIN_SECRET_LENGTH = 4

# The loggers a run writes to, its dependencies' included: httpx logs each
# request's full URL at INFO, query string and all.
LOGGERS = (
    "runner.tokens",
    "runner.token_cache",
    "runner.retrying",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)

# Header values that are secret whatever they hold.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie"}
)


# What a URL's path and query leave unescaped (the WHATWG percent-encode sets
# that httpx applies): a secret in a URL travels in these mixed forms, which
# neither fully escaped form matches.
_PATH_SAFE = "".join(chr(i) for i in range(0x21, 0x7F) if chr(i) not in '"#<>?`{}%')
_QUERY_SAFE = "".join(chr(i) for i in range(0x21, 0x7F) if chr(i) not in '"#<>%')


def _encoded_forms(value: str) -> set[str]:
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    forms |= {quote(value, safe=_PATH_SAFE), quote(value, safe=_QUERY_SAFE)}
    forms.add(value.encode("unicode_escape").decode("ascii"))
    # Inside a JSON string, as request and response bodies carry it.
    forms.add(json.dumps(value)[1:-1])
    forms.add(json.dumps(value, ensure_ascii=False)[1:-1])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class NeverPickled:
    """A base for the objects that hold secrets: none of them reaches a pickle.

    SPEC ("Secrets"): secrets never appear in anything the runner writes,
    pickles included. Pickling one of these raises `TypeError` at once,
    rather than writing its secrets to wherever the pickle goes.
    """

    __slots__ = ()

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        message = f"{type(self).__name__} holds secrets and is never pickled"
        raise TypeError(message)


class Redactor(NeverPickled):
    """Replaces every registered secret, in any of its encoded forms, by ``***``.

    Thread-safe: tokens are registered by the token managers while other
    threads write output.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._forms: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def __repr__(self) -> str:
        return f"<Redactor of {len(self._forms)} forms>"

    def add(self, secret: str) -> None:
        """Mask `secret` from now on (values too short to matter are ignored)."""
        if len(secret) < MIN_SECRET_LENGTH:
            return
        with self._lock:
            new_forms = _encoded_forms(secret) - self._forms
            if not new_forms:
                return
            self._forms |= new_forms
            self._pattern = None

    def add_basic_credential(self, user: str, password: str) -> None:
        """Mask the base64 ``user:password`` credential of HTTP Basic.

        The credential is only guessable from both halves, so the pair is
        registered, in raw and in form-urlencoded form (RFC 6749 appendix B).
        """
        for left, right in ((user, password), (quote_plus(user), quote_plus(password))):
            joined = f"{left}:{right}".encode()
            self.add(base64.b64encode(joined).decode("ascii"))
        self.add(password)

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by ``***``."""
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(MASK, text)

    def contains_secret(self, text: str) -> bool:
        """Whether `text` holds any registered secret (used by tests and reports)."""
        pattern = self._compiled()
        return pattern is not None and pattern.search(text) is not None

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is not None or not self._forms:
            return pattern
        with self._lock:
            # Longest first, so that a secret containing another is masked whole.
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(form) for form in ordered))
            return self._pattern


class RedactingFilter(logging.Filter):
    """Masks a log record's message before any handler formats it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = self._redactor.redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


@contextlib.contextmanager
def masked_logs(redactor: Redactor, names: Iterable[str] = LOGGERS) -> Iterator[None]:
    """Mask every record of the `names` loggers while the block runs.

    A logger's filter sees only the records made on that logger, not those
    of its children, hence the list of names. The filters are removed at
    the end, so that runs in one process do not pile them up.

    Known shortcoming: masking is by value only here; httpcore's DEBUG
    trace shows header values that no secret registered covers (a server's
    own ``Set-Cookie``, say). Keep httpcore below DEBUG in shared logs.
    """
    loggers = [logging.getLogger(name) for name in names]
    masking = RedactingFilter(redactor)
    for logger in loggers:
        logger.addFilter(masking)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(masking)

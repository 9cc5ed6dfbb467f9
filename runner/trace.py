"""Verbose traces (``-v``, ``-vv``): every request sent and its response, masked.

A `Tracer` writes one block per send: the request (method, URL, headers,
body) and what came back (status, time, headers, body), or why nothing did.
It sees every send because it hooks the level where each one happens: the
API client's httpx event hooks (so the resend after a 401 inside
`runner.tokens.BearerAuth`, and each redirect hop, show as blocks of their
own), and, at ``-vv``, the token manager's own client (see
`runner.tokens.TokenManager`).

What a block never shows: the values of `SENSITIVE_HEADERS` (always
``***``), the secret fields of a form body, anything the run's `Redactor`
knows, or the bytes of a binary body (only its size). Bodies are cut after
`BODY_LIMIT` characters, with a note of how much was cut.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode

import httpx

from runner.secrets import MASK, SENSITIVE_HEADERS, Redactor

__all__ = ["BODY_LIMIT", "Tracer"]

# Characters of a body shown: enough for a typical JSON error or record,
# short enough that a listing does not bury the run's own lines.
BODY_LIMIT = 2048

# Form fields that hold a credential whatever their value (RFC 6749 sections
# 2.3.1 and 6, RFC 7523): masked by name, so that even a secret too short
# for the redactor to mask by value stays hidden.
_SECRET_FORM_FIELDS = frozenset(
    {
        "access_token",
        "assertion",
        "client_assertion",
        "client_secret",
        "id_token",
        "password",
        "refresh_token",
    }
)

_TEXT_TYPES = ("text/", "application/json", "application/xml", "+json", "+xml")
_FORM_TYPE = "application/x-www-form-urlencoded"


class Tracer:
    """Writes a masked block for each request sent and its response.

    Args:
        write: Writes one block at once, so that the blocks of concurrent
            suites never interleave (the run's `runner.output.Reporter`
            message, which takes its lock).
        redactor: The run's redactor; every block goes through it.
        tokens: Also trace the token requests (``-vv``).
    """

    def __init__(
        self, write: Callable[[str], None], redactor: Redactor, *, tokens: bool
    ) -> None:
        self.tokens = tokens
        self._write = write
        self._redactor = redactor
        # Sends of the same request object: the auth flow resends it after a 401.
        self._sends: weakref.WeakKeyDictionary[httpx.Request, int]
        self._sends = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Tracer tokens={self.tokens}>"

    def event_hooks(self, connection: str) -> dict[str, list[Callable[..., Any]]]:
        """httpx event hooks that trace each send of an API client.

        Args:
            connection: The connection's name, for the block's title.
        """

        def on_response(response: httpx.Response) -> None:
            # The body is read here, once; the caller reads it from memory.
            response.read()
            self.exchange(response, title=f"connection {connection!r}: request")

        return {"response": [on_response]}

    def exchange(
        self,
        response: httpx.Response,
        *,
        title: str,
        body: bytes | None = None,
        withheld: str | None = None,
    ) -> None:
        """Write the block of one send and its response.

        Args:
            response: The response; its ``request`` is what was sent.
            title: The block's first line.
            body: The response body when it was read by the caller (a
                streamed response), or None to take ``response.content``;
                a streamed body the caller left unread shows as such.
            withheld: Why the body is not shown, if it is not (a token
                response that did not parse, whose secrets the redactor
                could not learn).
        """
        request = response.request
        lines = [self._title(request, title), *self._request_lines(request)]

        elapsed = _elapsed_ms(response)
        timing = "" if elapsed is None else f" ({elapsed:.0f} ms)"
        lines.append(f"< {response.status_code} {response.reason_phrase}{timing}")
        lines += _header_lines("<", response.headers.multi_items())
        if withheld is not None:
            lines += ["<", f"< [body not shown: {withheld}]"]
        elif body is None and not response.is_stream_consumed:
            lines += ["<", "< [body not read]"]
        else:
            content = response.content if body is None else body
            content_type = response.headers.get("content-type", "")
            lines += _body_lines("<", content, content_type, self._redactor)
        self._emit(lines)

    def failure(self, request: httpx.Request, reason: str, *, title: str) -> None:
        """Write the block of a send that got no response, and why."""
        lines = [self._title(request, title), *self._request_lines(request)]
        lines.append(f"< no response: {reason}")
        self._emit(lines)

    def _title(self, request: httpx.Request, title: str) -> str:
        with self._lock:
            count = self._sends.get(request, 0) + 1
            self._sends[request] = count
        if count > 1:
            return f"* {title}, sent again (send {count})"
        return f"* {title}"

    def _request_lines(self, request: httpx.Request) -> list[str]:
        # Decoded before masking: a secret in a URL may be escaped in a mix of
        # forms that only its plain form matches once decoded.
        url = self._redactor.redact(str(request.url))
        lines = [f"> {request.method} {unquote(url)}"]
        lines += _header_lines(">", request.headers.multi_items())
        try:
            content = request.content
        except httpx.RequestNotRead:
            return [*lines, ">", "> [streamed body, not shown]"]
        content_type = request.headers.get("content-type", "")
        lines += _body_lines(">", content, content_type, self._redactor)
        return lines

    def _emit(self, lines: list[str]) -> None:
        self._write(self._redactor.redact("\n".join(lines)))


def _elapsed_ms(response: httpx.Response) -> float | None:
    try:
        return response.elapsed.total_seconds() * 1000
    except RuntimeError:  # set only once the body has been read to its end
        return None


def _header_lines(prefix: str, headers: Iterable[tuple[str, str]]) -> list[str]:
    lines = []
    for name, value in headers:
        shown = MASK if name.lower() in SENSITIVE_HEADERS else value
        lines.append(f"{prefix} {name}: {shown}")
    return lines


def _body_lines(
    prefix: str, content: bytes, content_type: str, redactor: Redactor
) -> list[str]:
    """The lines of a body: a blank line, then the text, or its size if binary.

    The text is masked before it is cut: a cut through a secret would leave
    a part of it that no longer matches, unmasked.
    """
    if not content:
        return []
    text = _text_of(content, content_type)
    if text is None:
        return [prefix, f"{prefix} [binary body, {len(content)} bytes]"]
    if content_type.split(";")[0].strip().lower() == _FORM_TYPE:
        text = _masked_form(text)
    text = redactor.redact(text)

    note = []
    if len(text) > BODY_LIMIT:
        cut = len(text) - BODY_LIMIT
        text = text[:BODY_LIMIT]
        note = [f"{prefix} [... {cut} more characters not shown]"]
    lines = [f"{prefix} {line}" for line in text.splitlines()]
    return [prefix, *lines, *note]


def _text_of(content: bytes, content_type: str) -> str | None:
    """`content` as text, or None when it is binary (or not in its charset)."""
    charset = "utf-8"
    for parameter in content_type.split(";")[1:]:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        text = content.decode(charset)
    except (LookupError, UnicodeDecodeError):
        return None

    media_type = content_type.split(";")[0].strip().lower()
    declared_text = any(kind in media_type for kind in _TEXT_TYPES)
    # Undeclared or unusual types count as text when they read as text.
    controls = sum(1 for char in text if ord(char) < 32 and char not in "\t\n\r")
    if "\x00" in text or (not declared_text and controls):
        return None
    return text


def _masked_form(text: str) -> str:
    pairs = parse_qsl(text, keep_blank_values=True)
    if not pairs:
        return text
    shown = [
        (name, MASK if name.lower() in _SECRET_FORM_FIELDS else value)
        for name, value in pairs
    ]
    return urlencode(shown, safe="*")

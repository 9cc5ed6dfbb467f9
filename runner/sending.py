"""Sending requests: one httpx client per connection, shared by the whole run.

Why threads and a sync client: on this project's machines, 1000 sequential
GETs to a loopback server took 0.53-0.75 s with ``httpx.Client`` and
1.2-1.5 s with ``httpx.AsyncClient``. A thread-safe sync client shared by a
pool of suite workers is both faster and simpler, and it is what a pytest
plugin needs later. Connection pooling and keep-alive come from the client.

The API client and the token manager's client are separate: the token
endpoint never sees the API's default headers or hooks, and the API client
never follows a redirect unless a request asks for it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from runner.connections import HttpConnection, OAuth2Connection, StaticConnection
from runner.errors import SendError
from runner.secrets import NeverPickled, Redactor
from runner.static_auth import StaticAuth
from runner.tls import shared_ssl_context
from runner.tokens import BearerAuth, TokenManager
from runner.trace import Tracer

if TYPE_CHECKING:
    import threading

    from runner.token_cache import TokenCache

__all__ = ["ConnectionSession", "Sent", "join_url"]


def join_url(base: str, url: str) -> str:
    """Resolve a request URL against its connection's url.

    An absolute URL stands as it is; a relative one is appended under the
    base's path whether or not it starts with a slash, which is what users
    mean by ``https://h/v1`` + ``items`` (RFC 3986 resolution would drop
    ``v1``).
    """
    if not url:
        return base
    if "://" in url.split("?", 1)[0]:
        return url
    return base.rstrip("/") + "/" + url.lstrip("/")


def _text(response: httpx.Response, content_type: str) -> str:
    """The body as `httpx.Response.text` decodes it, without its overhead.

    With no charset in the content type, httpx decodes as UTF-8 (the client's
    default), replacing bad bytes; it finds that out by parsing the header
    with `email.message`: 6 microseconds a response, where decoding takes
    half of one. A content type that names a charset is left to httpx.
    """
    if "charset" in content_type.lower():
        return response.text
    return response.content.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class Sent:
    """A response as the expectations see it, and how long it took."""

    status: int
    headers: httpx.Headers
    text: str
    content_type: str
    elapsed_ms: float


class ConnectionSession(NeverPickled):
    """The client (and, for OAuth2, the token manager) of one connection.

    OAuth2 connections authenticate with `BearerAuth`; ``basic``, ``bearer``
    and ``api_key`` connections with `StaticAuth`.

    Args:
        connection: The connection, templates rendered.
        redactor: The run's redactor (the token manager registers tokens).
        name: The connection's name, for messages and traces.
        pool_size: Connections kept open at once (the run's concurrency).
        transport: An httpx transport for the API (tests).
        tracer: Writes every send (``-v``) and, if it says so, every token
            request (``-vv``).
        token_cache: Keeps the OAuth2 token between runs, if given.
        stop: The run's stop event; ends the token manager's wait for the
            token cache's lock (see `runner.tokens.TokenManager`).
    """

    def __init__(
        self,
        connection: HttpConnection,
        redactor: Redactor,
        *,
        name: str,
        pool_size: int,
        transport: httpx.BaseTransport | None = None,
        tracer: Tracer | None = None,
        token_cache: TokenCache | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.connection = connection
        self.base_url = str(connection.url)
        self.tokens: TokenManager | None = None
        self._tracer = tracer
        self._trace_title = f"connection {name!r}: request"
        auth: BearerAuth | StaticAuth | None = None
        if isinstance(connection, OAuth2Connection):
            token_tracer = tracer if tracer is not None and tracer.tokens else None
            self.tokens = TokenManager(
                connection,
                redactor,
                name=name,
                tracer=token_tracer,
                cache=token_cache,
                stop=stop,
            )
            auth = BearerAuth(self.tokens, self.base_url)
        if isinstance(connection, StaticConnection):
            auth = StaticAuth(connection.credential(), self.base_url)
        # Hooks see every send, the resend after a 401 and redirect hops too:
        # each auth removes its credential from a hop off the origin.
        hooks = tracer.event_hooks(name) if tracer is not None else {}
        if auth is not None:
            hooks["request"] = [auth.drop_off_origin, *hooks.get("request", [])]

        limits = httpx.Limits(
            max_connections=max(pool_size, 1), max_keepalive_connections=pool_size
        )
        self.client = httpx.Client(
            auth=auth,
            headers=connection.headers,
            verify=shared_ssl_context(connection.verify_ssl),
            timeout=connection.timeout,
            follow_redirects=False,
            limits=limits,
            transport=transport,
            event_hooks=hooks or None,
        )

    def __repr__(self) -> str:
        return f"<ConnectionSession {self.base_url}>"

    @property
    def tokens_fetched(self) -> int:
        """Tokens the token endpoint issued to this connection."""
        return self.tokens.tokens_issued if self.tokens is not None else 0

    @property
    def tokens_from_cache(self) -> int:
        """Tokens this connection read from the token cache."""
        return self.tokens.tokens_from_cache if self.tokens is not None else 0

    @property
    def token_requests(self) -> int:
        """Token requests sent, retries and refused ones included."""
        return self.tokens.fetches if self.tokens is not None else 0

    def send(
        self,
        *,
        method: str,
        url: str,
        headers: Mapping[str, str],
        params: Mapping[str, Any],
        body: Any,
        timeout: float | None,
        follow_redirects: bool,
    ) -> Sent:
        """Send one request and read its whole response.

        Raises `SendError` when no response came (network, timeout) and lets
        `runner.errors.TokenError` through when no token could be had.
        """
        started = time.perf_counter()
        try:
            response = self.client.request(
                method,
                url,
                headers=headers or None,
                params=params or None,
                json=body,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                follow_redirects=follow_redirects,
            )
        except httpx.TimeoutException as error:
            message = f"no response within the timeout ({type(error).__name__})"
            self._trace_failure(error, message)
            raise SendError(message) from None
        except httpx.HTTPError as error:
            message = f"could not send: {type(error).__name__}: {error}"
            self._trace_failure(error, message)
            raise SendError(message) from None
        elapsed_ms = (time.perf_counter() - started) * 1000

        content_type = response.headers.get("content-type", "")
        return Sent(
            status=response.status_code,
            headers=response.headers,
            text=_text(response, content_type),
            content_type=content_type,
            elapsed_ms=elapsed_ms,
        )

    def _trace_failure(self, error: httpx.HTTPError, message: str) -> None:
        if self._tracer is None:
            return
        try:
            request = error.request
        except RuntimeError:  # raised before a request was built
            return
        self._tracer.failure(request, message, title=self._trace_title)

    def close(self) -> None:
        self.client.close()
        if self.tokens is not None:
            self.tokens.close()

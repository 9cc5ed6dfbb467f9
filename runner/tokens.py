"""OAuth2 Client Credentials tokens: one manager per connection, shared by a run.

A `TokenManager` asks the connection's ``token_url`` for an access token
(RFC 6749 section 4.4) and hands it to every request of the connection;
`BearerAuth` is the ``httpx.Auth`` that puts it on those requests
(RFC 6750 section 2.1) and renews it after a 401.

Concurrency model: threads. The runner shares one thread-safe
``httpx.Client`` between its suite workers, so the manager guards its
token with a ``threading.Lock``: exactly one fetch is in flight per
connection, the threads that need a token meanwhile wait on the lock, and
each checks the token again once it holds the lock. The fetch runs in the
thread that holds the lock, so a waiter that gives up (Ctrl-C, an error of
its own) takes nothing from the others.

Failure policy: a fetch that ends in a `TokenError` (an RFC 6749 section
5.2 error such as ``invalid_client``, a malformed response, a redirect, or
retries exhausted) stops the connection. The error is remembered and every
later `TokenManager.token` call raises it again at once, without asking the
endpoint: the threads that waited on the failed fetch fail fast, and a
client the provider refused is not sent to it once per request. Anything
else that interrupts a fetch (``KeyboardInterrupt``, a bug) is not
remembered, and no failure is ever cached as a token.

Across runs: given a `runner.token_cache.TokenCache`, the manager looks
there first whenever it would fetch (not after a 401), holding the
identity's file lock while it looks and fetches, and stores each token of
known lifetime it receives. A token read from the file is registered with
the redactor at once, like a fetched one. It waits for that lock as long as
one fetch of another run may take (its retry budget plus its timeout), and
no longer than its run: when the run's stop event is set, the wait ends and
no token is fetched.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx

from runner.client_auth import (
    check_token_url,
    client_authentication,
    register_client_secrets,
)
from runner.connections import OAuth2Connection
from runner.errors import TokenError
from runner.origins import origin as _origin
from runner.retry_after import parse_retry_after
from runner.secrets import NeverPickled, Redactor
from runner.tls import shared_ssl_context
from runner.trace import Tracer

if TYPE_CHECKING:
    # Only a run that asks for the cache imports it (start-up time).
    from runner.token_cache import TokenCache

__all__ = [
    "DEFAULT_MARGIN_SECONDS",
    "MAX_LIFETIME_SECONDS",
    "MAX_TOKEN_RESPONSE_BYTES",
    "BearerAuth",
    "RetryPolicy",
    "TokenManager",
    "check_token_url",
]

log = logging.getLogger(__name__)

DEFAULT_MARGIN_SECONDS = 60.0
MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
# Ten years: anything longer is a provider bug (a timestamp sent as a
# duration, milliseconds), not a lifetime.
MAX_LIFETIME_SECONDS = 10 * 365.25 * 24 * 3600.0

_MAX_DESCRIPTION_CHARS = 200
_MAX_SHOWN_CHARS = 60
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# RFC 6749 section 5.2: error codes are %x20-21 / %x23-5B / %x5D-7E.
_NOT_ERROR_CODE = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")
# RFC 6750 section 2.1: a b64token; anything else cannot travel in a header.
_NOT_HEADER_VISIBLE = re.compile(r"[^\x21-\x7e]")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a token request that failed for a passing reason is sent again.

    5xx and 429 answers and network errors are retried (RFC 6749 section
    5.2 errors never are). The delay before retry *n* (from 0) is drawn
    between half and all of ``min(max_delay, base_delay * 2**n)``, unless
    the endpoint sent ``Retry-After``, which is honoured up to
    ``max_retry_after``. No attempt starts after ``total`` seconds.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    total: float = 30.0
    max_retry_after: float = 30.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """The jittered delay before retry number `retry` (0 for the first)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0**retry)
        return ceiling / 2 + rng.random() * ceiling / 2


@dataclass(frozen=True, slots=True)
class _Token:
    value: str = field(repr=False)
    # On the manager's clock; both infinite when the lifetime is unknown.
    renew_at: float
    expires_at: float = math.inf
    lifetime: float | None = None


class _Stopped(Exception):
    """The run stopped while the manager waited to fetch."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _Retryable(Exception):
    """An attempt failed for a reason that may pass (5xx, 429, network)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class TokenManager(NeverPickled):
    """The access token of one OAuth2 connection, fetched once and shared.

    Args:
        connection: The connection whose ``token_url`` issues the tokens.
        redactor: Learns the client secret at once and every token as soon
            as it arrives.
        name: The connection's name, for messages and logs.
        transport: An httpx transport for the token endpoint (tests).
        clock: Monotonic seconds; lifetimes are measured on it from the
            moment the token request was sent.
        sleep: Waits between retries.
        margin: Seconds before expiry at which the token is renewed; never
            more than half the token's lifetime.
        retry: When failed token requests are sent again.
        tracer: Writes each token request and its response (``-vv``).
        cache: Keeps tokens between runs (``--token-cache``); none by default.
        stop: The run's stop event: once set, a wait for the cache's lock
            ends with a `TokenError` instead of a fetch.

    Raises:
        TokenError: ``token_url`` is refused (see `check_token_url`).
    """

    def __init__(
        self,
        connection: OAuth2Connection,
        redactor: Redactor,
        *,
        name: str,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        margin: float = DEFAULT_MARGIN_SECONDS,
        retry: RetryPolicy | None = None,
        tracer: Tracer | None = None,
        cache: TokenCache | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.name = name
        self._cache = cache
        self._stop = stop
        self._tracer = tracer
        self._trace_title = f"connection {name!r}: token request"
        self._connection = connection
        self._redactor = redactor
        register_client_secrets(connection, redactor)

        refusal = check_token_url(connection)
        if refusal is not None:
            raise TokenError(refusal, connection=name)

        self._url = str(connection.token_url)
        self._shown_url = _shown_url(httpx.URL(self._url), redactor)
        self._clock = clock
        self._sleep = sleep
        self._margin = margin
        self._retry = retry or RetryPolicy()
        self._rng = random.Random()
        timeout = connection.timeout
        # Another run holding the cache's lock may be this long on one fetch:
        # attempts start up to `total` seconds in, the last one may take the
        # whole timeout. A shorter wait would have every waiting run fetch
        # just while the provider asked them to back off.
        self._lock_wait = self._retry.total + timeout

        # RFC 6749 section 4.4.2: the same form on every fetch.
        authentication = client_authentication(connection)
        self._form: dict[str, str] = {"grant_type": "client_credentials"}
        scope = connection.scope_text()
        if scope:
            self._form["scope"] = scope
        self._form.update(connection.token_params)
        self._form.update(authentication.form)
        # Identity: a token response is small, and a compressed one could
        # inflate far past the body cap in a single chunk.
        self._headers = {
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **authentication.headers,
        }

        # A client of its own: redirects would forward the secret (SPEC), and
        # the API client's hooks and default headers must never see it.
        self._client = httpx.Client(
            transport=transport,
            follow_redirects=False,
            verify=shared_ssl_context(connection.verify_ssl),
            timeout=timeout,
        )

        self._lock = threading.Lock()
        self._token: _Token | None = None
        self._failure: TokenError | None = None
        # A token fetched by a renewal that the API has not accepted yet: a 401
        # on it means the API refuses fresh tokens, so it is not renewed again.
        self._unproven: str | None = None
        self._proof_lock = threading.Lock()
        self._fetches = 0
        self._issued = 0
        self._from_cache = 0

    def __repr__(self) -> str:
        state = "failed" if self._failure else "token" if self._token else "no token"
        return (
            f"<TokenManager {self.name!r} {self._shown_url} "
            f"fetches={self._fetches} {state}>"
        )

    def __enter__(self) -> TokenManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def fetches(self) -> int:
        """Token requests sent so far, retries included."""
        return self._fetches

    @property
    def tokens_issued(self) -> int:
        """Tokens received and accepted so far."""
        return self._issued

    @property
    def tokens_from_cache(self) -> int:
        """Tokens read from the token cache instead of fetched."""
        return self._from_cache

    @property
    def failure(self) -> TokenError | None:
        """The error that stopped this connection, if one did."""
        return self._failure

    def token(self) -> str:
        """A valid access token, fetched first if there is none or it expires.

        Raises:
            TokenError: The endpoint refused or misbehaved, now or earlier.
        """
        current = self._token
        if current is not None and self._clock() < current.renew_at:
            return current.value

        with self._lock:
            # Another thread may have fetched while this one waited.
            self._raise_failure()
            current = self._token
            if current is not None and self._clock() < current.renew_at:
                return current.value
            return self._fetch(renewal=False)

    def renew(self, rejected: str) -> str:
        """The token to use after the API answered 401 to `rejected`.

        A new token is fetched only if `rejected` is still the current one:
        many requests refused at once cause one fetch. A token that a
        renewal produced is not renewed again until the API has accepted it
        once (see `accepted`), so an API that refuses every token costs one
        extra fetch in all, not one per request.

        Raises:
            TokenError: The endpoint refused or misbehaved, now or earlier.
        """
        with self._lock:
            self._raise_failure()
            current = self._token
            if current is None or self._clock() >= current.renew_at:
                return self._fetch(renewal=False, rejected=rejected)
            # Renewed by another thread already, or renewing does not help.
            if current.value != rejected or rejected == self._unproven:
                return current.value
            return self._fetch(renewal=True)

    def accepted(self, token: str) -> None:
        """Note that the API answered other than 401 to a request carrying `token`."""
        if token != self._unproven:
            return
        with self._proof_lock:
            if token == self._unproven:
                self._unproven = None

    def close(self) -> None:
        """Close the token endpoint's connections."""
        self._client.close()

    def _raise_failure(self) -> None:
        failure = self._failure
        if failure is not None:
            # A new exception each time: threads must not share one traceback.
            raise TokenError(failure.message, connection=self.name) from None

    def _fetch(self, *, renewal: bool, rejected: str | None = None) -> str:
        """Fetch a token (or read it from the cache); the caller holds the lock."""
        try:
            cache = self._cache
            if cache is None:
                token = self._fetch_with_retries()
            else:
                token = self._fetch_through_cache(cache, renewal, rejected)
        except _Stopped as stopped:
            # Not remembered as the connection's failure: nothing failed.
            raise TokenError(stopped.message, connection=self.name) from None
        except TokenError as error:
            self._token = None
            self._failure = error
            # INFO, not WARNING: the caller reports the error; Python's
            # last-resort handler would print a warning a second time.
            log.info("connection %s: %s", self.name, error.message)
            raise

        self._token = token
        with self._proof_lock:
            self._unproven = token.value if renewal else None
        return token.value

    def _fetch_through_cache(
        self, cache: TokenCache, renewal: bool, rejected: str | None
    ) -> _Token:
        """The cached token, or a fetched one stored for the next runs.

        The identity's file lock is held across both, so that runs started
        together share one fetch. After a 401 (`renewal`) the cache is not
        read: its token is the one refused, and the fetched one replaces it.
        """
        stop = self._stop
        with cache.entry(self._connection, timeout=self._lock_wait, stop=stop) as entry:
            if entry is None and stop is not None and stop.is_set():
                raise _Stopped("the run is stopping; no token was fetched")
            if entry is None:  # the lock was not had in time
                return self._fetch_with_retries()

            cached = None if renewal else entry.read(self._margin, rejected=rejected)
            if cached is not None:
                self._redactor.add(cached.value)
                self._from_cache += 1
                log.info(
                    "connection %s: token read from the cache, %.0f s left",
                    self.name,
                    cached.remaining,
                )
                now = self._clock()
                margin = min(self._margin, cached.lifetime / 2)
                return _Token(
                    cached.value,
                    renew_at=now + cached.remaining - margin,
                    expires_at=now + cached.remaining,
                    lifetime=cached.lifetime,
                )

            token = self._fetch_with_retries()
            if token.lifetime is None:
                # Only a known lifetime says when to stop reusing a token.
                entry.clear()
            else:
                remaining = token.expires_at - self._clock()
                entry.write(token.value, remaining=remaining, lifetime=token.lifetime)
            return token

    def _fetch_with_retries(self) -> _Token:
        policy = self._retry
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt()
            except _Retryable as failure:
                reason = failure.reason
                retry_after = failure.retry_after

            if attempt >= policy.attempts:
                raise self._error(f"{reason}; gave up after {attempt} attempts")

            if retry_after is not None:
                delay = min(retry_after, policy.max_retry_after)
            else:
                delay = policy.backoff(attempt - 1, self._rng)
            if self._clock() - started + delay > policy.total:
                message = (
                    f"{reason}; gave up after {attempt} attempts, as the next "
                    f"would start later than {policy.total:g} s after the first"
                )
                raise self._error(message)

            log.info("connection %s: %s; retrying in %.1f s", self.name, reason, delay)
            # On the run's stop event, when there is one: Ctrl-C or
            # --fail-fast end the wait at once.
            if self._stop is None:
                self._sleep(delay)
            elif self._stop.wait(delay):
                raise _Stopped("the run is stopping; no token was fetched")

    def _attempt(self) -> _Token:
        """Send one token request and read its answer."""
        self._fetches += 1
        sent_at = self._clock()
        try:
            with self._client.stream(
                "POST", self._url, data=self._form, headers=self._headers
            ) as response:
                status = response.status_code
                # Never followed: the next request would carry the secret to
                # wherever the redirect points (SPEC, "OAuth2 behaviour").
                if 300 <= status < 400:
                    self._trace(response, None)
                    raise self._error(self._redirect_message(response))
                body = _read_capped(response)
        except httpx.TransportError as exc:
            reason = f"could not reach the token endpoint ({_kind(exc)})"
            if self._tracer is not None:
                self._tracer.failure(exc.request, reason, title=self._trace_title)
            raise _Retryable(reason) from None

        document = None if body is None else _json_object(body)
        if document is not None:
            self._learn_secrets(document)
            self._trace(response, body)
        else:
            # Its tokens, if any, are unknown to the redactor: not shown.
            self._trace(response, body, withheld="not a JSON object")

        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise _Retryable(f"the token endpoint answered {status}", retry_after)
        if body is None:
            raise self._error(
                f"the token endpoint answered {status} with a body larger "
                f"than {MAX_TOKEN_RESPONSE_BYTES // 1024} KiB"
            )

        # Some providers answer an RFC 6749 section 5.2 error with a 200.
        refused = (
            document is not None
            and "error" in document
            and "access_token" not in document
        )
        if refused or not 200 <= status < 300:
            raise self._error(self._refusal_message(status, response, document))
        if document is None:
            raise self._error(_not_json_message(status, response))

        value, lifetime = self._read_token(document)
        renew_at = expires_at = math.inf
        if lifetime is not None:
            expires_at = sent_at + lifetime
            renew_at = expires_at - min(self._margin, lifetime / 2)
        self._issued += 1
        log.info(
            "connection %s: token fetched in %.0f ms, %s",
            self.name,
            (self._clock() - sent_at) * 1000,
            "lifetime unknown" if lifetime is None else f"lifetime {lifetime:g} s",
        )
        return _Token(value, renew_at, expires_at, lifetime)

    def _trace(
        self,
        response: httpx.Response,
        body: bytes | None,
        *,
        withheld: str | None = None,
    ) -> None:
        # Called only once the tokens of the body are known to the redactor.
        if self._tracer is not None:
            self._tracer.exchange(
                response, title=self._trace_title, body=body, withheld=withheld
            )

    def _learn_secrets(self, document: Mapping[str, Any]) -> None:
        # Registered before anything else reads the response, so that no
        # message, log or trace written from here on can show them.
        for key in ("access_token", "refresh_token", "id_token"):
            value = document.get(key)
            if isinstance(value, str):
                self._redactor.add(value)

    def _read_token(self, document: Mapping[str, Any]) -> tuple[str, float | None]:
        """The access token and its lifetime (RFC 6749 section 5.1)."""
        value = document.get("access_token")
        if not isinstance(value, str) or not value:
            what = "no access_token" if value is None else "an access_token"
            qualifier = "" if value is None else " that is not a non-empty string"
            raise self._error(f"the token response has {what}{qualifier}")
        if _NOT_HEADER_VISIBLE.search(value):
            raise self._error(
                "the access_token holds characters an Authorization header "
                "cannot carry (RFC 6750 section 2.1)"
            )

        # RFC 6749 section 5.1: the type is case-insensitive; none means bearer.
        token_type = document.get("token_type", "bearer")
        if token_type is None:
            token_type = "bearer"
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            shown = self._shown(token_type)
            raise self._error(
                f"the token_type is {shown}, not bearer (RFC 6750); "
                "the runner sends bearer tokens only"
            )

        return value, self._lifetime(document.get("expires_in"))

    def _lifetime(self, expires_in: object) -> float | None:
        """Seconds the token lives, or None when the provider does not say."""
        if expires_in is None:
            return None
        if isinstance(expires_in, bool):
            raise self._error(
                f"expires_in is {str(expires_in).lower()}, not a number of seconds"
            )

        if isinstance(expires_in, str):
            # Some providers send the number as a string ("3600", "3600.5").
            if not _DECIMAL.fullmatch(expires_in):
                raise self._error(
                    "expires_in is a string that is not a number of seconds"
                )
        elif not isinstance(expires_in, int | float):
            kind = _json_kind(expires_in)
            raise self._error(f"expires_in is {kind}, not a number of seconds")
        seconds = _seconds(expires_in)

        if math.isnan(seconds):
            raise self._error("expires_in is NaN, not a number of seconds")
        if seconds <= 0:
            raise self._error(
                f"expires_in is {seconds:g}: a token must live a positive "
                "number of seconds"
            )
        if seconds > MAX_LIFETIME_SECONDS:
            raise self._error(
                f"expires_in is {seconds:g} seconds, more than ten years; "
                "the provider probably sent a date or milliseconds"
            )
        return seconds

    def _refusal_message(
        self,
        status: int,
        response: httpx.Response,
        document: Mapping[str, Any] | None,
    ) -> str:
        """The message of a 4xx, with the provider's RFC 6749 section 5.2 error."""
        error = None if document is None else document.get("error")
        if not isinstance(error, str) or not error:
            return _not_json_message(status, response, what="an error")

        code = self._redactor.redact(_NOT_ERROR_CODE.sub("?", error))
        message = f"the token endpoint refused the request: {code[:_MAX_SHOWN_CHARS]}"
        description = None if document is None else document.get("error_description")
        if isinstance(description, str) and description.strip():
            text = self._redactor.redact(_CONTROL.sub(" ", description).strip())
            if len(text) > _MAX_DESCRIPTION_CHARS:
                text = text[: _MAX_DESCRIPTION_CHARS - 1].rstrip() + "…"
            message += f": {text}"
        return f"{message} (HTTP {status})"

    def _redirect_message(self, response: httpx.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            where = "without a Location"
        else:
            try:
                target = response.url.join(location)
            except httpx.InvalidURL:
                where = "to an invalid Location"
            else:
                where = f"to {_shown_url(target, self._redactor)}"
        return (
            f"the token endpoint answered {response.status_code} {where}; "
            "redirects of the token endpoint are never followed (the client "
            "secret would go along), so set token_url to the final address"
        )

    def _shown(self, value: object) -> str:
        """A short, masked rendering of a non-secret response field."""
        if isinstance(value, str):
            text = self._redactor.redact(_CONTROL.sub(" ", value))
            if len(text) > _MAX_SHOWN_CHARS:
                text = text[: _MAX_SHOWN_CHARS - 1] + "…"
            return repr(text)
        return _json_kind(value)

    def _error(self, reason: str) -> TokenError:
        message = self._redactor.redact(
            f"token request to {self._shown_url} failed: {reason}"
        )
        return TokenError(message, connection=self.name)


# Where BearerAuth notes the header it added, in the request's extensions,
# which httpx hands on to the requests of the redirects it follows.
_ADDED_AUTHORIZATION = "runner.bearer_authorization"


class BearerAuth(httpx.Auth):
    """Puts the connection's token on its requests (RFC 6750 section 2.1).

    Only a request to the origin (scheme, host, port) of the connection's
    ``url`` gets the token; a request to another origin goes without it, as
    does one that already carries an ``Authorization`` header of its own.
    A followed redirect off the origin loses the token too: httpx keeps
    ``Authorization`` on an http to https hop of the same host, which is
    another origin; `drop_off_origin`, a request hook, removes it there.
    A 401 to a request that carried a token renews the token (see
    `TokenManager.renew`) and sends the request once more; a second 401 is
    returned as it is. A 403 is never retried.

    Args:
        manager: The connection's token manager.
        api_url: The connection's ``url``: its origin receives the token.
    """

    def __init__(self, manager: TokenManager, api_url: str | httpx.URL) -> None:
        self._manager = manager
        self._origin = _origin(httpx.URL(str(api_url)))

    def __repr__(self) -> str:
        scheme, host, port = self._origin
        return f"<BearerAuth for {scheme}://{host}:{port}>"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Send `request` with the token, and once more after a 401."""
        if "Authorization" in request.headers or _origin(request.url) != self._origin:
            yield request
            return

        # Loads a streamed body once, so that it can be sent a second time.
        request.read()
        manager = self._manager
        token = manager.token()
        self._authorize(request, token)
        response = yield request
        if response.status_code != 401:
            manager.accepted(token)
            return

        # RFC 6750 section 3.1: invalid_token, the token expired or was revoked.
        token = manager.renew(token)
        self._authorize(request, token)
        response = yield request
        if response.status_code != 401:
            manager.accepted(token)

    def drop_off_origin(self, request: httpx.Request) -> None:
        """Remove the token from a send to another origin (a request hook)."""
        added = request.extensions.get(_ADDED_AUTHORIZATION)
        if added is None or _origin(request.url) == self._origin:
            return
        if request.headers.get("Authorization") == added:
            del request.headers["Authorization"]

    @staticmethod
    def _authorize(request: httpx.Request, token: str) -> None:
        value = f"Bearer {token}"
        request.headers["Authorization"] = value
        request.extensions[_ADDED_AUTHORIZATION] = value

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Not supported: the token manager blocks on a thread lock."""
        message = "BearerAuth waits on a thread lock; use it with httpx.Client"
        raise NotImplementedError(message)
        yield request  # pragma: no cover


def _shown_url(url: httpx.URL, redactor: Redactor) -> str:
    """`url` without its user info, query or fragment, secrets masked.

    Percent-escapes are decoded first: a secret in a path may come back
    escaped in a mix no single encoding of it matches.
    """
    bare = url.copy_with(username=None, password=None, query=None, fragment=None)
    # Masked before it is cut, so that no part of a secret survives the cut.
    shown = redactor.redact(unquote(str(bare)))
    if len(shown) > 2 * _MAX_SHOWN_CHARS:
        shown = shown[: 2 * _MAX_SHOWN_CHARS - 1] + "…"
    return shown


def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or None as soon as it grows past the cap (the rest is unread)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_TOKEN_RESPONSE_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """`body` as a JSON object, or None if it is not one."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _seconds(value: float | str) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        return math.inf


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _not_json_message(
    status: int, response: httpx.Response, *, what: str = "a token"
) -> str:
    # The body itself is never quoted: it may hold anything, secrets included.
    content_type = response.headers.get("Content-Type", "")
    media_type = _CONTROL.sub("", content_type.split(";")[0].strip())
    media_type = media_type[:_MAX_SHOWN_CHARS] or "no content type"
    return (
        f"the token endpoint answered {status} with {media_type}, not a JSON "
        f"object holding {what}"
    )


def _kind(exc: httpx.TransportError) -> str:
    """The class of a network error, in words (its text may quote the URL)."""
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()
    return words

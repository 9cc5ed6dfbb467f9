"""Local OAuth2 servers for the tests, on real sockets of 127.0.0.1 (port 0).

Two servers, both started by their constructor and stopped by `close()` (or
by leaving a ``with`` block); each serves a token endpoint at
``token_url`` and a protected API under ``api_url``:

`AuthlibServer`
    A real authorization server from PyPI: Authlib's Flask integration with
    its Client Credentials grant and its resource protector, served by
    werkzeug in a thread. Use it for the happy paths of each client
    authentication method.

`FixtureServer`
    Our own scriptable server on ``http.server``, for the fault cases:
    scripted token replies (503s, 429 with ``Retry-After``, errors, HTML,
    redirects, huge bodies), a chosen ``expires_in``, a slow token
    endpoint, revocation, an API that always answers 401. It counts token
    and API requests and records the ``Authorization`` headers it saw.

Both enforce the lifetimes they announce, so a client that reuses a token
too long gets 401s. `connection_for` builds the `OAuth2Connection` that
points at either server. Typical use, from any test module::

    from tests.oauth_servers import FixtureServer, Reply, connection_for

    def test_something() -> None:
        with FixtureServer(expires_in=1) as server:
            server.replies.append(Reply.json(503, {}))
            connection = connection_for(server)
            ...
            assert server.token_requests == 2
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import hmac
import json
import logging
import math
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, unquote_plus

import httpx
import pytest

from runner.connections import OAuth2Connection
from runner.secrets import Redactor
from runner.tokens import BearerAuth, TokenManager

__all__ = [
    "ABSENT",
    "AuthlibClient",
    "AuthlibServer",
    "FixtureServer",
    "Reply",
    "SecretWatch",
    "connection_for",
    "free_port",
    "wait_until",
]

HOST = "127.0.0.1"

# The value of `FixtureServer.expires_in` (or `token_type`) that leaves the
# field out of the token response.
ABSENT: Any = object()

ClientAuthMethod = Literal[
    "client_secret_basic", "client_secret_post", "client_secret_raw"
]


def connection_for(
    server: FixtureServer | AuthlibServer, **fields: Any
) -> OAuth2Connection:
    """An OAuth2 connection to `server`'s API with its client; `fields` override."""
    document: dict[str, Any] = {
        "url": server.api_url,
        "token_url": server.token_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "auth_method": server.auth_method,
    }
    document.update(fields)
    return OAuth2Connection.model_validate(document)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


@dataclass
class Reply:
    """A scripted answer of `FixtureServer`'s token endpoint.

    Attributes:
        status: The HTTP status.
        body: The body, sent with a Content-Length.
        headers: Extra headers (``Content-Type`` among them).
        delay: Seconds to wait before answering.
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    @classmethod
    def json(
        cls, status: int, document: object, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """A JSON answer."""
        return cls(
            status,
            json.dumps(document).encode(),
            {"Content-Type": "application/json", **(headers or {})},
        )

    @classmethod
    def html(cls, status: int, text: str) -> Reply:
        """An HTML page holding `text`."""
        page = f"<!doctype html><html><body><p>{text}</p></body></html>"
        return cls(status, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    @classmethod
    def redirect(cls, status: int, location: str) -> Reply:
        """A redirect to `location`."""
        return cls(status, b"", {"Location": location})


class _Server(ThreadingHTTPServer):
    """A threading server that can drop its open connections when stopped."""

    request_queue_size = 256
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: FixtureServer) -> None:
        self.owner = owner
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__((HOST, 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends its thread after this
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the counters instead."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/token":
            owner._record_headers(self.headers.items())
            reply = owner._token_reply(self.headers.get("Authorization"), body)
        elif path == "/api" or path.startswith("/api/"):
            reply = owner._api_reply(path, self.headers.get("Authorization"))
        else:
            reply = Reply.json(404, {"error": "not_found"})
        if reply.delay:
            owner._stopping.wait(reply.delay)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        try:
            self.wfile.write(reply.body)
        except OSError:  # the client gave up, as some tests make it do
            self.close_connection = True


class FixtureServer:
    """A scriptable token endpoint and protected API (stdlib, one thread each).

    Args:
        client_id: The only client the token endpoint knows.
        client_secret: Its secret.
        auth_method: How the client must authenticate: ``client_secret_basic``
            (Basic, id and secret decoded as RFC 6749 Appendix B says),
            ``client_secret_raw`` (Basic, no decoding) or ``client_secret_post``
            (form fields).
        expires_in: The ``expires_in`` of issued tokens (any JSON value, or
            `ABSENT`). A numeric value (or numeric string) is also enforced
            by the API, counted from when the token was issued.
        token_type: The ``token_type`` of issued tokens, or `ABSENT`.
        token_delay: Seconds the token endpoint waits before each answer.
        api_always_401: The API refuses every token.

    Attributes that tests set while the server runs: ``replies`` (a deque of
    `Reply`, answered in order to the next token requests, before any
    normal issuance), ``expires_in``, ``token_type``, ``token_delay``,
    ``api_always_401``, ``revoke_after_api_requests`` (revoke every token
    once the API has served that many requests).

    Attributes that tests read: ``url``, ``token_url``, ``api_url``,
    ``token_requests``, ``token_authorizations``, ``token_forms`` and
    ``token_headers`` (lower-case names; one of each per token request),
    ``api_requests``, ``api_authorizations``, ``api_statuses`` (a Counter)
    and ``issued`` (every access token issued, in order).
    """

    def __init__(
        self,
        *,
        client_id: str = "fixture-client",
        client_secret: str = "fixture-secret-Zq8/+ 7w",
        auth_method: ClientAuthMethod = "client_secret_basic",
        expires_in: Any = 3600,
        token_type: Any = "Bearer",
        token_delay: float = 0.0,
        api_always_401: bool = False,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_method = auth_method
        self.expires_in = expires_in
        self.token_type = token_type
        self.token_delay = token_delay
        self.api_always_401 = api_always_401
        self.revoke_after_api_requests: int | None = None
        self.replies: collections.deque[Reply] = collections.deque()

        self.token_requests = 0
        self.token_authorizations: list[str | None] = []
        self.token_forms: list[dict[str, str]] = []
        self.token_headers: list[dict[str, str]] = []
        self.api_requests = 0
        self.api_authorizations: list[str | None] = []
        self.api_statuses: collections.Counter[int] = collections.Counter()
        self.issued: list[str] = []

        self._lock = threading.Lock()
        self._valid: dict[str, float] = {}  # token -> deadline (time.monotonic)
        self._stopping = threading.Event()
        self._server = _Server(self)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self.token_url = f"{self.url}/token"
        self.api_url = f"{self.url}/api"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fixture-oauth-{self._server.server_port}",
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"<FixtureServer {self.url}>"

    def __enter__(self) -> FixtureServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving, drop open connections and join every thread."""
        self._stopping.set()
        self._server.shutdown()
        with self._server.sockets_lock:
            for sock in list(self._server.open_sockets):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
        self._server.server_close()  # joins the handler threads
        self._thread.join(timeout=5)

    def revoke_all(self) -> None:
        """Make every token issued so far invalid at the API."""
        with self._lock:
            self._valid.clear()

    def _record_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        with self._lock:
            self.token_headers.append({name.lower(): value for name, value in headers})

    def _token_reply(self, authorization: str | None, body: bytes) -> Reply:
        form = {key: values[-1] for key, values in parse_qs(body.decode()).items()}
        with self._lock:
            self.token_requests += 1
            self.token_authorizations.append(authorization)
            self.token_forms.append(form)
            scripted = self.replies.popleft() if self.replies else None
            delay = self.token_delay
        if scripted is not None:
            scripted.delay = scripted.delay or delay
            return scripted

        if not self._authenticates(authorization, form):
            reply = Reply.json(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Client authentication failed.",
                },
                {"WWW-Authenticate": 'Basic realm="fixture"'},
            )
        elif form.get("grant_type") != "client_credentials":
            reply = Reply.json(400, {"error": "unsupported_grant_type"})
        else:
            reply = self._issue()
        reply.delay = delay
        return reply

    def _authenticates(
        self, authorization: str | None, form: Mapping[str, str]
    ) -> bool:
        if self.auth_method == "client_secret_post":
            given = (form.get("client_id", ""), form.get("client_secret", ""))
            return _same(given, (self.client_id, self.client_secret))

        scheme, _, credential = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credential, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        if self.auth_method == "client_secret_basic":
            # RFC 6749 Appendix B: each half is form-urlencoded.
            user, password = unquote_plus(user), unquote_plus(password)
        return _same((user, password), (self.client_id, self.client_secret))

    def _issue(self) -> Reply:
        token = "fx-" + secrets.token_urlsafe(24)
        document: dict[str, Any] = {"access_token": token}
        if self.token_type is not ABSENT:
            document["token_type"] = self.token_type
        if self.expires_in is not ABSENT:
            document["expires_in"] = self.expires_in
        lifetime = _lifetime(self.expires_in)
        with self._lock:
            self.issued.append(token)
            self._valid[token] = time.monotonic() + lifetime
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        return Reply.json(200, document, headers)

    def _api_reply(self, path: str, authorization: str | None) -> Reply:
        scheme, _, token = (authorization or "").partition(" ")
        with self._lock:
            self.api_requests += 1
            self.api_authorizations.append(authorization)
            if self.revoke_after_api_requests == self.api_requests:
                self._valid.clear()
            deadline = self._valid.get(token, -math.inf)
            valid = scheme.lower() == "bearer" and time.monotonic() < deadline
            if path == "/api/forbidden" and valid:
                status = 403
            elif valid and not self.api_always_401:
                status = 200
            else:
                status = 401
            self.api_statuses[status] += 1
        if status == 401:
            challenge = 'Bearer realm="fixture", error="invalid_token"'
            return Reply.json(
                401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge}
            )
        return Reply.json(status, {"ok": status == 200, "path": path})


def _same(given: Sequence[str], expected: Sequence[str]) -> bool:
    return all(
        hmac.compare_digest(left.encode(), right.encode())
        for left, right in zip(given, expected, strict=True)
    )


def _lifetime(expires_in: Any) -> float:
    """How long the API honours a token announced with `expires_in`."""
    if isinstance(expires_in, bool):
        return math.inf
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return math.inf
    return seconds if math.isfinite(seconds) and seconds > 0 else math.inf


# Authlib -------------------------------------------------------------------


@dataclass
class AuthlibClient:
    """A client registered with `AuthlibServer` (Authlib's ClientMixin protocol).

    Attributes:
        client_id: Its identifier.
        client_secret: Its secret.
        auth_method: ``client_secret_basic`` or ``client_secret_post``.
        scope: The scopes it may ask for, space-separated.
    """

    client_id: str
    client_secret: str = field(repr=False)
    auth_method: str = "client_secret_basic"
    scope: str = ""

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(self.scope.split())
        return " ".join(item for item in scope.split() if item in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint != "token" or method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _AuthlibToken:
    """An issued token as Authlib's resource protector reads it (TokenMixin)."""

    def __init__(self, document: Mapping[str, Any], client: AuthlibClient) -> None:
        self.document = dict(document)
        self.client = client
        self.issued_at = time.time()
        self.revoked = False

    def check_client(self, client: AuthlibClient) -> bool:
        return client.client_id == self.client.client_id

    def get_scope(self) -> str:
        return str(self.document.get("scope", ""))

    def get_expires_in(self) -> int:
        return int(self.document["expires_in"])

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.get_expires_in()

    def is_revoked(self) -> bool:
        return self.revoked


class AuthlibServer:
    """Authlib's authorization server and resource protector, served by werkzeug.

    Args:
        clients: The registered clients.
        expires_in: The lifetime of issued tokens, in seconds.

    Attributes: ``url``, ``token_url``, ``api_url`` (``GET api_url + "/..."``
    answers 200 with a valid token, 401 otherwise), ``token_requests``,
    ``api_requests``, ``issued`` (every access token, in order), and, for
    `connection_for`, ``client_id``, ``client_secret`` and ``auth_method``
    of the first client.
    """

    def __init__(
        self, clients: Iterable[AuthlibClient], *, expires_in: int = 3600
    ) -> None:
        # Imported here: only the tests that start this server need Flask.
        from authlib.integrations.flask_oauth2 import (
            AuthorizationServer,
            ResourceProtector,
        )
        from authlib.oauth2.rfc6749 import grants
        from authlib.oauth2.rfc6750 import BearerTokenValidator
        from flask import Flask, request
        from werkzeug.serving import make_server

        self.clients = {client.client_id: client for client in clients}
        first = next(iter(self.clients.values()))
        self.client_id = first.client_id
        self.client_secret = first.client_secret
        self.auth_method = first.auth_method
        self.token_requests = 0
        self.api_requests = 0
        self.issued: list[str] = []
        self._tokens: dict[str, _AuthlibToken] = {}
        self._lock = threading.Lock()

        app = Flask(f"authlib-fixture-{id(self)}")
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": expires_in}

        def save_token(document: Mapping[str, Any], oauth_request: Any) -> None:
            with self._lock:
                self.issued.append(document["access_token"])
                self._tokens[document["access_token"]] = _AuthlibToken(
                    document, oauth_request.client
                )

        server = AuthorizationServer(
            app, query_client=self.clients.get, save_token=save_token
        )

        class ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
                "client_secret_basic",
                "client_secret_post",
            ]

        server.register_grant(ClientCredentials)

        tokens = self._tokens

        class Validator(BearerTokenValidator):  # type: ignore[misc]
            def authenticate_token(self, token_string: str) -> _AuthlibToken | None:
                return tokens.get(token_string)

        protect = ResourceProtector()
        protect.register_token_validator(Validator())

        @app.before_request
        def count() -> None:
            with self._lock:
                if request.path == "/token":
                    self.token_requests += 1
                elif request.path.startswith("/api"):
                    self.api_requests += 1

        @app.post("/token")
        def token() -> Any:
            return server.create_token_response()

        @app.get("/api/<path:path>")
        @protect()
        def api(path: str) -> Any:
            return {"ok": True, "path": path}

        self._server = make_server(HOST, 0, app, threaded=True)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self.token_url = f"{self.url}/token"
        self.api_url = f"{self.url}/api"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"authlib-oauth-{self._server.server_port}",
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"<AuthlibServer {self.url}>"

    def __enter__(self) -> AuthlibServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and join the server thread."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def revoke_all(self) -> None:
        """Revoke every token issued so far."""
        with self._lock:
            for issued in self._tokens.values():
                issued.revoked = True


def wait_until(condition: Callable[[], object], *, timeout: float = 5.0) -> bool:
    """Poll `condition()` every 10 ms until it is true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())


class SecretWatch:
    """Builds the objects of a token test and checks no secret escaped from them.

    A test module makes one per test with an autouse fixture::

        @pytest.fixture(autouse=True)
        def watch(caplog, capsys):
            with SecretWatch(caplog, capsys) as watch:
                yield watch

    Servers, managers and clients made through it are closed at the end;
    then every captured text is searched for every client secret and every
    token the servers issued: the log records of ``runner`` and ``httpx``
    (at DEBUG), standard output and error, the reprs of the
    managers and auths, and whatever the test passed to `seen` (exception
    messages, above all).
    """

    def __init__(
        self, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ) -> None:
        self.caplog = caplog
        self.capsys = capsys
        self.redactor = Redactor()
        self.texts: list[str] = []
        self.secret_values: set[str] = set()
        self._servers: list[FixtureServer | AuthlibServer] = []
        self._managers: list[TokenManager] = []
        self._closables: list[Any] = []

    def __enter__(self) -> SecretWatch:
        # Not httpcore: its DEBUG trace prints raw response headers, so a
        # server that echoes a secret in one would show it; never enable it.
        for name in ("runner", "httpx"):
            self.caplog.set_level(logging.DEBUG, logger=name)
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        for closable in reversed(self._closables):
            closable.close()
        if exc_type is None:
            self.check()

    def fixture_server(self, **options: Any) -> FixtureServer:
        """A started `FixtureServer`, watched and closed at the end."""
        server = FixtureServer(**options)
        self._watch_server(server)
        return server

    def authlib_server(
        self, clients: Iterable[AuthlibClient], **options: Any
    ) -> AuthlibServer:
        """A started `AuthlibServer`, watched and closed at the end."""
        server = AuthlibServer(clients, **options)
        self._watch_server(server)
        return server

    def manager(
        self,
        server: FixtureServer | AuthlibServer,
        /,
        *,
        name: str = "api",
        **options: Any,
    ) -> TokenManager:
        """A `TokenManager` for `server` (connection fields and manager options)."""
        fields = {key: options.pop(key) for key in list(options) if key in _FIELDS}
        connection = connection_for(server, **fields)
        manager = TokenManager(connection, self.redactor, name=name, **options)
        self._managers.append(manager)
        self._closables.append(manager)
        return manager

    def client(self, manager: TokenManager, api_url: str | None = None) -> httpx.Client:
        """An API client that authenticates through `manager`."""
        url = api_url or str(manager._connection.url)
        auth = BearerAuth(manager, url)
        self.texts.append(repr(auth))
        client = httpx.Client(
            auth=auth, timeout=10, limits=httpx.Limits(max_connections=128)
        )
        self._closables.append(client)
        return client

    def seen(self, *texts: object) -> None:
        """Texts the runner produced that the final check must search too."""
        for text in texts:
            self.texts.append(str(text))
            if isinstance(text, BaseException):
                self.texts.append(repr(text))

    def leaks(self) -> list[str]:
        """The watched secrets found in any captured text (reported masked)."""
        out, err = self.capsys.readouterr()
        texts = [*self.texts, out, err, self.caplog.text]
        texts += [repr(manager) for manager in self._managers]
        texts += [record.getMessage() for record in self.caplog.records]
        values = set(self.secret_values)
        for server in self._servers:
            values.add(server.client_secret)
            values.update(server.issued)
        joined = "\n".join(texts)
        return [
            f"{value[:3]}... ({len(value)} chars)"
            for value in values
            if value in joined
        ]

    def check(self) -> None:
        """Fail if any watched secret was found."""
        found = self.leaks()
        assert not found, f"secrets leaked into captured text: {found}"

    def _watch_server(self, server: FixtureServer | AuthlibServer) -> None:
        self._servers.append(server)
        self._closables.append(server)


# `retry` names both a connection field (API requests) and a `TokenManager`
# option (token requests); given to `SecretWatch.manager`, it is the latter.
_FIELDS = frozenset(OAuth2Connection.model_fields) - {"retry"}

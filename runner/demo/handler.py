"""The demo API on the wire: the token endpoint and the protected routes.

- ``POST /oauth/token`` issues bearer tokens with the Client Credentials
  grant (RFC 6749 section 4.4) to clients that authenticate with HTTP Basic
  or in the form body (section 2.3.1); errors follow section 5.2.
- ``/api/...`` answers only requests with a valid bearer token (RFC 6750):
  ``GET /api/health``; ``/api/invoices`` (POST, GET with ``?customer=`` or
  ``?status=``) and ``/api/invoices/{id}`` (GET, PATCH, DELETE), under the
  ``invoices`` scope; ``GET /api/customers/{name}``, under ``customers``.

Each response is buffered and sent in one write on a keep-alive connection,
and nothing is logged: the demo's output is the runner's alone.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import socket
import socketserver
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus

from runner.demo.store import (
    BILLING_CLIENT,
    DemoClient,
    DemoStore,
    InvalidInput,
    invoice_fields,
)

__all__ = ["API_PATH", "HOST", "TOKEN_PATH", "DemoHTTPServer"]

HOST = "127.0.0.1"
REALM = "runner-demo"
TOKEN_PATH = "/oauth/token"
API_PATH = "/api"

# Request bodies larger than this are refused before they are read.
MAX_BODY_BYTES = 1024 * 1024
# An idle keep-alive connection is dropped after this long.
IDLE_TIMEOUT_SECONDS = 60.0
# Client-supplied text quoted back in an error is cut to this length.
QUOTE_LIMIT = 40

Header = tuple[str, str]
NO_STORE: Header = ("Cache-Control", "no-store")


@dataclass(frozen=True, slots=True)
class _Reply:
    """A response to send: status, JSON payload (None: no body), extra headers."""

    status: int
    payload: Any = None
    headers: tuple[Header, ...] = ()


def _error(status: int, code: str, description: str, *headers: Header) -> _Reply:
    return _Reply(status, {"error": code, "error_description": description}, headers)


class DemoHTTPServer(ThreadingHTTPServer):
    """The listening side: one daemon thread per connection, all sharing `store`.

    It keeps its open connections so that `close_connections` can end the
    idle keep-alive ones when the demo stops.
    """

    daemon_threads = True

    def __init__(self, store: DemoStore) -> None:
        self.store = store
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((HOST, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can
        # take seconds where DNS is slow; the name is known here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = HOST
        self.server_port = self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-request is not worth a traceback.
        return

    def close_connections(self) -> None:
        """End every open connection; their threads see the end and return."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "runner-demo"
    sys_version = ""
    # Headers and body go out in one write when the handler returns, and
    # Nagle is off: a keep-alive client never waits on a delayed ACK.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT_SECONDS

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    @property
    def _store(self) -> DemoStore:
        server = self.server
        assert isinstance(server, DemoHTTPServer)
        return server.store

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            return

        path, _, query = self.path.partition("?")
        if path == TOKEN_PATH:
            reply = self._token_endpoint(body)
        elif path.startswith(API_PATH + "/"):
            reply = self._api(path, query, body)
        else:
            reply = _error(404, "not_found", f"no route {path[:QUOTE_LIMIT]}")
        self._send(reply)

    def _read_body(self) -> bytes | None:
        """The request body, or None when a closing error reply was sent instead."""
        declared = self.headers.get("Content-Length")
        if "Transfer-Encoding" in self.headers:
            reply = _error(411, "invalid_request", "send a Content-Length")
        elif declared is None:
            return b""
        elif not (declared.isascii() and declared.strip().isdigit()):
            reply = _error(400, "invalid_request", "bad Content-Length")
        elif int(declared) > MAX_BODY_BYTES:
            description = f"bodies are limited to {MAX_BODY_BYTES} bytes"
            reply = _error(413, "invalid_request", description)
        else:
            return self.rfile.read(int(declared))

        # The body was not read, so the connection cannot carry another request.
        self._send(reply, close=True)
        return None

    def _send(self, reply: _Reply, *, close: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        data = b""
        if reply.payload is not None:
            data = json.dumps(reply.payload, separators=(",", ":")).encode()
            self.send_header("Content-Type", "application/json")
        if reply.status != 204:
            self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()

        if data:
            self.wfile.write(data)

    # RFC 6749 section 4.4: the Client Credentials grant.

    def _token_endpoint(self, body: bytes) -> _Reply:
        if self.command != "POST":
            description = "the token endpoint takes POST"
            return _error(405, "invalid_request", description, ("Allow", "POST"))
        try:
            form = _parse_form(body)
        except InvalidInput as error:
            return _token_error(400, "invalid_request", str(error))

        client = self._authenticate_client(form)
        if isinstance(client, _Reply):
            return client

        grant_type = form.get("grant_type")
        if grant_type is None:
            return _token_error(400, "invalid_request", "grant_type is missing")
        if grant_type != "client_credentials":
            description = f"grant_type {grant_type[:QUOTE_LIMIT]!r} is not supported"
            return _token_error(400, "unsupported_grant_type", description)

        # Section 3.3: a space-delimited scope; none asked means the client's
        # default, here everything it may have.
        asked = frozenset(form.get("scope", "").split())
        if not asked <= client.scopes:
            refused = " ".join(sorted(asked - client.scopes))[:QUOTE_LIMIT]
            return _token_error(400, "invalid_scope", f"scope not granted: {refused}")
        granted = asked or client.scopes

        store = self._store
        token = store.issue_token(granted)
        lifetime = store.token_lifetime
        # Section 5.1: the successful response, never to be cached.
        payload = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": int(lifetime) if lifetime.is_integer() else lifetime,
            "scope": " ".join(sorted(granted)),
        }
        return _Reply(200, payload, (NO_STORE, ("Pragma", "no-cache")))

    def _authenticate_client(self, form: Mapping[str, str]) -> DemoClient | _Reply:
        """RFC 6749 section 2.3.1: HTTP Basic, or both values in the form body."""
        header = self.headers.get("Authorization")
        in_body = "client_id" in form or "client_secret" in form
        if header is not None and in_body:
            # Section 2.3: one authentication method per request.
            description = "use either HTTP Basic or the form body, not both"
            return _token_error(400, "invalid_request", description)

        if header is not None:
            credentials = _basic_credentials(header)
            if credentials is None:
                return _invalid_client("malformed HTTP Basic credentials")
            client_id, client_secret = credentials
        elif in_body:
            client_id = form.get("client_id", "")
            client_secret = form.get("client_secret", "")
        else:
            return _invalid_client("no client authentication")

        client = self._store.clients.get(client_id)
        # Compare a secret even for an unknown client, in constant time.
        expected = (client or BILLING_CLIENT).client_secret
        matches = hmac.compare_digest(client_secret.encode(), expected.encode())
        if client is None or not matches:
            return _invalid_client("unknown client or wrong secret")
        return client

    # RFC 6750: the protected API.

    def _api(self, path: str, query: str, body: bytes) -> _Reply:
        scopes = self._bearer_scopes()
        if isinstance(scopes, _Reply):
            return scopes

        segments = path[len(API_PATH) + 1 :].split("/")
        match segments:
            case ["health"]:
                return self._allow("GET") or _Reply(200, {"status": "ok"})
            case ["invoices", *rest] if len(rest) <= 1:
                if "invoices" not in scopes:
                    return _insufficient_scope("invoices")
                if not rest:
                    return self._invoices(query, body)
                return self._invoice(rest[0], body)
            case ["customers", name] if name:
                if "customers" not in scopes:
                    return _insufficient_scope("customers")
                return self._allow("GET") or self._customer(unquote(name))
        return _error(404, "not_found", f"no route {path[:QUOTE_LIMIT]}")

    def _bearer_scopes(self) -> frozenset[str] | _Reply:
        header = self.headers.get("Authorization")
        if header is None:
            # RFC 6750 section 3.1: no error code when no credentials came.
            challenge = ("WWW-Authenticate", f'Bearer realm="{REALM}"')
            return _error(401, "unauthorized", "a bearer token is required", challenge)

        scheme, _, token = header.partition(" ")
        token = token.strip()
        scopes = None
        if scheme.lower() == "bearer" and token:
            scopes = self._store.token_scopes(token)
        if scopes is None:
            value = f'Bearer realm="{REALM}", error="invalid_token"'
            description = "the access token is unknown, malformed or expired"
            return _error(
                401, "invalid_token", description, ("WWW-Authenticate", value)
            )
        return scopes

    def _allow(self, *methods: str) -> _Reply | None:
        """A 405 reply when the request's method is not one of `methods`."""
        if self.command in methods:
            return None
        description = f"{self.command} is not allowed here"
        allow = ("Allow", ", ".join(methods))
        return _error(405, "method_not_allowed", description, allow)

    def _invoices(self, query: str, body: bytes) -> _Reply:
        refused = self._allow("GET", "POST")
        if refused is not None:
            return refused

        if self.command == "GET":
            matching = {key: values[-1] for key, values in parse_qs(query).items()}
            found = self._store.invoices(matching)
            return _Reply(200, {"invoices": found, "count": len(found)})

        try:
            fields = invoice_fields(_parse_json(body), partial=False)
        except InvalidInput as error:
            return _error(400, "invalid_request", str(error))
        created = self._store.create_invoice(fields)
        location = ("Location", f"{API_PATH}/invoices/{created['id']}")
        return _Reply(201, created, (location,))

    def _invoice(self, key: str, body: bytes) -> _Reply:
        refused = self._allow("GET", "PATCH", "DELETE")
        if refused is not None:
            return refused

        store = self._store
        invoice_id = (
            int(key) if key.isascii() and key.isdigit() and len(key) < 19 else -1
        )
        missing = _error(404, "not_found", f"no invoice {key[:QUOTE_LIMIT]!r}")
        if self.command == "DELETE":
            return _Reply(204) if store.delete_invoice(invoice_id) else missing

        if self.command == "GET":
            found = store.invoice(invoice_id)
        else:
            try:
                fields = invoice_fields(_parse_json(body), partial=True)
            except InvalidInput as error:
                return _error(400, "invalid_request", str(error))
            found = store.update_invoice(invoice_id, fields)
        return missing if found is None else _Reply(200, found)

    def _customer(self, name: str) -> _Reply:
        found = self._store.customer(name)
        if found is None:
            return _error(404, "not_found", f"no customer {name[:QUOTE_LIMIT]!r}")
        return _Reply(200, found)


def _token_error(status: int, code: str, description: str) -> _Reply:
    # RFC 6749 section 5.2; like every token response, not to be cached.
    return _error(status, code, description, NO_STORE)


def _invalid_client(description: str) -> _Reply:
    # RFC 6749 section 5.2: 401, with the authentication scheme to use.
    challenge = ("WWW-Authenticate", f'Basic realm="{REALM}"')
    return _error(401, "invalid_client", description, challenge, NO_STORE)


def _insufficient_scope(scope: str) -> _Reply:
    # RFC 6750 section 3.1.
    value = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
    description = f"the token lacks the {scope!r} scope"
    return _error(403, "insufficient_scope", description, ("WWW-Authenticate", value))


def _basic_credentials(header: str) -> tuple[str, str] | None:
    """Client id and secret from an HTTP Basic header (RFC 6749 section 2.3.1).

    Both halves were form-urlencoded before being joined and base64-encoded
    (Appendix B), so each is decoded with `unquote_plus` after the split.
    """
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None

    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        return None
    return unquote_plus(client_id), unquote_plus(client_secret)


def _parse_form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
        pairs = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        message = "the body must be application/x-www-form-urlencoded UTF-8"
        raise InvalidInput(message) from None

    repeated = sorted(name for name, values in pairs.items() if len(values) > 1)
    if repeated:
        # RFC 6749 section 3.2: no parameter may be sent more than once.
        names = ", ".join(repeated)[:QUOTE_LIMIT]
        raise InvalidInput(f"repeated parameter: {names}")
    return {name: values[0] for name, values in pairs.items()}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except ValueError as error:
        raise InvalidInput(f"the body is not valid JSON: {error}") from None

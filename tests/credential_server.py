"""An API on 127.0.0.1 (port 0) that checks static credentials, for test_static_auth.py.

`CredentialServer` answers each path by the credential it checks:

- ``/basic/...``: HTTP Basic with `USERNAME` and `PASSWORD` (RFC 7617);
- ``/bearer/...``: ``Authorization: Bearer`` `TOKEN`;
- ``/key-header/...``: the header `KEY_NAME` holding `API_KEY`;
- ``/key-query/...``: the query parameter `KEY_NAME` holding `API_KEY`;
- ``/redirect?to=URL``: a 302 to ``URL``, checking nothing;
- anything else: 200, checking nothing.

A path it checks is answered 401 when the credential is missing or wrong.
Every answer is a JSON echo of what the request carried (path, headers),
and the ``Authorization`` and key headers are echoed in response headers
too, so that a verbose run has every chance to print them. Each request is
recorded, so that a test can tell what another origin received.

The secret values hold characters that each encoding writes differently.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "API_KEY",
    "KEY_NAME",
    "PASSWORD",
    "TOKEN",
    "USERNAME",
    "CredentialServer",
    "Seen",
]

HOST = "127.0.0.1"
USERNAME = "reporter"
PASSWORD = 'pw-Kq7/+ &="x9é'
TOKEN = "tok-Zr4.Wm8_Pq2~Lx6+/="
KEY_NAME = "X-Api-Key"
API_KEY = "key-Hv3/+Nc8=Tb"


@dataclass(frozen=True, slots=True)
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, list[str]]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends its thread after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        del format, args  # quiet: the tests read the records instead

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        seen = Seen(
            method=self.command,
            path=parts.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            query=parse_qs(parts.query, keep_blank_values=True),
        )
        with self.server.lock:
            self.server.seen.append(seen)

        if parts.path == "/redirect":
            self._reply(302, {"Location": seen.query["to"][0]}, {})
            return
        status = 200 if _authorized(seen) else 401
        echoed = {"path": self.path, "headers": seen.headers}
        extra = {
            "X-Echo-Authorization": seen.headers.get("authorization", ""),
            "X-Echo-Key": seen.headers.get(KEY_NAME.lower(), ""),
        }
        self._reply(status, extra, echoed)

    def _reply(self, status: int, headers: dict[str, str], document: Any) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            # Header values are latin-1 on the wire; keep the echo sendable.
            self.send_header(name, value.encode("utf-8").decode("latin-1"))
        self.end_headers()
        self.wfile.write(payload)


def _authorized(seen: Seen) -> bool:
    area = seen.path.strip("/").split("/", 1)[0]
    authorization = seen.headers.get("authorization", "")
    if area == "basic":
        return _basic(authorization) == (USERNAME, PASSWORD)
    if area == "bearer":
        return _same(authorization, f"Bearer {TOKEN}")
    if area == "key-header":
        return _same(seen.headers.get(KEY_NAME.lower(), ""), API_KEY)
    if area == "key-query":
        return seen.query.get(KEY_NAME) == [API_KEY]
    return True


def _basic(authorization: str) -> tuple[str, str] | None:
    scheme, _, credential = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credential, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__((HOST, 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[Seen] = []


class CredentialServer:
    """The server, started by the constructor and stopped by `close()`."""

    def __init__(self) -> None:
        self._server = _Server()
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"<CredentialServer {self.url}>"

    def __enter__(self) -> CredentialServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def seen(self) -> list[Seen]:
        """The requests received so far, in order."""
        with self._server.lock:
            return list(self._server.seen)

"""A plain HTTP API on 127.0.0.1 (port 0) that answers from a script.

For the retry and polling tests (test_retries.py): each path has a queue of
scripted `Reply` values, answered in order, then a default reply once the
queue is empty. The server counts the requests of each path. Typical use::

    with ScriptedServer() as server:
        server.script("/jobs/1", Reply.json(503, {}), Reply.json(503, {}))
        server.default("/jobs/1", Reply.json(200, {"state": "ready"}))
        ...
        assert server.count("/jobs/1") == 3

The token endpoint and protected API of the OAuth2 tests are in
tests/oauth_servers.py; `Reply` comes from there.
"""

from __future__ import annotations

import collections
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.oauth_servers import Reply

__all__ = ["ScriptedServer"]

HOST = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle keep-alive connection ends its thread after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests read the counters instead."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        reply = self.server.owner._next(self.path.split("?", 1)[0])
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, owner: ScriptedServer) -> None:
        self.owner = owner
        super().__init__((HOST, 0), _Handler)


class ScriptedServer:
    """Answers each path from its script, then with its default; counts requests.

    Started by the constructor, stopped by `close()` or leaving a ``with``
    block. A path with no script and no default answers 200 ``{"ok": true}``.

    Attributes:
        url: ``http://127.0.0.1:PORT``, the base of every path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, collections.deque[Reply]] = {}
        self._defaults: dict[str, Reply] = {}
        self._counts: collections.Counter[str] = collections.Counter()
        self._server = _Server(self)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"scripted-api-{self._server.server_port}",
        )
        self._thread.start()

    def __repr__(self) -> str:
        return f"<ScriptedServer {self.url}>"

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and join every thread."""
        self._server.shutdown()
        self._server.server_close()  # joins the handler threads
        self._thread.join(timeout=5)

    def script(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with `replies`, in order."""
        with self._lock:
            self._scripts.setdefault(path, collections.deque()).extend(replies)

    def default(self, path: str, reply: Reply) -> None:
        """Answer `path` with `reply` once its script is used up."""
        with self._lock:
            self._defaults[path] = reply

    def count(self, path: str) -> int:
        """How many requests `path` has had."""
        with self._lock:
            return self._counts[path]

    def _next(self, path: str) -> Reply:
        with self._lock:
            self._counts[path] += 1
            queue = self._scripts.get(path)
            if queue:
                return queue.popleft()
            return self._defaults.get(path) or Reply.json(200, {"ok": True})

"""`runner.sending.ConnectionSession`: how response bodies are read.

Against a small server on 127.0.0.1; the end-to-end runs are in
`test_run_command.py`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from runner.connections import HttpConnection
from runner.secrets import Redactor
from runner.sending import ConnectionSession

# Path to (content type, body bytes) served there.
BODIES: dict[str, tuple[str | None, bytes]] = {
    "/utf8": ("application/json", '{"name": "Zoë"}'.encode()),
    "/bad-bytes": ("text/plain", b"ok \xff\xfe end"),
    "/latin1": ("text/plain; charset=ISO-8859-1", "café".encode("latin-1")),
    "/upper-charset": ("text/plain; Charset=UTF-8", "naïve".encode()),
    "/no-type": (None, "plain ✓".encode()),
    "/empty": ("text/plain", b""),
}


class _Bodies(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        content_type, body = BODIES[self.path]
        self.send_response(200)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def session() -> Iterator[ConnectionSession]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Bodies)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    connection = HttpConnection.model_validate({"url": url})
    session = ConnectionSession(connection, Redactor(), name="bodies", pool_size=1)
    try:
        yield session
    finally:
        session.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize("path", sorted(BODIES))
def test_send_body_text_is_decoded_as_httpx_decodes_it(
    session: ConnectionSession, path: str
) -> None:
    url = session.base_url + path
    sent = session.send(
        method="GET",
        url=url,
        headers={},
        params={},
        body=None,
        timeout=5,
        follow_redirects=False,
    )
    with httpx.Client() as client:
        expected = client.get(url, timeout=5).text

    assert sent.text == expected


def test_send_latin1_body_is_decoded_with_its_charset(
    session: ConnectionSession,
) -> None:
    sent = session.send(
        method="GET",
        url=session.base_url + "/latin1",
        headers={},
        params={},
        body=None,
        timeout=5,
        follow_redirects=False,
    )

    assert sent.text == "café"
    assert sent.content_type == "text/plain; charset=ISO-8859-1"

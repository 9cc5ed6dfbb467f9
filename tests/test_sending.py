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

from runner.connections import HttpConnection, OAuth2Connection
from runner.secrets import Redactor
from runner.sending import ConnectionSession
from tests.oauth_servers import FixtureServer

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


def test_oauth2_token_does_not_follow_an_http_to_https_redirect() -> None:
    """httpx keeps Authorization on that hop; another scheme is another origin.

    Tokens come from a real fixture server on 127.0.0.1; the API is a
    `MockTransport` (no socket): httpx keeps the header only between the
    default ports of one host, which no test server here listens on.
    """
    with FixtureServer() as server:
        seen: list[tuple[str, str | None]] = []

        def api(request: httpx.Request) -> httpx.Response:
            seen.append((request.url.scheme, request.headers.get("Authorization")))
            if request.url.scheme == "http":
                target = str(request.url.copy_with(scheme="https", path="/landed"))
                return httpx.Response(302, headers={"Location": target})
            return httpx.Response(200, json={"ok": True})

        connection = OAuth2Connection.model_validate(
            {
                "url": "http://api.example.test/api",
                "token_url": server.token_url,
                "client_id": server.client_id,
                "client_secret": server.client_secret,
            }
        )
        session = ConnectionSession(
            connection,
            Redactor(),
            name="api",
            pool_size=1,
            transport=httpx.MockTransport(api),
        )
        try:
            sent = session.send(
                method="GET",
                url="http://api.example.test/api/start",
                headers={},
                params={},
                body=None,
                timeout=None,
                follow_redirects=True,
            )
        finally:
            session.close()

    assert sent.status == 200
    assert seen == [("http", f"Bearer {server.issued[0]}"), ("https", None)]

"""`DemoServer`: the demo API on a free loopback port, in a background thread.

`runner demo` runs the example suites against it, and tests use it as a real
OAuth2-protected counterpart. Standard library only, so that the demo works
offline on a fresh install. What it answers is described in
`runner.demo.handler`; what it remembers, in `runner.demo.store`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from runner.demo.handler import API_PATH, HOST, TOKEN_PATH, DemoHTTPServer
from runner.demo.store import BILLING_CLIENT, CRM_CLIENT, DemoStore

__all__ = ["DemoServer"]

# How long `close` waits for the serving thread.
CLOSE_TIMEOUT_SECONDS = 5.0
# How often the serving loop checks for a shutdown request; `close` takes
# at most this long to be noticed.
POLL_INTERVAL_SECONDS = 0.05


class DemoServer:
    """The demo API on a free port of 127.0.0.1, served by a daemon thread.

    Use it as a context manager::

        with DemoServer(token_lifetime=2.0) as server:
            ...  # server.api_url, server.token_url, server.client_id, ...

    Tokens expire on the server after `token_lifetime` seconds, so a run that
    lasts longer shows the runner renewing its token.

    Args:
        token_lifetime: Seconds an access token stays valid (``expires_in``).
        clock: Monotonic seconds, for token expiry; tests may pass their own.

    Attributes:
        client_id: The billing client, allowed the ``invoices`` and
            ``customers`` scopes.
        client_secret: Its secret (a public demo value).
        crm_client_id: A second client, allowed only the ``customers`` scope.
        crm_client_secret: Its secret (a public demo value).
    """

    def __init__(
        self,
        *,
        token_lifetime: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(token_lifetime) and token_lifetime > 0):
            message = (
                f"token_lifetime must be a positive number, not {token_lifetime!r}"
            )
            raise ValueError(message)

        self.token_lifetime = float(token_lifetime)
        self.client_id = BILLING_CLIENT.client_id
        self.client_secret = BILLING_CLIENT.client_secret
        self.crm_client_id = CRM_CLIENT.client_id
        self.crm_client_secret = CRM_CLIENT.client_secret
        clients = (BILLING_CLIENT, CRM_CLIENT)
        self._store = DemoStore(clients, self.token_lifetime, clock)
        self._server: DemoHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"<DemoServer {where}>"

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> Self:
        """Bind a free loopback port and serve it from a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the demo server is already started")

        server = DemoHTTPServer(self._store)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_SECONDS},
            name=f"runner-demo-{server.server_port}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def close(self) -> None:
        """Stop serving, free the port and end open connections; idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None

        server.shutdown()
        server.server_close()
        server.close_connections()
        thread.join(CLOSE_TIMEOUT_SECONDS)

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._server is None:
            raise RuntimeError("the demo server is not started")
        return self._server.server_port

    @property
    def url(self) -> str:
        """The server's origin, such as ``http://127.0.0.1:8123``."""
        return f"http://{HOST}:{self.port}"

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint."""
        return self.url + TOKEN_PATH

    @property
    def api_url(self) -> str:
        """The base of the protected API; relative request URLs go under it."""
        return self.url + API_PATH

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint has issued so far."""
        return self._store.tokens_issued

    def revoke_tokens(self) -> None:
        """Forget every issued token: the API answers 401 until a new one is used."""
        self._store.revoke_tokens()

    def environment(self) -> dict[str, str]:
        """The client secrets, which the example connection files read from ``env``."""
        return {
            "RUNNER_DEMO_CLIENT_SECRET": self.client_secret,
            "RUNNER_DEMO_CRM_CLIENT_SECRET": self.crm_client_secret,
        }

    def variables(self) -> dict[str, str]:
        """The ``--var`` values the example connection files use: nothing secret."""
        return {
            "demo_api_url": self.api_url,
            "demo_token_url": self.token_url,
            "demo_client_id": self.client_id,
            "demo_crm_client_id": self.crm_client_id,
        }

"""What the pytest plugin keeps for one pytest session (per xdist worker).

A `PluginSession` is made in ``pytest_configure`` when the plugin is
enabled, kept in the config's stash (never in a module or class attribute,
so in-process pytest runs do not share it) and closed when the session
ends. It holds what ``runner run`` holds for a run: one `Redactor`, one
`Templates`, and one `ConnectionSession` per connection, opened when its
first request is sent and shared by every suite file of the session, so a
connection fetches one token for the whole session. Under pytest-xdist each
worker process has its own, and so its own tokens.

With the demo option it also starts the embedded demo API, on first use:
the xdist controller collects nothing and so starts no server.

What the user is told at the end (warnings, tokens) is a `Tally`: under
xdist each worker sends its own to the controller, which adds them up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.exchange import RequestSender
from runner.loading import LoadedConnection, LoadedSuite, load_paths
from runner.preflight import tls_warnings, unsafe_token_urls
from runner.secrets import Redactor, masked_logs
from runner.sending import ConnectionSession
from runner.stopping import RunStop
from runner.templates import Templates

if TYPE_CHECKING:
    from runner.token_cache import TokenCache

__all__ = ["LoadedFile", "PluginSession", "Tally"]


@dataclass(frozen=True, slots=True)
class LoadedFile:
    """A suite file as the plugin collects it.

    Attributes:
        suite: The suite, or None when the file is invalid.
        errors: Every error found, rendered and masked
            (``path:line:column: message``).
    """

    suite: LoadedSuite | None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tally:
    """What a session tells the user at its end, added up over xdist workers.

    Attributes:
        warnings: The runner's warnings, masked, each once.
        connections: The keys of the connections that sent requests.
        tokens_fetched: Tokens the token endpoints issued.
        token_requests: Token requests sent, retries and refusals included.
        tokens_from_cache: Tokens read from the token cache instead.
        workers: The xdist workers added up; 0 without xdist.
    """

    warnings: tuple[str, ...] = ()
    connections: frozenset[str] = frozenset()
    tokens_fetched: int = 0
    token_requests: int = 0
    tokens_from_cache: int = 0
    workers: int = 0

    @classmethod
    def total(cls, tallies: Iterable[Tally]) -> Tally:
        """The sum of `tallies`: warnings in order, each once; connections once."""
        warnings: dict[str, None] = {}
        connections: set[str] = set()
        fetched = requests = cached = workers = 0
        for tally in tallies:
            warnings.update(dict.fromkeys(tally.warnings))
            connections |= tally.connections
            fetched += tally.tokens_fetched
            requests += tally.token_requests
            cached += tally.tokens_from_cache
            workers += tally.workers
        return cls(
            tuple(warnings), frozenset(connections), fetched, requests, cached, workers
        )

    def to_wire(self) -> dict[str, Any]:
        """Plain values that xdist can send (``config.workeroutput``)."""
        return {
            "warnings": list(self.warnings),
            "connections": sorted(self.connections),
            "tokens_fetched": self.tokens_fetched,
            "token_requests": self.token_requests,
            "tokens_from_cache": self.tokens_from_cache,
        }

    @classmethod
    def from_wire(cls, data: object) -> Tally | None:
        """A worker's tally from `to_wire`'s values; None if they are not that."""
        if not isinstance(data, dict):
            return None
        warnings, connections = data.get("warnings"), data.get("connections")
        if not isinstance(warnings, list) or not isinstance(connections, list):
            return None
        if not all(isinstance(text, str) for text in [*warnings, *connections]):
            return None
        counts: list[int] = []
        for name in ("tokens_fetched", "token_requests", "tokens_from_cache"):
            count = data.get(name)
            if not isinstance(count, int) or isinstance(count, bool):
                return None
            counts.append(count)
        fetched, requests, cached = counts
        return cls(
            tuple(warnings), frozenset(connections), fetched, requests, cached, 1
        )


class PluginSession:
    """The runner's state for one pytest session.

    Args:
        env: What templates see as ``env`` (every value read is a secret).
        variables: ``--runner-var`` values, over every suite's ``vars``.
        demo: Start the demo API on first use and hand its addresses and
            client secrets to the suites, as ``runner demo`` does.
        token_cache: Keep tokens on disk between sessions (the cache of
            ``runner run --token-cache``); each xdist worker shares it too.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        variables: Mapping[str, str],
        demo: bool = False,
        token_cache: bool = False,
    ) -> None:
        self.redactor = Redactor()
        self.stop = RunStop()
        self.warnings: list[str] = []
        self.markers: set[str] = set()  # tags registered as pytest markers
        self._env = dict(env)
        self._variables = dict(variables)
        self._demo = demo
        self._use_token_cache = token_cache
        self._token_cache: TokenCache | None = None
        self._templates: Templates | None = None
        self._sessions: dict[str, ConnectionSession] = {}
        self._sender: RequestSender | None = None
        self._resources = contextlib.ExitStack()
        self._closed = False

    def __repr__(self) -> str:
        return f"<PluginSession of {len(self._sessions)} connections>"

    @property
    def tokens_fetched(self) -> int:
        """Tokens issued to the connections of this session so far."""
        return sum(session.tokens_fetched for session in self._sessions.values())

    @property
    def connections_used(self) -> int:
        """Connections that sent at least one request."""
        return len(self._sessions)

    def tally(self) -> Tally:
        """What this session tells the user at its end, masked."""
        sessions = self._sessions.values()
        return Tally(
            warnings=tuple(self.redactor.redact(text) for text in self.warnings),
            connections=frozenset(self._sessions),
            tokens_fetched=sum(session.tokens_fetched for session in sessions),
            token_requests=sum(session.token_requests for session in sessions),
            tokens_from_cache=sum(session.tokens_from_cache for session in sessions),
        )

    def load(self, path: Path) -> LoadedFile:
        """Load and check the suite file at `path`, as ``runner run`` would."""
        templates = self._start()
        loaded = load_paths(
            [path],
            env=self._env,
            variables=self._variables,
            redactor=self.redactor,
            templates=templates,
            for_run=True,
        )
        errors = list(loaded.errors)
        errors += unsafe_token_urls(loaded.connections.values())
        if errors or not loaded.suites:
            rendered = tuple(self.redactor.redact(error.render()) for error in errors)
            return LoadedFile(None, rendered)

        for warning in tls_warnings(loaded.connections.values()):
            if warning not in self.warnings:
                self.warnings.append(warning)
        return LoadedFile(loaded.suites[0])

    def sender(self, connection: LoadedConnection) -> RequestSender:
        """The sender for a request through `connection`, its session opened."""
        if self._closed:
            raise RuntimeError("the runner's pytest session is closed")
        if connection.key not in self._sessions:
            # The first suite file to use a connection opens it; later
            # files loaded the same file with the same env and vars.
            session = ConnectionSession(
                connection.model,
                self.redactor,
                name=connection.name,
                pool_size=1,
                token_cache=self._token_cache,
                stop=self.stop,
            )
            self._resources.callback(session.close)
            self._sessions[connection.key] = session
        if self._sender is None:
            self._sender = RequestSender(self._sessions, self._start(), self.stop)
        return self._sender

    def close(self) -> None:
        """Close every connection, stop the demo API, end log masking; idempotent."""
        self._closed = True
        self.stop.stop("pytest session ended")
        self._resources.close()

    def _start(self) -> Templates:
        if self._templates is not None:
            return self._templates

        # The logs of the session's requests are a sink like the others.
        self._resources.enter_context(masked_logs(self.redactor))
        if self._demo:
            self._start_demo()
        if self._use_token_cache:
            # Imported here: a session without the cache does not pay for it.
            from runner.token_cache import TokenCache

            self._token_cache = TokenCache.open(
                environ=self._env, warn=self.warnings.append
            )
        self._templates = Templates(self._env, self.redactor)
        return self._templates

    def _start_demo(self) -> None:
        # Imported here: only the demo option pays for the server.
        from runner.demo import DEMO_TOKEN_LIFETIME
        from runner.demo.server import DemoServer

        server = self._resources.enter_context(
            DemoServer(token_lifetime=DEMO_TOKEN_LIFETIME)
        )
        # As `runner demo` does: addresses and client ids as vars (the
        # user's --runner-var win), the client secrets through env.
        self._env.update(server.environment())
        self._variables = {**server.variables(), **self._variables}

"""``-v`` and ``-vv``: a masked block for every send, token requests at ``-vv``.

The blocks' format is tested on `runner.trace.Tracer` with an httpx
`MockTransport`; whole runs over real sockets (the 401 resend, token
requests, blocks that stay whole under concurrency) through
`runner.cli.main`. What the blocks must never show across every outcome is
in test_masking.py.
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runner.cli import main
from runner.secrets import Redactor
from runner.trace import BODY_LIMIT, Tracer
from tests.oauth_servers import FixtureServer

SECRET_ENV = "RUNNER_TRACE_CLIENT_SECRET"


def _traced(handler: httpx.MockTransport, redactor: Redactor) -> list[str]:
    """Send one POST through a traced client; the blocks it wrote."""
    blocks: list[str] = []
    tracer = Tracer(blocks.append, redactor, tokens=False)
    with httpx.Client(transport=handler, event_hooks=tracer.event_hooks("api")) as c:
        c.post(
            "http://api.test/items?key=k-secret-1",
            json={"secret": "k-secret-1", "name": "x"},
            headers={"Authorization": "Bearer abc", "Cookie": "c=1", "X-Id": "7"},
        )
    return blocks


def test_block_shows_request_and_response_with_sensitive_headers_masked() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            201, json={"id": 1}, headers={"Set-Cookie": "s=2", "X-Trace": "t"}
        )

    [block] = _traced(httpx.MockTransport(answer), Redactor(["k-secret-1"]))

    lines = block.splitlines()
    assert lines[0] == "* connection 'api': request"
    assert lines[1] == "> POST http://api.test/items?key=***"
    assert "> authorization: ***" in lines
    assert "> cookie: ***" in lines
    assert "> x-id: 7" in lines
    assert '> {"secret":"***","name":"x"}' in lines
    # No time here: a mock response is read before the client times it.
    assert re.search(r"^< 201 Created( \(\d+ ms\))?$", block, re.MULTILINE)
    assert "< set-cookie: ***" in lines and "< x-trace: t" in lines
    assert lines[-1] == '< {"id":1}'


def test_long_body_is_cut_with_a_note_of_how_much() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="a" * (BODY_LIMIT + 500))

    [block] = _traced(httpx.MockTransport(answer), Redactor())

    assert f"< {'a' * BODY_LIMIT}\n" in block
    assert block.endswith("< [... 500 more characters not shown]")


def test_binary_body_is_shown_as_its_size() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        content = bytes(range(256)) * 4
        return httpx.Response(
            200, content=content, headers={"Content-Type": "image/png"}
        )

    [block] = _traced(httpx.MockTransport(answer), Redactor())

    assert block.endswith("< [binary body, 1024 bytes]")


def test_token_request_form_masks_secret_fields_even_short_ones() -> None:
    blocks: list[str] = []
    tracer = Tracer(blocks.append, Redactor(), tokens=True)
    request = httpx.Request(
        "POST",
        "http://auth.test/token",
        data={"grant_type": "client_credentials", "client_secret": "abc"},
    )
    response = httpx.Response(400, json={"error": "invalid_client"}, request=request)

    tracer.exchange(response, title="token request", body=response.content)

    assert "> grant_type=client_credentials&client_secret=***" in blocks[0]


# Whole runs ---------------------------------------------------------------


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    with FixtureServer() as fixture:
        monkeypatch.setenv(SECRET_ENV, fixture.client_secret)
        yield fixture


def _suite(folder: Path, server: FixtureServer, requests: int = 1) -> Path:
    (folder / "connection.yaml").write_text(
        textwrap.dedent(
            f"""\
            url: {server.api_url}
            token_url: {server.token_url}
            client_id: {server.client_id}
            client_secret: "{{{{ env.{SECRET_ENV} }}}}"
            """
        ),
        encoding="utf-8",
    )
    items = "".join(f"  - {{name: r{n}, url: items/{n}}}\n" for n in range(requests))
    suite = folder / "suite.yaml"
    suite.write_text(
        f"name: s\nconnection: connection.yaml\nrequests:\n{items}", encoding="utf-8"
    )
    return suite


def _run(*args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    return status, out.getvalue() + err.getvalue()


def test_verbose_run_shows_the_resend_after_a_401(
    server: FixtureServer, tmp_path: Path
) -> None:
    server.revoke_after_api_requests = 1  # the first token dies on first use

    status, out = _run("-v", str(_suite(tmp_path, server)))

    assert status == 0, out
    first, second = out.split("* connection 'connection': request")[1:]
    assert "< 401 Unauthorized" in first
    assert second.startswith(", sent again (send 2)")
    assert "< 200 OK" in second
    assert "token request" not in out  # -v leaves the token requests out
    assert server.client_secret not in out
    assert not any(token in out for token in server.issued)


def test_very_verbose_run_shows_token_requests_masked(
    server: FixtureServer, tmp_path: Path
) -> None:
    status, out = _run("-vv", str(_suite(tmp_path, server)))

    assert status == 0, out
    token_block = out.split("* connection 'connection': token request")[1]
    assert f"> POST {server.token_url}" in token_block
    assert "> authorization: ***" in token_block
    assert "> grant_type=client_credentials" in token_block
    assert '"access_token":"***"' in token_block.replace(" ", "")
    assert server.client_secret not in out
    assert not any(token in out for token in server.issued)


def test_blocks_of_concurrent_suites_do_not_interleave(
    server: FixtureServer, tmp_path: Path
) -> None:
    suites = []
    for index in range(4):
        folder = tmp_path / f"s{index}"
        folder.mkdir()
        suites.append(str(_suite(folder, server, requests=5)))

    status, out = _run("-v", "--concurrency", "4", *suites)

    assert status == 0, out
    blocks = out.split("* connection ")[1:]
    assert len(blocks) == 20
    for block in blocks:
        lines = block.splitlines()[1:]
        # Each block: its request lines, then its response lines, then the
        # PASS line of some request (and the summary after the last one).
        traced = [line[:1] in ("<", ">") for line in lines]
        end = traced.index(False)
        assert all(traced[:end]) and not any(traced[end:]), block
        assert lines[end].startswith("PASS  s > r"), block
        kinds = [line[0] for line in lines[:end]]
        assert kinds == sorted(kinds, key=">".__ne__), block

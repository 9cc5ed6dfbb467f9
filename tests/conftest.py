"""Fixtures shared by the test modules.

`watch` is the secret watch of tests/oauth_servers.py: it starts fixture
servers and, when the test ends, searches everything the test printed or
logged for every secret and token they handed out.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.oauth_servers import SecretWatch


@pytest.fixture
def watch(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[SecretWatch]:
    with SecretWatch(caplog, capsys) as secret_watch:
        yield secret_watch

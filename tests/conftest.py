"""Fixtures shared by the test modules.

`watch` is the secret watch of tests/oauth_servers.py: it starts fixture
servers and, when the test ends, searches everything the test printed or
logged for every secret and token they handed out. `changed_model` edits a
model for the drift tests of the generated files (schemas, reference).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.connections import OAuth2Connection
from tests.oauth_servers import SecretWatch


@pytest.fixture
def watch(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> Iterator[SecretWatch]:
    with SecretWatch(caplog, capsys) as secret_watch:
        yield secret_watch


@pytest.fixture
def changed_model() -> Iterator[None]:
    """`client_id` with another description, as a model edit would leave it."""
    field = OAuth2Connection.model_fields["client_id"]
    original = field.description
    field.description = "Changed by a test."
    OAuth2Connection.model_rebuild(force=True)
    try:
        yield
    finally:
        field.description = original
        OAuth2Connection.model_rebuild(force=True)

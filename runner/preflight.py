"""What a run checks of its connections once they load, before sending anything.

`runner run`, `runner check` and the pytest plugin load files the same way,
then all refuse a token URL that would carry a client secret in the clear;
`run` and the plugin also warn of a connection that does not check TLS
certificates. Nothing here imports httpx: `check` must stay light.
"""

from __future__ import annotations

from collections.abc import Iterable

from runner.client_auth import check_token_url
from runner.connections import OAuth2Connection
from runner.errors import InputError
from runner.loading import LoadedConnection

__all__ = ["tls_warnings", "unsafe_token_urls"]


def unsafe_token_urls(connections: Iterable[LoadedConnection]) -> list[InputError]:
    """An error for each OAuth2 ``token_url`` over plain http off loopback."""
    return [
        InputError(problem, connection.location)
        for connection in connections
        if isinstance(connection.model, OAuth2Connection)
        and (problem := check_token_url(connection.model)) is not None
    ]


def tls_warnings(connections: Iterable[LoadedConnection]) -> list[str]:
    """A warning (without its ``warning:`` prefix) per ``verify_ssl: false``."""
    warnings = []
    for connection in connections:
        if connection.model.verify_ssl:
            continue
        warning = f"{connection.name}: verify_ssl is false; TLS certificates are "
        if isinstance(connection.model, OAuth2Connection):
            warning += "not checked, the token endpoint's included"
        else:
            warning += "not checked"
        warnings.append(warning)
    return warnings

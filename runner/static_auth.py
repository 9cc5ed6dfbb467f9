"""Static credentials on the wire: HTTP Basic, a bearer token, an API key.

`StaticAuth` is the ``httpx.Auth`` of the ``basic``, ``bearer`` and
``api_key`` connections. It adds the connection's `Credential` (a header, or
a query parameter) to each request whose origin is the origin of the
connection's ``url``, as `runner.tokens.BearerAuth` does with OAuth2 tokens,
and leaves alone a request that already carries that header or parameter.

httpx follows redirects below the auth flow, so a redirect never comes back
here; it drops ``Authorization`` on a redirect to another host, but keeps
other headers, and keeps ``Authorization`` on an http-to-https upgrade of
the same host. `StaticAuth.drop_off_origin` is a request hook that sees
every hop and removes the credential from any hop to another origin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from runner.connections import Credential
from runner.origins import origin

__all__ = ["StaticAuth"]


class StaticAuth(httpx.Auth):
    """Adds a static credential to the requests sent to one origin.

    Args:
        credential: What to add: a header or a query parameter.
        api_url: The connection's ``url``: its origin receives the credential.
    """

    def __init__(self, credential: Credential, api_url: str | httpx.URL) -> None:
        self._credential = credential
        self._origin = origin(httpx.URL(str(api_url)))

    def __repr__(self) -> str:
        scheme, host, port = self._origin
        what = f"{self._credential.place} {self._credential.name!r}"
        return f"<StaticAuth {what} for {scheme}://{host}:{port}>"

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Send `request`, with the credential when it goes to the origin."""
        if origin(request.url) == self._origin:
            self._add(request)
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Same as `sync_auth_flow`: nothing here blocks."""
        if origin(request.url) == self._origin:
            self._add(request)
        yield request

    def drop_off_origin(self, request: httpx.Request) -> None:
        """Remove the credential from a send to another origin (a request hook).

        Only the credential's own value is removed: a header of the same
        name that a request sets to another value is the request's own.
        """
        if origin(request.url) == self._origin:
            return
        credential = self._credential
        if credential.place == "header":
            if request.headers.get(credential.name) == credential.value:
                del request.headers[credential.name]
            return
        params = request.url.params
        if credential.value in params.get_list(credential.name):
            kept = [
                (name, value)
                for name, value in params.multi_items()
                if not (name == credential.name and value == credential.value)
            ]
            request.url = request.url.copy_with(params=kept)

    def _add(self, request: httpx.Request) -> None:
        credential = self._credential
        if credential.place == "header":
            if credential.name not in request.headers:
                request.headers[credential.name] = credential.value
            return
        if credential.name not in request.url.params:
            request.url = request.url.copy_add_param(credential.name, credential.value)

"""Origins (RFC 6454): the one test of where a credential may be sent.

Every credential a connection holds, an OAuth2 token or a static one, goes
only to the origin of the connection's ``url``. `origin` is what both
`runner.tokens.BearerAuth` and `runner.static_auth.StaticAuth` compare.
"""

from __future__ import annotations

import httpx

__all__ = ["Origin", "origin"]

Origin = tuple[str, str, int]


def origin(url: httpx.URL) -> Origin:
    """The origin of `url` as RFC 6454 compares it, default port filled in."""
    scheme = url.scheme.lower()
    port = url.port
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, url.raw_host.decode("ascii").lower(), port

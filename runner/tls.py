"""One TLS context per process for every client of a run.

Building a verifying context reads the whole CA bundle, about 17 ms each on
this project's machines; an OAuth2 connection has two clients (the API's
and the token endpoint's), and a run may have several connections. The
contexts hold no per-connection state, and an `ssl.SSLContext` may be shared
by many connections and threads, so each kind is built once, on first use.
"""

from __future__ import annotations

import ssl
import threading

import httpx

__all__ = ["shared_ssl_context"]

_lock = threading.Lock()
_contexts: dict[bool, ssl.SSLContext] = {}


def shared_ssl_context(verify: bool) -> ssl.SSLContext:
    """The process's context that checks certificates (`verify`) or does not.

    It is exactly what httpx would build for ``verify=True`` or ``False``
    (certifi's bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set).
    """
    with _lock:
        context = _contexts.get(verify)
        if context is None:
            context = _contexts[verify] = httpx.create_ssl_context(verify=verify)
        return context

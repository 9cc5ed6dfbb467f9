"""One TLS context per process for every client of a run.

Building a verifying context reads the whole CA bundle, about 20 ms on this
project's machines; an OAuth2 connection has two clients (the API's and the
token endpoint's), and a run may have several connections. The contexts
hold no per-connection state, and an `ssl.SSLContext` may be shared by many
connections and threads, so each kind is built once, on first use.

The verifying context goes one step further and reads its CA certificates
only before its first TLS handshake: a run that speaks plain http alone (a
local API, ``runner demo``) never pays for them.
"""

from __future__ import annotations

import os
import ssl
import sys
import threading
from typing import Any

__all__ = ["shared_ssl_context"]

_lock = threading.Lock()
_contexts: dict[bool, ssl.SSLContext] = {}


def shared_ssl_context(verify: bool) -> ssl.SSLContext:
    """The process's context that checks certificates (`verify`) or does not.

    It is what httpx builds for ``verify=True`` or ``False``: certifi's
    bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR`` when set, with Python's
    default client settings (`ssl.create_default_context`).
    """
    with _lock:
        context = _contexts.get(verify)
        if context is None:
            context = _verifying_context() if verify else _non_verifying_context()
            _contexts[verify] = context
        return context


def _non_verifying_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _verifying_context() -> ssl.SSLContext:
    # The settings of `ssl.create_default_context` for a client, whose only
    # costly step, loading the certificates, `_DeferredTrust` postpones.
    context = _DeferredTrust(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    keylog_file = os.environ.get("SSLKEYLOGFILE")
    if keylog_file and not sys.flags.ignore_environment:
        context.keylog_filename = keylog_file
    return context


class _DeferredTrust(ssl.SSLContext):
    """A client context that loads its CA certificates when first needed.

    Which certificates is decided as httpx decides (``SSL_CERT_FILE``, else
    ``SSL_CERT_DIR``, else certifi's bundle, which httpx depends on), when
    the context is made. They are loaded once, under a lock, before the first
    handshake (`wrap_socket`, `wrap_bio`) or the first look at the store.
    A bundle that cannot be read then fails that handshake, which httpx
    reports as a connection error of the request.
    """

    _trust_lock: threading.Lock
    _trust_source: tuple[str | None, str | None] | None

    def __init__(self, protocol: int) -> None:
        super().__init__()
        self._trust_lock = threading.Lock()
        self._trust_source = _trust_source()

    def _load_trust(self) -> None:
        if self._trust_source is None:
            return
        with self._trust_lock:
            source = self._trust_source
            if source is not None:
                cafile, capath = source
                self.load_verify_locations(cafile=cafile, capath=capath)
                self._trust_source = None

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)

    def cert_store_stats(self) -> dict[str, int]:
        self._load_trust()
        return super().cert_store_stats()

    def get_ca_certs(self, binary_form: bool = False) -> Any:
        self._load_trust()
        return super().get_ca_certs(binary_form)


def _trust_source() -> tuple[str | None, str | None]:
    """The CA file or folder that httpx would load (`httpx.create_ssl_context`)."""
    cafile = os.environ.get("SSL_CERT_FILE")
    if cafile:
        return cafile, None
    capath = os.environ.get("SSL_CERT_DIR")
    if capath:
        return None, capath
    import certifi  # httpx's own dependency; its bundle is httpx's default

    return certifi.where(), None

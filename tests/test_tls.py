"""The shared TLS contexts (`runner.tls`)."""

from __future__ import annotations

import ssl

from runner.tls import shared_ssl_context


def test_verifying_context_checks_certificates_and_host_names() -> None:
    context = shared_ssl_context(True)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] > 0


def test_non_verifying_context_checks_nothing() -> None:
    context = shared_ssl_context(False)
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname


def test_each_kind_is_built_once_and_shared() -> None:
    assert shared_ssl_context(True) is shared_ssl_context(True)
    assert shared_ssl_context(False) is shared_ssl_context(False)
    assert shared_ssl_context(True) is not shared_ssl_context(False)

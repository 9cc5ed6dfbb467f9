"""The shared TLS contexts (`runner.tls`), against an HTTPS server on 127.0.0.1."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.tls import _verifying_context, shared_ssl_context


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


def test_verifying_context_defers_the_ca_bundle_until_first_needed() -> None:
    context = _verifying_context()

    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    # Settings are those of httpx's own context from the start ...
    reference = httpx.create_ssl_context(verify=True)
    for name in ("options", "verify_flags", "minimum_version", "maximum_version"):
        assert getattr(context, name) == getattr(reference, name), name
    # ... and its store is too, once looked at.
    assert context.cert_store_stats() == reference.cert_store_stats()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello over tls"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 with a fresh self-signed certificate.

    Yields its URL and the certificate's file, a CA bundle trusting it alone.
    """
    cert_file, key_file = _self_signed_certificate(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/", cert_file
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_deferred_bundle_is_loaded_before_the_first_handshake(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
    context = _verifying_context()

    with httpx.Client(verify=context, timeout=5) as client:
        response = client.get(url)

    assert response.text == "hello over tls"
    assert context.cert_store_stats()["x509_ca"] == 1


def test_deferred_context_still_refuses_an_untrusted_certificate(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    context = _verifying_context()

    with (
        httpx.Client(verify=context, timeout=5) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(url)


def test_unreadable_bundle_fails_the_request_not_the_client(
    tls_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url, _ = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    context = _verifying_context()

    with (
        httpx.Client(verify=context, timeout=5) as client,
        pytest.raises(httpx.ConnectError),
    ):
        client.get(url)


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for the IP address 127.0.0.1, valid for a day."""
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runner test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file

"""How a client proves who it is to the token endpoint (RFC 6749 section 2.3).

Two pieces the token manager needs and the loader may use on its own:

- `check_token_url` refuses a token endpoint the client secret must not be
  sent to (plain http off the loopback host, credentials in the URL);
- `client_authentication` builds the headers and form fields of the chosen
  ``auth_method``; `basic_credential` is the HTTP Basic credential alone.

Nothing here sends anything, so the module imports no HTTP library.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field
from urllib.parse import quote_plus

from runner.connections import OAuth2Connection
from runner.secrets import Redactor

__all__ = [
    "ClientAuthentication",
    "basic_credential",
    "check_token_url",
    "client_authentication",
    "is_loopback_host",
]


@dataclass(frozen=True, slots=True)
class ClientAuthentication:
    """What a token request carries to authenticate the client.

    Attributes:
        headers: Headers to send (an ``Authorization: Basic`` one, or none).
        form: Form fields to add to the body (``client_id`` and
            ``client_secret`` for ``client_secret_post``, else none).
    """

    headers: dict[str, str] = field(default_factory=dict, repr=False)
    form: dict[str, str] = field(default_factory=dict, repr=False)


def basic_credential(client_id: str, client_secret: str, *, encode: bool = True) -> str:
    """The base64 credential of HTTP Basic for the client (no ``Basic`` prefix).

    With `encode` (``client_secret_basic``), the id and the secret are each
    form-urlencoded first, as RFC 6749 section 2.3.1 asks by way of
    Appendix B: UTF-8, then ``application/x-www-form-urlencoded``, where a
    space becomes ``+``. Without it (``client_secret_raw``), they are joined
    as they are, for the providers that expect that (RFC 7617).
    """
    if encode:
        client_id = quote_plus(client_id, safe="")
        client_secret = quote_plus(client_secret, safe="")
    joined = f"{client_id}:{client_secret}".encode()
    return base64.b64encode(joined).decode("ascii")


def client_authentication(connection: OAuth2Connection) -> ClientAuthentication:
    """The headers and form fields that authenticate the connection's client."""
    secret = connection.client_secret.get_secret_value()

    if connection.auth_method == "client_secret_post":
        # RFC 6749 section 2.3.1: both credentials in the request body.
        return ClientAuthentication(
            form={"client_id": connection.client_id, "client_secret": secret}
        )

    encode = connection.auth_method == "client_secret_basic"
    credential = basic_credential(connection.client_id, secret, encode=encode)
    return ClientAuthentication(headers={"Authorization": f"Basic {credential}"})


def register_client_secrets(connection: OAuth2Connection, redactor: Redactor) -> None:
    """Tell `redactor` every form in which the client secret may travel."""
    secret = connection.client_secret.get_secret_value()
    redactor.add(secret)
    # Both Basic forms (raw and Appendix B) and their base64 credential.
    redactor.add_basic_credential(connection.client_id, secret)


def is_loopback_host(host: str) -> bool:
    """Whether `host` names this machine: ``localhost``, 127.0.0.0/8 or ``::1``."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_loopback


def check_token_url(connection: OAuth2Connection) -> str | None:
    """Why the client secret must not be sent to ``token_url``, or None if it may.

    Plain http is refused unless the host is a loopback address (SPEC,
    "OAuth2 behaviour"; RFC 6749 section 2.3.1 requires TLS for client
    passwords). A URL holding a user name or password is refused too: the
    client authenticates with ``client_id`` and ``client_secret`` only.
    """
    url = connection.token_url
    host = url.host or ""

    if url.username or url.password:
        return (
            "token_url must not hold a user name or password; "
            "use client_id and client_secret"
        )
    if url.scheme == "http" and not is_loopback_host(host):
        return (
            f"token_url uses plain http to {host}: the client secret would "
            "travel unencrypted; use https (plain http is allowed for loopback "
            "hosts only)"
        )
    return None

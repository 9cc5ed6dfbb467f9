"""Connection models: where an API is and how to authenticate to it.

The fields of `HttpConnection` and `OAuth2Connection` are those of the
catalogue entries "HTTP" and "HTTP OAuth2" (type ID 5, module ``httplib``,
category ``api``); the fields marked as extensions are ours. Every field has
a description and examples because they feed the exported JSON Schema and
the reference page.

`CONNECTION_TYPES` is the registry: a connection file picks its entry with
``type``, or, when that is absent, by the presence of ``token_url``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, SecretStr

__all__ = [
    "CONNECTION_TYPES",
    "DEFAULT_RETRY_DELAY_MS",
    "DEFAULT_RETRY_ON",
    "DEFAULT_RETRY_TIMES",
    "MAX_MILLISECONDS",
    "MAX_RETRY_TIMES",
    "AuthMethod",
    "Connection",
    "ConnectionMethod",
    "ConnectionType",
    "HttpConnection",
    "HttpMethod",
    "OAuth2Connection",
    "Retry",
    "StatusCode",
    "connection_type_of",
]

# The catalogue's methods for a connection's own request; requests of a suite
# may also send HEAD and OPTIONS.
ConnectionMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "client_secret_raw"]

# Longer than any real request should take, short enough to catch a typo
# such as a timeout written in milliseconds.
MAX_TIMEOUT_SECONDS = 3600.0
# Likewise for delays in milliseconds: a delay in seconds written as
# milliseconds is caught, no sensible suite is limited.
MAX_MILLISECONDS = 3_600_000

# A retry's defaults: the statuses that mean "try again later" (too many
# requests, and a gateway or service that is briefly unavailable; 500 is
# left out, as it is more often a bug than a passing state), and a second
# between sends, a polite pace for a server under load.
DEFAULT_RETRY_TIMES = 3
DEFAULT_RETRY_DELAY_MS = 1000
DEFAULT_RETRY_ON = (429, 502, 503, 504)
MAX_RETRY_TIMES = 100

StatusCode = Annotated[int, Field(ge=100, le=599)]


class Retry(BaseModel):
    """When a request is sent again: no response, or a status in `on`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    times: int = Field(
        default=DEFAULT_RETRY_TIMES,
        ge=1,
        le=MAX_RETRY_TIMES,
        description=(
            "How many times at most to send the request again after the first "
            f"send (default {DEFAULT_RETRY_TIMES})."
        ),
        examples=[3],
    )
    delay: float = Field(
        default=DEFAULT_RETRY_DELAY_MS,
        ge=0,
        le=MAX_MILLISECONDS,
        description=(
            "Milliseconds to wait before each send again (default "
            f"{DEFAULT_RETRY_DELAY_MS}); a response's `Retry-After` replaces "
            "it, up to 60 s."
        ),
        examples=[500],
    )
    on: list[StatusCode] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_ON),
        description=(
            "Statuses that send the request again (default "
            f"{', '.join(str(code) for code in DEFAULT_RETRY_ON)}); a request "
            "that got no response is always sent again."
        ),
        examples=[[429, 503]],
    )


class HttpConnection(BaseModel):
    """A plain HTTP API with no authentication."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="HTTP connection",
        json_schema_extra={"x-catalogue": {"extends": None}},
    )

    type: Literal["http"] = Field(
        default="http",
        description=(
            "Extension. The connection type; when absent it is `oauth2` if "
            "`token_url` is present, else `http`."
        ),
        examples=["http"],
    )
    url: HttpUrl = Field(
        description=(
            "Full URL of the service endpoint; the base for relative request URLs."
        ),
        examples=["https://api.example.com/v1"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers sent with every request of the connection.",
        examples=[{"Accept": "application/json"}],
    )
    method: ConnectionMethod = Field(
        default="GET",
        description="HTTP method of the connection's own request.",
        examples=["GET"],
    )
    body: dict[str, Any] | None = Field(
        default=None,
        description="JSON body of the connection's own request.",
        examples=[{"ping": True}],
    )
    verify_ssl: bool = Field(
        default=True,
        description="Validate TLS certificates (the token endpoint's included).",
        examples=[True],
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=(
            "Extension. Seconds to wait for each request of the connection "
            "(default 30)."
        ),
        examples=[10],
    )
    retry: Retry | None = Field(
        default=None,
        description=(
            "Extension. When to send a request of the connection again (no "
            "response, a status in `on`); a request's own `retry` replaces it. "
            "The token endpoint has retries of its own."
        ),
        examples=[{"times": 3, "delay": 500, "on": [429, 503]}],
    )


class OAuth2Connection(HttpConnection):
    """An HTTP API protected by OAuth2 Client Credentials (RFC 6749 section 4.4)."""

    model_config = ConfigDict(title="HTTP OAuth2 connection")

    type: Literal["oauth2"] = Field(  # type: ignore[assignment]
        default="oauth2",
        description=(
            "Extension. The connection type; when absent it is `oauth2` if "
            "`token_url` is present, else `http`."
        ),
        examples=["oauth2"],
    )
    client_id: str = Field(
        min_length=1,
        description="OAuth2 client identifier.",
        examples=["client_id_value"],
    )
    client_secret: SecretStr = Field(
        min_length=1,
        description="OAuth2 client secret; never shown anywhere.",
        examples=["{{ env.BILLING_CLIENT_SECRET }}"],
    )
    token_url: HttpUrl = Field(
        description="The provider's token endpoint.",
        examples=["https://auth.example.com/token"],
    )
    scope: str | list[str] | None = Field(
        default=None,
        description=(
            "Extension. Scope to ask for: a string, or a list sent space-separated."
        ),
        examples=["invoices:read invoices:write", ["invoices:read"]],
    )
    token_params: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extension. Extra form fields of the token request, sent on every "
            "fetch (audience, resource, ...)."
        ),
        examples=[{"audience": "https://api.example.com"}],
    )
    auth_method: AuthMethod = Field(
        default="client_secret_basic",
        description=(
            "Extension. How the client authenticates to the token endpoint: "
            "`client_secret_basic` (HTTP Basic, id and secret form-urlencoded "
            "first, RFC 6749 section 2.3.1), `client_secret_post` (both in the "
            "form body) or `client_secret_raw` (HTTP Basic without the "
            "urlencoding, for providers that expect it)."
        ),
        examples=["client_secret_basic"],
    )

    def scope_text(self) -> str | None:
        """The scope as sent: list items joined by spaces."""
        if isinstance(self.scope, list):
            return " ".join(self.scope)
        return self.scope


Connection = HttpConnection | OAuth2Connection


@dataclass(frozen=True, slots=True)
class ConnectionType:
    """A registry entry: what the reference page says about a connection type."""

    name: str
    title: str
    model: type[HttpConnection]
    type_id: int | None
    module: str
    category: str
    description: str


CONNECTION_TYPES: Mapping[str, ConnectionType] = {
    "http": ConnectionType(
        name="http",
        title="HTTP",
        model=HttpConnection,
        type_id=None,
        module="httplib",
        category="api",
        description="An HTTP API reached without authentication.",
    ),
    "oauth2": ConnectionType(
        name="oauth2",
        title="HTTP OAuth2",
        model=OAuth2Connection,
        type_id=5,
        module="httplib",
        category="api",
        description=(
            "An HTTP API protected by OAuth2 with the Client Credentials grant: "
            "the runner asks `token_url` for an access token and sends it as a "
            "bearer token on every request."
        ),
    ),
}


def connection_type_of(document: Mapping[str, Any]) -> str:
    """The registry key a connection mapping asks for (it may be unknown)."""
    declared = document.get("type")
    if isinstance(declared, str):
        return declared
    return "oauth2" if "token_url" in document else "http"

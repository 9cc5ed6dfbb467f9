"""Connection models: where an API is and how to authenticate to it.

The fields of `HttpConnection` and `OAuth2Connection` are those of the
catalogue entries "HTTP" and "HTTP OAuth2" (type ID 5, module ``httplib``,
category ``api``); the fields whose description starts with
`EXTENSION_MARK` are ours. `BasicConnection`, `BearerConnection` and
`ApiKeyConnection` are not in the catalogue at all: they extend the base
HTTP connection with a static credential sent on every request to the
connection's origin (see `Credential`). Every field has a description and
examples because they feed the exported JSON Schema and the reference page
(`runner.reference`).

`CONNECTION_TYPES` is the registry: a connection file picks its entry with
``type``, or, when that is absent, by the presence of ``token_url``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, SecretStr

from runner.secrets import MASK

__all__ = [
    "CONNECTION_TYPES",
    "DEFAULT_RETRY_DELAY_MS",
    "DEFAULT_RETRY_ON",
    "DEFAULT_RETRY_TIMES",
    "EXTENSION_MARK",
    "MAX_MILLISECONDS",
    "MAX_RETRY_TIMES",
    "ApiKeyConnection",
    "AuthMethod",
    "BasicConnection",
    "BearerConnection",
    "Connection",
    "ConnectionMethod",
    "ConnectionType",
    "Credential",
    "HttpConnection",
    "HttpMethod",
    "OAuth2Connection",
    "Retry",
    "StaticConnection",
    "StatusCode",
    "connection_type_of",
    "secret_fields",
]

# The catalogue's methods for a connection's own request; requests of a suite
# may also send HEAD and OPTIONS.
ConnectionMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH"]
HttpMethod = Literal["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
AuthMethod = Literal["client_secret_basic", "client_secret_post", "client_secret_raw"]

# Longer than any real request should take, short enough to catch a typo
# such as a timeout written in milliseconds.
MAX_TIMEOUT_SECONDS = 3600.0
# What a request waits for its response when neither it nor its connection
# says: long enough for a slow API, short enough for a stuck one in CI.
DEFAULT_TIMEOUT_SECONDS = 30.0
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

# How a description says that its field is ours, not the catalogue's; the
# reference page sorts fields into its two tables by it.
EXTENSION_MARK = "Extension. "

# A header field name is a token (RFC 9110 section 5.1); an API key's name
# is held to it in a query string too, where no real API needs more.
_TOKEN_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
# Header values may not hold line breaks or other control characters (RFC
# 9110 section 5.5); refused here rather than by the HTTP library mid-run.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Masking is by value, and values shorter than this are not masked (see
# runner.secrets.MIN_SECRET_LENGTH): an API key travels where no header
# rule masks it (a query string, a header of its own), so it must be long
# enough to mask.
_MIN_KEY_LENGTH = 4


def _header_safe(secret: SecretStr) -> SecretStr:
    if _CONTROL.search(secret.get_secret_value()):
        raise ValueError("must not hold line breaks or other control characters")
    return secret


# A secret that travels in a header (the value itself is never shown).
HeaderSecret = Annotated[SecretStr, AfterValidator(_header_safe)]


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
        description=(
            "Validate TLS certificates (for OAuth2, the token endpoint's too)."
        ),
        examples=[True],
    )
    timeout: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=(
            "Extension. Seconds to wait for each request of the connection, "
            "its token requests included."
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

    def __getstate__(self) -> dict[Any, Any]:
        """The pickled state, every secret field masked (SPEC, "Secrets").

        A connection unpickled from it keeps ``***`` for its secrets: it can
        be shown, not used to authenticate.
        """
        state = super().__getstate__()
        values = dict(state["__dict__"])
        for name, value in values.items():
            if isinstance(value, SecretStr):
                values[name] = SecretStr(MASK)
        return {**state, "__dict__": values}


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


@dataclass(frozen=True, slots=True)
class Credential:
    """What a static-credential connection adds to each request to its origin.

    Attributes:
        place: ``header`` or ``query``.
        name: The header or query parameter name.
        value: Its value, as sent (secret).
        shown: Its value as a dry run prints it, the secret part masked.
    """

    place: Literal["header", "query"]
    name: str
    value: str = field(repr=False)
    shown: str


class BasicConnection(HttpConnection):
    """An HTTP API that takes HTTP Basic credentials (RFC 7617) on every request."""

    model_config = ConfigDict(title="HTTP Basic connection")

    type: Literal["basic"] = Field(  # type: ignore[assignment]
        default="basic",
        description="Extension. The connection type: `basic` for HTTP Basic.",
        examples=["basic"],
    )
    username: str = Field(
        pattern=r"^[^:\x00-\x1f\x7f]*$",
        description=(
            "Extension. The user name; RFC 7617 section 2 forbids a colon in it."
        ),
        examples=["reporting"],
    )
    password: HeaderSecret = Field(
        description="Extension. The password; never shown anywhere.",
        examples=["{{ env.REPORTING_PASSWORD }}"],
    )

    def credential(self) -> Credential:
        """The ``Authorization: Basic`` header (RFC 7617 section 2, UTF-8)."""
        joined = f"{self.username}:{self.password.get_secret_value()}"
        encoded = base64.b64encode(joined.encode()).decode("ascii")
        return Credential(
            place="header",
            name="Authorization",
            value=f"Basic {encoded}",
            shown="Basic ***",
        )


class BearerConnection(HttpConnection):
    """An HTTP API that takes one static bearer token (RFC 6750 section 2.1)."""

    model_config = ConfigDict(title="HTTP bearer token connection")

    type: Literal["bearer"] = Field(  # type: ignore[assignment]
        default="bearer",
        description=(
            "Extension. The connection type: `bearer` for a static bearer token."
        ),
        examples=["bearer"],
    )
    token: HeaderSecret = Field(
        min_length=1,
        description=(
            "Extension. The token, sent as `Authorization: Bearer <token>`; "
            "never shown anywhere. It is never renewed: for tokens that expire, "
            "use `oauth2`."
        ),
        examples=["{{ env.STATUS_API_TOKEN }}"],
    )

    def credential(self) -> Credential:
        """The ``Authorization: Bearer`` header."""
        token = self.token.get_secret_value()
        return Credential(
            place="header",
            name="Authorization",
            value=f"Bearer {token}",
            shown="Bearer ***",
        )


class ApiKeyConnection(HttpConnection):
    """An HTTP API that takes an API key in a header or a query parameter."""

    model_config = ConfigDict(title="HTTP API key connection")

    type: Literal["api_key"] = Field(  # type: ignore[assignment]
        default="api_key",
        description="Extension. The connection type: `api_key` for an API key.",
        examples=["api_key"],
    )
    name: str = Field(
        pattern=_TOKEN_PATTERN,
        description=(
            "Extension. The name of the header or query parameter that carries the key."
        ),
        examples=["X-API-Key", "api_key"],
    )
    value: HeaderSecret = Field(
        min_length=_MIN_KEY_LENGTH,
        description=(
            "Extension. The key; never shown anywhere. At least "
            f"{_MIN_KEY_LENGTH} characters, so that it can be masked."
        ),
        examples=["{{ env.WEATHER_API_KEY }}"],
    )
    in_: Literal["header", "query"] = Field(
        default="header",
        alias="in",
        description=(
            "Extension. Where the key goes: `header` (default) or `query` (a "
            "query parameter of every request)."
        ),
        examples=["header", "query"],
    )

    def credential(self) -> Credential:
        """The header or query parameter that carries the key."""
        return Credential(
            place=self.in_,
            name=self.name,
            value=self.value.get_secret_value(),
            shown="***",
        )


Connection = (
    HttpConnection
    | OAuth2Connection
    | BasicConnection
    | BearerConnection
    | ApiKeyConnection
)
StaticConnection = BasicConnection | BearerConnection | ApiKeyConnection


@dataclass(frozen=True, slots=True)
class ConnectionType:
    """A registry entry: what the reference page says about a connection type.

    Attributes:
        name: The value of ``type`` that selects it.
        title: Its name on the reference page.
        model: Its model.
        type_id: The catalogue's type ID; None when the catalogue gives none.
        module: The catalogue's module; None for our extensions.
        category: The catalogue's category.
        description: One paragraph for the reference page.
        extension: Ours, not a catalogue entry (it then has no type ID).
        example: A complete connection of this type, as JSON; it must load.
        notes: Paragraphs for the reference page's notes.
    """

    name: str
    title: str
    model: type[HttpConnection]
    type_id: int | None
    module: str | None
    category: str
    description: str
    extension: bool = False
    example: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


_ORIGIN_NOTE = (
    "The credential goes only to the origin (scheme, host and port) of `url`: "
    "a request to another origin, or a redirect to one, goes without it. A "
    "request that sets the same header (or query parameter) itself keeps its "
    "own."
)
_PLAIN_HTTP_NOTE = (
    "Known shortcoming: nothing refuses a plain `http://` url off the loopback "
    "host, as `oauth2` refuses such a `token_url`; the credential would "
    "travel unencrypted. Use https."
)

CONNECTION_TYPES: Mapping[str, ConnectionType] = {
    "http": ConnectionType(
        name="http",
        title="HTTP",
        model=HttpConnection,
        type_id=None,
        module="httplib",
        category="api",
        description=(
            "An HTTP API reached without authentication: the catalogue's base "
            "HTTP connection, which every other type extends."
        ),
        example={
            "url": "https://api.example.com/v1",
            "headers": {"Accept": "application/json"},
            "method": "GET",
            "body": None,
            "verify_ssl": True,
        },
        notes=(
            "The type when neither `type` nor `token_url` is present.",
            "The catalogue gives this base entry no type ID of its own.",
        ),
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
        example={
            "url": "https://api.example.com/oauth2",
            "client_id": "client_id_value",
            "client_secret": "client_secret_value",
            "token_url": "https://auth.example.com/token",
            "headers": {},
            "method": "GET",
            "body": None,
            "verify_ssl": True,
        },
        notes=(
            "The type when `type` is absent and `token_url` is present.",
            "One token per connection is shared by every request and suite of a "
            "run; it is renewed a margin before it expires, and once after a "
            "401 to a token believed valid.",
            "The token goes only to the origin of `url`. A `token_url` over "
            "plain http is refused unless its host is a loopback address, and "
            "the token endpoint's redirects are never followed.",
            "The client secret, its encoded forms and every token are masked "
            "as `***` in everything the runner writes.",
        ),
    ),
    "basic": ConnectionType(
        name="basic",
        title="HTTP Basic",
        model=BasicConnection,
        type_id=None,
        module=None,
        category="api",
        description=(
            "An HTTP API that takes a user name and password as HTTP Basic "
            "credentials (RFC 7617) on every request."
        ),
        extension=True,
        example={
            "type": "basic",
            "url": "https://reports.example.com/api",
            "username": "reporting",
            "password": "password_value",
        },
        notes=(
            "Selected by `type: basic` only.",
            "User name and password are joined by a colon, encoded as UTF-8 "
            "and then base64, as RFC 7617 section 2 says; they are not "
            "form-urlencoded first (that is OAuth2's client authentication).",
            _ORIGIN_NOTE,
            "The password and the base64 credential are masked as `***` in "
            "everything the runner writes.",
            _PLAIN_HTTP_NOTE,
        ),
    ),
    "bearer": ConnectionType(
        name="bearer",
        title="HTTP bearer token",
        model=BearerConnection,
        type_id=None,
        module=None,
        category="api",
        description=(
            "An HTTP API that takes one static bearer token (RFC 6750 section "
            "2.1) on every request, such as a personal access token."
        ),
        extension=True,
        example={
            "type": "bearer",
            "url": "https://status.example.com/api",
            "token": "token_value",
        },
        notes=(
            "Selected by `type: bearer` only.",
            "The token is sent as it is and never renewed: a 401 is that "
            "request's failure. Tokens that expire want `oauth2`.",
            _ORIGIN_NOTE,
            "The token is masked as `***` in everything the runner writes.",
            _PLAIN_HTTP_NOTE,
        ),
    ),
    "api_key": ConnectionType(
        name="api_key",
        title="HTTP API key",
        model=ApiKeyConnection,
        type_id=None,
        module=None,
        category="api",
        description=(
            "An HTTP API that takes an API key in a header or a query "
            "parameter of every request."
        ),
        extension=True,
        example={
            "type": "api_key",
            "url": "https://weather.example.com/v2",
            "name": "X-API-Key",
            "value": "api_key_value",
            "in": "header",
        },
        notes=(
            "Selected by `type: api_key` only.",
            _ORIGIN_NOTE,
            "The key is masked as `***` in everything the runner writes, the "
            "URLs of `-v` and `--dry-run` included when it is a query "
            "parameter. Servers often log query strings: prefer a header.",
            _PLAIN_HTTP_NOTE,
        ),
    ),
}


def secret_fields() -> frozenset[str]:
    """The names of the secret fields of every connection type."""
    return frozenset(
        name
        for entry in CONNECTION_TYPES.values()
        for name, info in entry.model.model_fields.items()
        if info.annotation is SecretStr
    )


def connection_type_of(document: Mapping[str, Any]) -> str:
    """The registry key a connection mapping asks for (it may be unknown)."""
    declared = document.get("type")
    if isinstance(declared, str):
        return declared
    return "oauth2" if "token_url" in document else "http"

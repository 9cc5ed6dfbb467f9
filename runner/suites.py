"""Suite models: requests in order, what their responses must look like, and
which values they carry to later requests.

String values may hold jinja2 templates; they are kept as written here and
rendered by `runner.templates` (connections at load time, requests when they
are sent, since captures only exist then).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from runner.connections import (
    MAX_MILLISECONDS,
    MAX_TIMEOUT_SECONDS,
    HttpMethod,
    Retry,
    StatusCode,
)

__all__ = ["Expect", "Request", "RequestRetry", "Suite"]

# Bounds that catch typos (a repeat count with a zero too many) without
# limiting any sensible suite; MAX_MILLISECONDS does the same for delays.
MAX_REPEAT = 10_000
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class Expect(BaseModel):
    """What a response must look like for its request to pass."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    status: StatusCode | list[StatusCode] | None = Field(
        default=None,
        description="A status code or a list of accepted codes (default: any 2xx).",
        examples=[200, [200, 204]],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Response headers that must have exactly these values.",
        examples=[{"Content-Type": "application/json"}],
    )
    json_subset: Any = Field(
        default=None,
        alias="json",
        description=(
            "A recursive subset the response JSON must contain: mappings may "
            "have more keys, lists must match item by item."
        ),
        examples=[{"customer": "acme"}],
    )
    json_schema: dict[str, Any] | str | None = Field(
        default=None,
        alias="schema",
        description=(
            "A JSON Schema the response JSON must satisfy, inline or as a path "
            "relative to the suite file."
        ),
        examples=[{"type": "object", "required": ["id"]}, "schemas/invoice.json"],
    )
    body_contains: str | list[str] | None = Field(
        default=None,
        description="Text (or texts) the response body must contain.",
        examples=["acme"],
    )
    max_ms: float | None = Field(
        default=None,
        gt=0,
        le=MAX_MILLISECONDS,
        description="The longest the response may take, in milliseconds.",
        examples=[500],
    )
    that: list[str] = Field(
        default_factory=list,
        description=("jinja2 expressions over `response` that must all be true."),
        examples=[["response.json.amount == 10"]],
    )


class RequestRetry(Retry):
    """A request's `retry`: a connection's, and polling with `until`."""

    until: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Poll: a jinja2 expression over `response`; the request is sent "
            "again, up to `times`, every `delay`, until it is true (`on` does "
            "not apply then)."
        ),
        examples=["response.json.state == 'ready'"],
    )


class Request(BaseModel):
    """One request of a suite; what it does not say it inherits from its connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        min_length=1,
        description="A name for the output (default: method and URL).",
        examples=["create invoice"],
    )
    connection: str | None = Field(
        default=None,
        min_length=1,
        description="Which of the suite's `connections` to use.",
        examples=["billing"],
    )
    method: HttpMethod = Field(
        default="GET",
        description="HTTP method.",
        examples=["POST"],
    )
    url: str = Field(
        default="",
        description=(
            "Absolute URL, or a path appended under the connection url "
            "(empty: the connection url itself)."
        ),
        examples=["invoices/{{ invoice_id }}"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers merged over the connection's.",
        examples=[{"X-Request-Id": "smoke-1"}],
    )
    params: dict[str, str | int | float | bool | list[str | int | float | bool]] = (
        Field(
            default_factory=dict,
            description="Query parameters.",
            examples=[{"page": 1, "tag": ["a", "b"]}],
        )
    )
    body: Any = Field(
        default=None,
        description="A JSON body (any JSON value).",
        examples=[{"customer": "{{ customer }}", "amount": 10}],
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description="Seconds to wait for the response (default: the connection's).",
        examples=[5],
    )
    expect: Expect = Field(
        default_factory=Expect,
        description="What the response must look like.",
        examples=[{"status": 201}],
    )
    capture: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Names to set from the response, each a jinja2 expression over "
            "`response`; later requests use them as `{{ name }}`."
        ),
        examples=[{"invoice_id": "response.json.id"}],
        json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN}},
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Labels to select requests with.",
        examples=[["smoke"]],
    )
    repeat: int = Field(
        default=1,
        ge=1,
        le=MAX_REPEAT,
        description="Send the request this many times, each judged.",
        examples=[3],
    )
    delay: float = Field(
        default=0,
        ge=0,
        le=MAX_MILLISECONDS,
        description="Milliseconds to wait before each send, repeats included.",
        examples=[250],
    )
    follow_redirects: bool = Field(
        default=False,
        description=("Follow redirects; credentials never go to another origin."),
        examples=[True],
    )
    retry: RequestRetry | None = Field(
        default=None,
        description=(
            "When to send the request again: no response, a status in `on`, "
            "or until `until` is true. Replaces the connection's `retry`; "
            "`null` turns that off for this request."
        ),
        examples=[{"times": 5, "delay": 200, "until": "response.json.ready"}],
    )


class Suite(BaseModel):
    """A suite file: requests sent in order through one or more connections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        default=None,
        min_length=1,
        description="A name for the output (default: the file name).",
        examples=["billing smoke"],
    )
    connection: str | dict[str, Any] | None = Field(
        default=None,
        description=(
            "The connection: a path relative to this file, or an inline mapping."
        ),
        examples=["../connections/billing.yaml"],
    )
    connections: dict[str, str | dict[str, Any]] = Field(
        default_factory=dict,
        description=(
            "Several connections by name (path or inline mapping); a request "
            "picks one with `connection: NAME`."
        ),
        examples=[{"billing": "billing.yaml", "users": "users.yaml"}],
        json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN}},
    )
    vars: dict[str, Any] = Field(
        default_factory=dict,
        description="Names for templates; `--var NAME=VALUE` overrides them.",
        examples=[{"customer": "acme"}],
        json_schema_extra={"propertyNames": {"pattern": NAME_PATTERN}},
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Labels to select the suite with.",
        examples=[["smoke"]],
    )
    requests: list[Request] = Field(
        min_length=1,
        description="The requests, sent in order.",
        examples=[[{"name": "health", "url": "health"}]],
    )

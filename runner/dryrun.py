"""``runner run --dry-run``: every request as a ``curl`` command, nothing sent.

The files are loaded and checked as a run checks them (invalid input stops
with status 2 before this module is reached); then each request is rendered
with its suite's variables and printed as a command a user can paste into a
POSIX shell. No request is sent, token requests included: the bearer token
shows as ``Authorization: Bearer ***``.

A value whose template uses a capture (known only once an earlier request
has run) is left as its template text, ``{{ invoice_id }}``, and the
command says so in a comment above it. Secrets are masked as everywhere
else, so a command that needs one will not work until it is filled in.

Known shortcoming: ``--max-time`` bounds the whole transfer, while the
runner's timeout bounds each phase (connect, read, write) on its own; the
two agree for the small requests of a smoke test.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from runner.connections import (
    Credential,
    HttpConnection,
    OAuth2Connection,
    StaticConnection,
)
from runner.errors import TemplateError
from runner.exchange import request_label
from runner.exits import ExitStatus
from runner.loading import LoadedRequest
from runner.origins import origin
from runner.secrets import MASK, SENSITIVE_HEADERS, Redactor
from runner.selection import Selected
from runner.sending import join_url
from runner.templates import Templates, is_template

__all__ = ["curl_command", "dry_run"]

# Characters curl reads as a glob in a URL unless told not to (--globoff).
_GLOB = frozenset("{}[]")


def dry_run(
    suites: Sequence[Selected],
    templates: Templates,
    redactor: Redactor,
    *,
    out: TextIO,
    err: TextIO,
) -> int:
    """Print every picked request of `suites` as a curl command; returns the status.

    Returns 0, or 1 when a request could not be rendered (a template that
    fails only with real values, such as a division by zero): it is printed
    as a comment in its place, and the reason goes to `err` as well.
    """
    failed = 0
    count = 0
    for selected in suites:
        suite = selected.suite
        for request in suite.requests:
            if not selected.runs(request):
                continue
            count += 1
            where = request.location.prefix()
            heading = f"# {suite.name} > {request_label(request)}  ({where})"
            try:
                command = curl_command(
                    request, suite.variables, templates, redactor=redactor
                )
            except TemplateError as error:
                failed += 1
                reason = f"could not render: {error.message}"
                err.write(redactor.redact(f"{heading[2:]}: {reason}") + "\n")
                out.write(redactor.redact(f"{heading}\n# {reason}") + "\n\n")
                continue
            out.write(redactor.redact(f"{heading}\n{command}") + "\n\n")

    out.write(
        f"# {count} request{'s' if count != 1 else ''} in {len(suites)} "
        f"suite{'s' if len(suites) != 1 else ''}; nothing was sent\n"
    )
    return ExitStatus.FAILED if failed else ExitStatus.OK


def curl_command(
    request: LoadedRequest,
    variables: Mapping[str, Any],
    templates: Templates,
    *,
    redactor: Redactor,
) -> str:
    """The curl command that sends `request`, with comments above it if needed.

    Each word is masked before it is shell-quoted: quoting rewrites a ``'``
    inside a secret as ``'"'"'``, which no masked form would match after.

    Raises:
        TemplateError: A template failed to render.
    """
    model = request.model
    connection = request.connection.model
    pending: set[str] = set()

    def render(value: Any) -> Any:
        return _render_known(templates, value, variables, request.uses, pending)

    url = join_url(str(connection.url), render(model.url))
    query = _query(render(model.params))
    if query:
        url += ("&" if "?" in url else "?") + query
    # The key in the query, as StaticAuth adds it: unless the URL has its own.
    credential = _static_credential(connection, url)
    if credential is not None and credential.place == "query":
        in_url = {key for key, _ in parse_qsl(urlsplit(url).query, True)}
        if credential.name not in in_url:
            url += ("&" if "?" in url else "?") + f"{credential.name}={MASK}"
    body = render(model.body)

    # The first line says what is sent where; then an option to a line.
    first = ["curl"]
    implied = "POST" if body is not None else "GET"
    if model.method != implied:
        first += ["-X", model.method]
    if _GLOB & set(url):
        first.append("-g")
    groups = [[*first, url]]
    headers = _headers(connection, url, render(model.headers), json_body=body)
    groups += [["-H", f"{name}: {value}"] for name, value in headers.items()]
    if body is not None:
        # --data-raw, not -d or --json: those read a file for a body that
        # starts with "@".
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        groups.append(["--data-raw", text])
    timeout = model.timeout or connection.timeout
    groups.append(["--max-time", f"{timeout:g}"])
    if not connection.verify_ssl:
        groups.append(["-k"])
    if model.follow_redirects:
        groups.append(["-L"])

    comments = []
    if pending:
        names = ", ".join(sorted(pending))
        comments.append(f"# uses {names}, captured at run time: left as template text")
    if model.repeat > 1:
        comments.append(f"# sent {model.repeat} times")
    if model.delay:
        comments.append(f"# after a delay of {model.delay:g} ms")
    return "\n".join([*comments, _join(groups, redactor)])


def _render_known(
    templates: Templates,
    value: Any,
    names: Mapping[str, Any],
    unknown: frozenset[str],
    pending: set[str],
) -> Any:
    """`value` rendered, except templates that use a name in `unknown`.

    Those are kept as written, and the names they wait for added to
    `pending`.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        waiting = templates.names_in(value) & unknown
        if waiting:
            pending |= waiting
            return value
        return templates.render(value, names)
    if isinstance(value, dict):
        rendered = {}
        for key, item in value.items():
            shown_key = _render_known(templates, key, names, unknown, pending)
            rendered[str(shown_key)] = _render_known(
                templates, item, names, unknown, pending
            )
        return rendered
    if isinstance(value, list):
        return [
            _render_known(templates, item, names, unknown, pending) for item in value
        ]
    return value


def _query(params: Mapping[str, Any]) -> str:
    """The query string of `params`, encoded as the runner's client encodes it."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        pairs += [(name, _query_value(item)) for item in values]
    return urlencode(pairs)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _headers(
    connection: HttpConnection,
    url: str,
    request_headers: Mapping[str, Any],
    *,
    json_body: Any,
) -> dict[str, str]:
    """The connection's headers under the request's, sensitive values masked."""
    merged: dict[str, tuple[str, str]] = {}
    for name, value in connection.headers.items():
        merged[name.lower()] = (name, str(value))
    for name, value in request_headers.items():
        merged[name.lower()] = (name, str(value))

    # A request's own Authorization is masked whatever it holds.
    own_authorization = "authorization" in merged
    if own_authorization:
        merged["authorization"] = (merged["authorization"][0], MASK)

    # As runner.tokens.BearerAuth and runner.static_auth.StaticAuth decide:
    # the credential goes to the connection's origin only, and never over a
    # header of the request's own (whose value is then masked as well, as it
    # stands where a secret goes).
    credential = _static_credential(connection, url)
    if credential is not None and credential.place == "header":
        key = credential.name.lower()
        if key in merged:
            merged[key] = (merged[key][0], MASK)
        else:
            merged[key] = (credential.name, credential.shown)
    same_origin = _same_origin(url, connection)
    if (
        isinstance(connection, OAuth2Connection)
        and same_origin
        and not own_authorization
    ):
        merged["authorization"] = ("Authorization", f"Bearer {MASK}")

    shown = {}
    for key, (name, value) in merged.items():
        masked = key in SENSITIVE_HEADERS and key != "authorization"
        shown[name] = MASK if masked else value
    if json_body is not None and "content-type" not in merged:
        shown["Content-Type"] = "application/json"
    return shown


def _static_credential(connection: HttpConnection, url: str) -> Credential | None:
    """The static credential that goes with a request to `url`, if any."""
    if not isinstance(connection, StaticConnection):
        return None
    if not _same_origin(url, connection):
        return None
    return connection.credential()


def _same_origin(url: str, connection: HttpConnection) -> bool:
    """Whether `url` is on the connection's origin, as the run decides it."""
    try:
        return origin(httpx.URL(url)) == origin(httpx.URL(str(connection.url)))
    except httpx.InvalidURL:  # a URL still holding a template, for one
        return False


def _join(groups: list[list[str]], redactor: Redactor) -> str:
    """The command on several lines, each group of words masked and quoted."""
    lines = [
        " ".join(shlex.quote(redactor.redact(word)) for word in group)
        for group in groups
    ]
    return " \\\n  ".join(lines)

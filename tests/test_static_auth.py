"""The ``basic``, ``bearer`` and ``api_key`` connections, in whole runs.

Runs go through `runner.cli.main` against `tests.credential_server`, on real
sockets of 127.0.0.1: a server that refuses a request without the right
credential proves it was sent, a second server (another port, so another
origin) proves it was not sent anywhere else. The secrets are written in the
connection files themselves, not read from ``env``, so that their masking
owes nothing to the masking of ``env`` values; every byte written is
searched for each of them in the forms they travel in.

The loader's side (type selection, validation messages) is at the end; the
auth flow itself is `runner.static_auth.StaticAuth`.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from runner.cli import main
from runner.connections import ApiKeyConnection
from runner.static_auth import StaticAuth
from tests.credential_server import (
    API_KEY,
    KEY_NAME,
    PASSWORD,
    TOKEN,
    USERNAME,
    CredentialServer,
)

CONNECTIONS = {
    "basic": {"type": "basic", "username": USERNAME, "password": PASSWORD},
    "bearer": {"type": "bearer", "token": TOKEN},
    "key-header": {"type": "api_key", "name": KEY_NAME, "value": API_KEY},
    "key-query": {"type": "api_key", "name": KEY_NAME, "value": API_KEY, "in": "query"},
}
SECRETS = {"password": PASSWORD, "token": TOKEN, "api key": API_KEY}


@pytest.fixture
def api() -> Iterator[CredentialServer]:
    with CredentialServer() as server:
        yield server


@pytest.fixture
def other() -> Iterator[CredentialServer]:
    """Another origin: the same host on another port."""
    with CredentialServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    for name in ("runner", "httpx"):
        caplog.set_level(logging.DEBUG, logger=name)


def _files(folder: Path, api: CredentialServer, kind: str, requests: str) -> Path:
    """A connection of `kind` to its area of `api`, and a suite over it."""
    fields = {"url": f"{api.url}/{kind}", **CONNECTIONS[kind]}
    # JSON is YAML: the secrets' quotes and spaces need no YAML escaping.
    (folder / "connection.yaml").write_text(json.dumps(fields), encoding="utf-8")
    suite = folder / "suite.yaml"
    head = "name: static\nconnection: connection.yaml\nrequests:\n"
    suite.write_text(head + requests, encoding="utf-8")
    return suite


def _run(*args: str, caplog: pytest.LogCaptureFixture) -> tuple[int, str]:
    """`runner run` with `args`: its status, and all it wrote (logs included)."""
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    return status, out.getvalue() + err.getvalue() + caplog.text


def _forms(value: str) -> dict[str, str]:
    """The forms in which `value` may travel or be written."""
    return {
        "plain": value,
        "percent-encoded": quote(value, safe=""),
        "form-urlencoded": quote_plus(value),
        "JSON string": json.dumps(value)[1:-1],
        "ASCII JSON string": json.dumps(value, ensure_ascii=True)[1:-1],
        "base64": base64.b64encode(value.encode()).decode(),
        "Basic credential": base64.b64encode(f"{USERNAME}:{value}".encode()).decode(),
    }


def _assert_nothing_leaked(written: str) -> None:
    leaks = [
        f"{name} ({form_name})"
        for name, value in SECRETS.items()
        for form_name, form in _forms(value).items()
        if form in written
    ]
    assert not leaks, leaks


def _carried(seen_headers: dict[str, str], query: dict[str, list[str]]) -> bool:
    """Whether a request carried any of the credentials."""
    texts = [*seen_headers.values(), *(v for vs in query.values() for v in vs)]
    joined = "\n".join(texts)
    credential = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    return any(secret in joined for secret in (credential, TOKEN, API_KEY))


# ------------------------------------------------------------------ sending


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_static_connection_run_sends_the_credential_the_server_checks(
    kind: str, api: CredentialServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suite = _files(
        tmp_path,
        api,
        kind,
        "  - {name: one, url: items, expect: {status: 200}}\n"
        "  - {name: two, url: items/2, params: {page: 3}, expect: {status: 200}}\n",
    )

    status, written = _run(str(suite), caplog=caplog)

    assert status == 0, written
    assert [seen.path for seen in api.seen] == [f"/{kind}/items", f"/{kind}/items/2"]
    assert api.seen[1].query.get("page") == ["3"]
    _assert_nothing_leaked(written)


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_static_connection_wrong_credential_fails_with_the_401(
    kind: str, api: CredentialServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suite = _files(tmp_path, api, kind, "  - {url: items}\n")
    # The same area, checked against a credential of another kind.
    other_kind = "bearer" if kind != "bearer" else "basic"
    fields = {"url": f"{api.url}/{kind}", **CONNECTIONS[other_kind]}
    (tmp_path / "connection.yaml").write_text(json.dumps(fields), encoding="utf-8")

    status, written = _run(str(suite), caplog=caplog)

    assert status == 1
    assert "401" in written
    _assert_nothing_leaked(written)


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_static_connection_request_to_another_origin_goes_without_credential(
    kind: str,
    api: CredentialServer,
    other: CredentialServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suite = _files(
        tmp_path,
        api,
        kind,
        f"  - {{name: elsewhere, url: '{other.url}/open'}}\n"
        f"  - {{name: back, url: items}}\n",
    )

    status, written = _run(str(suite), caplog=caplog)

    assert status == 0, written
    [elsewhere] = other.seen
    assert not _carried(elsewhere.headers, elsewhere.query)
    assert [seen.path for seen in api.seen] == [f"/{kind}/items"]


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_static_connection_redirect_to_another_origin_drops_the_credential(
    kind: str,
    api: CredentialServer,
    other: CredentialServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx keeps custom headers on a redirect: the API key header must go."""
    target = quote(f"{other.url}/open", safe="")
    suite = _files(
        tmp_path,
        api,
        kind,
        f"  - {{url: '{api.url}/redirect?to={target}', follow_redirects: true}}\n",
    )

    status, written = _run(str(suite), caplog=caplog)

    assert status == 0, written
    [redirect] = api.seen
    assert redirect.path == "/redirect"
    [hop] = other.seen
    assert hop.path == "/open"
    assert not _carried(hop.headers, hop.query)


def test_api_key_request_with_its_own_header_keeps_it(
    api: CredentialServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suite = _files(
        tmp_path,
        api,
        "key-header",
        f"  - {{url: items, headers: {{{KEY_NAME}: wrong-key}},\n"
        "      expect: {status: 401}}\n",
    )

    status, written = _run(str(suite), caplog=caplog)

    assert status == 0, written
    [seen] = api.seen
    assert seen.headers[KEY_NAME.lower()] == "wrong-key"


def test_api_key_in_query_is_not_added_twice(
    api: CredentialServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    suite = _files(
        tmp_path,
        api,
        "key-query",
        f"  - {{url: items, params: {{{KEY_NAME}: mine}}, expect: {{status: 401}}}}\n",
    )

    status, written = _run(str(suite), caplog=caplog)

    assert status == 0, written
    [seen] = api.seen
    assert seen.query[KEY_NAME] == ["mine"]


def test_static_auth_hook_drops_only_its_own_query_value() -> None:
    """The redirect hook on its own (the redirect test above is the real proof)."""
    connection = ApiKeyConnection.model_validate(
        {"url": "https://api.example.com", "name": "k", "value": API_KEY, "in": "query"}
    )
    auth = StaticAuth(connection.credential(), "https://api.example.com")
    request = httpx.Request(
        "GET", "https://elsewhere.example.com/x", params={"k": [API_KEY, "own"], "a": 1}
    )

    auth.drop_off_origin(request)

    assert request.url.params.multi_items() == [("k", "own"), ("a", "1")]
    assert API_KEY not in repr(auth)


# ------------------------------------------------------------------ masking


@pytest.mark.parametrize("kind", list(CONNECTIONS))
def test_static_connection_very_verbose_run_masks_the_credential(
    kind: str, api: CredentialServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server echoes the credential in its body and headers; -vv prints both."""
    suite = _files(
        tmp_path,
        api,
        kind,
        "  - {url: items, expect: {status: 200, body_contains: nothing-like-this}}\n",
    )
    outputs = tmp_path / "outputs"
    outputs.mkdir()

    status, written = _run(
        "-vv",
        "--junit",
        str(outputs / "junit.xml"),
        "--report",
        str(outputs / "report.json"),
        str(suite),
        caplog=caplog,
    )

    assert status == 1  # judged on the echoed body, which the trace prints
    assert "***" in written
    files = "".join(path.read_text(encoding="utf-8") for path in outputs.iterdir())
    _assert_nothing_leaked(written + files)


@pytest.mark.parametrize(
    ("kind", "shown"),
    [
        ("basic", "Authorization: Basic ***"),
        ("bearer", "Authorization: Bearer ***"),
        ("key-header", f"{KEY_NAME}: ***"),
        ("key-query", f"{KEY_NAME}=***"),
    ],
)
def test_static_connection_dry_run_shows_the_credential_masked(
    kind: str,
    shown: str,
    api: CredentialServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suite = _files(tmp_path, api, kind, "  - {url: items}\n")

    status, written = _run("--dry-run", str(suite), caplog=caplog)

    assert status == 0, written
    assert shown in written
    assert api.seen == []
    _assert_nothing_leaked(written)


def test_dry_run_to_another_origin_shows_no_credential(
    api: CredentialServer,
    other: CredentialServer,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    suite = _files(tmp_path, api, "key-query", f"  - {{url: '{other.url}/open'}}\n")

    status, written = _run("--dry-run", str(suite), caplog=caplog)

    assert status == 0, written
    assert KEY_NAME not in written


# ------------------------------------------------------------ loading


def _check(folder: Path, text: str) -> tuple[int, str]:
    path = folder / "c.yaml"
    path.write_text(text, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    status = main(["check", str(path)], stdout=out, stderr=err)
    return status, out.getvalue() + err.getvalue()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('type: bearer\nurl: https://h\ntoken: "a\\nsecret-token-x"\n', "line breaks"),
        ("type: bearer\nurl: https://h\ntoken: 31415926535\n", "expected a string"),
        ("type: basic\nurl: https://h\nusername: u\npassword: [s3cr3t-pw]\n", "string"),
        ("type: api_key\nurl: https://h\nname: k\nvalue: 27182818284\n", "string"),
        ('type: api_key\nurl: https://h\nname: k\nvalue: "kéy\\t12345"\n', "control"),
    ],
)
def test_invalid_secret_field_error_does_not_echo_the_value(
    text: str, expected: str, tmp_path: Path
) -> None:
    status, written = _check(tmp_path, text)

    assert status == 2
    assert expected in written
    for secret in (
        "secret-token-x",
        "31415926535",
        "s3cr3t-pw",
        "27182818284",
        "12345",
    ):
        assert secret not in written


def test_short_api_key_is_refused_as_unmaskable(tmp_path: Path) -> None:
    status, written = _check(
        tmp_path, "type: api_key\nurl: https://h\nname: k\nvalue: abc\n"
    )

    assert status == 2
    assert "must be at least 4 characters long" in written
    assert "'abc'" not in written


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "type: basic\nurl: https://h\nusername: u\npasswrd: x\n",
            "unknown field 'passwrd' (did you mean 'password'?)",
        ),
        (
            "url: https://h\nusername: u\n",
            "field 'username' is not allowed on an http connection "
            "(it belongs to type basic: set type: basic)",
        ),
        (
            "type: bearer\nurl: https://h\ntoken: abcdef\nin: header\n",
            "field 'in' is not allowed on a bearer connection "
            "(it belongs to type api_key: set type: api_key)",
        ),
        (
            "type: api_key\nurl: https://h\nname: k\nvalue: abcdef\nin: body\n",
            "expected one of 'header', 'query', got 'body'",
        ),
        (
            "type: basic\nurl: https://h\nusername: 'a:b'\npassword: x\n",
            "must match the pattern",
        ),
        ("type: basik\nurl: https://h\n", "(did you mean 'basic'?)"),
    ],
)
def test_static_connection_invalid_field_is_named_with_a_hint(
    text: str, expected: str, tmp_path: Path
) -> None:
    status, written = _check(tmp_path, text)

    assert status == 2
    assert expected in written


def test_connection_without_type_is_still_inferred_from_token_url(
    tmp_path: Path,
) -> None:
    """`type` selects the new types; the old inference is unchanged."""
    status, written = _check(tmp_path, "url: https://h\ntoken: abcdef\n")

    assert status == 2
    assert "it belongs to type bearer: set type: bearer" in written
    status, written = _check(
        tmp_path, "url: https://h\ntoken_url: https://h/t\nclient_id: a\n"
    )
    assert "missing required field 'client_secret'" in written

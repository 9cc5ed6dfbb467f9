"""The demo API over real loopback sockets, the examples, and `runner demo`.

The runner's own end-to-end tests (sending, tokens) use this server too; here
it is checked on its own, with a bare httpx client, so that a failure there
points at the runner and not at its counterpart.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote_plus

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.demo import demo_command, find_examples
from runner.demo.server import DemoServer
from runner.demo.store import BILLING_CLIENT, CRM_CLIENT
from runner.running import RunOptions

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCHEMAS = ROOT / "schemas"
SCHEMA_COMMENT = "# yaml-language-server: $schema="


def basic(client_id: str, client_secret: str) -> str:
    """An RFC 6749 section 2.3.1 Basic credential: each half form-urlencoded."""
    joined = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    return "Basic " + base64.b64encode(joined.encode()).decode("ascii")


def fetch_token(client: httpx.Client, server: DemoServer, **form: str) -> str:
    headers = {"Authorization": basic(server.client_id, server.client_secret)}
    data = {"grant_type": "client_credentials", **form}
    response = client.post(server.token_url, data=data, headers=headers)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert isinstance(token, str)
    return token


@pytest.fixture
def server() -> Iterator[DemoServer]:
    with DemoServer(token_lifetime=30) as demo:
        yield demo


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as http:
        yield http


@pytest.fixture
def api(server: DemoServer, client: httpx.Client) -> httpx.Client:
    """The shared client, with a valid bearer token on every request."""
    client.headers["Authorization"] = f"Bearer {fetch_token(client, server)}"
    return client


class TestTokenEndpoint:
    def test_token_basic_auth_issues_a_bearer_token(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        headers = {"Authorization": basic(server.client_id, server.client_secret)}
        data = {"grant_type": "client_credentials"}
        response = client.post(server.token_url, data=data, headers=headers)

        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 30
        assert len(body["access_token"]) >= 32
        assert body["scope"] == "customers invoices"
        assert server.tokens_issued == 1

    def test_token_post_auth_issues_a_bearer_token(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        data = {
            "grant_type": "client_credentials",
            "client_id": server.crm_client_id,
            "client_secret": server.crm_client_secret,
        }
        response = client.post(server.token_url, data=data)

        assert response.status_code == 200
        assert response.json()["scope"] == "customers"

    def test_token_basic_auth_without_urlencoding_is_invalid_client(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        """The demo secrets hold "+" and "/": raw Basic credentials do not match."""
        data = {"grant_type": "client_credentials"}
        auth = (server.client_id, server.client_secret)
        response = client.post(server.token_url, data=data, auth=auth)

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"

    @pytest.mark.parametrize("how", ["basic", "post"])
    def test_token_wrong_secret_is_invalid_client_401(
        self, server: DemoServer, client: httpx.Client, how: str
    ) -> None:
        data = {"grant_type": "client_credentials"}
        headers = {}
        if how == "basic":
            headers["Authorization"] = basic(server.client_id, "wrong")
        else:
            data |= {"client_id": server.client_id, "client_secret": "wrong"}
        response = client.post(server.token_url, data=data, headers=headers)

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="runner-demo"'
        assert response.json()["error"] == "invalid_client"
        assert server.tokens_issued == 0

    @pytest.mark.parametrize(
        ("form", "status", "error"),
        [
            ({"grant_type": "password"}, 400, "unsupported_grant_type"),
            ({}, 400, "invalid_request"),
            (
                {"grant_type": "client_credentials", "scope": "admin"},
                400,
                "invalid_scope",
            ),
        ],
    )
    def test_token_bad_request_is_an_rfc6749_error(
        self,
        server: DemoServer,
        client: httpx.Client,
        form: dict[str, str],
        status: int,
        error: str,
    ) -> None:
        headers = {"Authorization": basic(server.client_id, server.client_secret)}
        response = client.post(server.token_url, data=form, headers=headers)

        assert response.status_code == status
        assert response.json()["error"] == error
        assert "error_description" in response.json()

    def test_token_repeated_parameter_is_invalid_request(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        headers = {
            "Authorization": basic(server.client_id, server.client_secret),
            "Content-Type": "application/x-www-form-urlencoded",
        }
        content = "grant_type=client_credentials&grant_type=client_credentials"
        response = client.post(server.token_url, content=content, headers=headers)

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_token_scope_narrows_what_the_token_opens(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        token = fetch_token(client, server, scope="customers")
        headers = {"Authorization": f"Bearer {token}"}
        response = client.get(f"{server.api_url}/invoices", headers=headers)

        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


class TestBearerTokens:
    def test_api_without_token_is_401_with_bearer_challenge(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        response = client.get(f"{server.api_url}/health")

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")

    def test_api_unknown_token_is_401_invalid_token(
        self, server: DemoServer, client: httpx.Client
    ) -> None:
        headers = {"Authorization": "Bearer not-a-token"}
        response = client.get(f"{server.api_url}/health", headers=headers)

        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        assert response.json()["error"] == "invalid_token"

    def test_api_expired_token_is_401(self, client: httpx.Client) -> None:
        with DemoServer(token_lifetime=0.3) as server:
            token = fetch_token(client, server)
            headers = {"Authorization": f"Bearer {token}"}
            url = f"{server.api_url}/health"
            assert client.get(url, headers=headers).status_code == 200

            time.sleep(0.4)
            response = client.get(url, headers=headers)

        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"

    def test_token_expiry_follows_the_injected_clock(
        self, client: httpx.Client
    ) -> None:
        now = [100.0]
        with DemoServer(token_lifetime=2, clock=lambda: now[0]) as server:
            headers = {"Authorization": f"Bearer {fetch_token(client, server)}"}
            url = f"{server.api_url}/health"

            now[0] = 101.999
            before = client.get(url, headers=headers).status_code
            now[0] = 102.0
            after = client.get(url, headers=headers).status_code

        assert (before, after) == (200, 401)

    def test_revoke_tokens_makes_the_api_refuse_them(
        self, server: DemoServer, api: httpx.Client
    ) -> None:
        server.revoke_tokens()

        assert api.get(f"{server.api_url}/health").status_code == 401


class TestInvoices:
    def test_invoice_crud_flow(self, server: DemoServer, api: httpx.Client) -> None:
        base = f"{server.api_url}/invoices"

        created = api.post(base, json={"customer": "acme", "amount": 10})
        assert created.status_code == 201
        invoice = created.json()
        assert invoice == {
            "id": invoice["id"],
            "customer": "acme",
            "amount": 10,
            "status": "open",
        }
        assert created.headers["Location"] == f"/api/invoices/{invoice['id']}"
        one = f"{base}/{invoice['id']}"

        assert api.get(one).json() == invoice
        patched = api.patch(one, json={"status": "paid", "amount": 12.5})
        assert patched.status_code == 200
        assert patched.json() | {} == invoice | {"status": "paid", "amount": 12.5}

        deleted = api.delete(one)
        assert deleted.status_code == 204
        assert deleted.content == b""
        missing = api.get(one)
        assert missing.status_code == 404
        assert missing.json()["error"] == "not_found"

    def test_invoice_list_filters_by_customer(
        self, server: DemoServer, api: httpx.Client
    ) -> None:
        base = f"{server.api_url}/invoices"
        for customer in ("acme", "globex", "acme"):
            api.post(base, json={"customer": customer, "amount": 1})

        listed = api.get(base, params={"customer": "acme"}).json()

        assert listed["count"] == 2
        assert {item["customer"] for item in listed["invoices"]} == {"acme"}
        assert api.get(base).json()["count"] == 3

    @pytest.mark.parametrize(
        "content",
        [
            b"{not json",
            b"[1, 2]",
            b'{"customer": "acme"}',
            b'{"customer": "a", "amount": -1}',
            b'{"customer": "a", "amount": NaN}',
            b'{"customer": "a", "amount": 1, "x": 2}',
        ],
    )
    def test_invoice_bad_body_is_400(
        self, server: DemoServer, api: httpx.Client, content: bytes
    ) -> None:
        headers = {"Content-Type": "application/json"}
        response = api.post(
            f"{server.api_url}/invoices", content=content, headers=headers
        )

        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"

    def test_invoice_wrong_method_is_405_with_allow(
        self, server: DemoServer, api: httpx.Client
    ) -> None:
        response = api.put(f"{server.api_url}/invoices", json={})

        assert response.status_code == 405
        assert response.headers["Allow"] == "GET, POST"

    def test_customer_view_sums_open_invoices(
        self, server: DemoServer, api: httpx.Client
    ) -> None:
        base = f"{server.api_url}/invoices"
        api.post(base, json={"customer": "globex", "amount": 250})
        paid = api.post(base, json={"customer": "globex", "amount": 5}).json()
        api.patch(f"{base}/{paid['id']}", json={"status": "paid"})

        response = api.get(f"{server.api_url}/customers/globex")

        assert response.json() == {
            "name": "globex",
            "invoices": 2,
            "open_invoices": 1,
            "balance": 250,
        }
        assert api.get(f"{server.api_url}/customers/nobody").status_code == 404

    def test_unknown_route_is_404(self, server: DemoServer, api: httpx.Client) -> None:
        assert api.get(f"{server.api_url}/nothing/here").status_code == 404
        assert api.get(f"{server.url}/elsewhere").status_code == 404


class TestConnections:
    def test_keep_alive_serves_many_requests_on_one_connection(
        self, server: DemoServer, api: httpx.Client
    ) -> None:
        peers = set()
        for _ in range(300):
            response = api.get(f"{server.api_url}/health")
            assert response.json() == {"status": "ok"}
            stream = response.extensions["network_stream"]
            peers.add(stream.get_extra_info("socket").getsockname())

        assert len(peers) == 1

    def test_close_refuses_connections_afterwards(self, client: httpx.Client) -> None:
        server = DemoServer().start()
        port = server.port
        assert client.get(f"{server.url}/api/health").status_code == 401

        started = time.monotonic()
        server.close()
        server.close()

        assert time.monotonic() - started < 2
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            pass

    def test_close_ends_idle_keep_alive_connections(self) -> None:
        server = DemoServer().start()
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: demo\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 401")

            server.close()

            assert sock.recv(65536) == b""

    def test_server_writes_nothing_to_stderr(
        self, capfd: pytest.CaptureFixture[str], server: DemoServer, api: httpx.Client
    ) -> None:
        api.get(f"{server.api_url}/health")
        api.post(f"{server.api_url}/invoices", content=b"{")
        httpx.get(f"{server.api_url}/health")

        assert capfd.readouterr().err == ""

    def test_token_lifetime_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="token_lifetime"):
            DemoServer(token_lifetime=0)


def example_files() -> list[Path]:
    return sorted(
        path
        for path in EXAMPLES.rglob("*")
        if path.suffix in {".yaml", ".yml", ".json"}
    )


def load_example(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def schema_kind(document: Mapping[str, Any]) -> str:
    return "suite" if "requests" in document else "connection"


class TestExamples:
    def test_examples_include_the_expected_files(self) -> None:
        names = {path.relative_to(EXAMPLES).as_posix() for path in example_files()}

        assert {
            "catalogue/http_oauth2.json",
            "connections/billing.yaml",
            "connections/customers.yaml",
            "suites/invoices.yaml",
            "suites/two_connections.yaml",
        } <= names

    @pytest.mark.parametrize("path", example_files(), ids=lambda path: path.name)
    def test_example_validates_against_the_exported_schema(self, path: Path) -> None:
        """As an editor would: a plain 2020-12 validator, no runner code."""
        document = load_example(path)
        schema_path = SCHEMAS / f"{schema_kind(document)}.schema.json"
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)

        errors = [
            error.message
            for error in Draft202012Validator(schema).iter_errors(document)
        ]

        assert errors == []

    @pytest.mark.parametrize(
        "path",
        [path for path in example_files() if path.suffix != ".json"],
        ids=lambda path: path.name,
    )
    def test_example_yaml_names_its_schema_for_editors(self, path: Path) -> None:
        first_line = path.read_text(encoding="utf-8").splitlines()[0]
        assert first_line.startswith(SCHEMA_COMMENT)

        target = (path.parent / first_line.removeprefix(SCHEMA_COMMENT)).resolve()
        expected = SCHEMAS / f"{schema_kind(load_example(path))}.schema.json"
        assert target == expected.resolve()

    def test_catalogue_example_is_the_spec_json_unchanged(self) -> None:
        document = load_example(EXAMPLES / "catalogue" / "http_oauth2.json")

        assert document == {
            "url": "https://api.example.com/oauth2",
            "client_id": "client_id_value",
            "client_secret": "client_secret_value",
            "token_url": "https://auth.example.com/token",
            "headers": {},
            "method": "GET",
            "body": None,
            "verify_ssl": True,
        }

    def test_example_connections_read_only_variables_the_demo_sets(
        self, server: DemoServer
    ) -> None:
        env_names = set(server.environment())
        var_names = set(server.variables())
        for path in (EXAMPLES / "connections").glob("*.yaml"):
            text = path.read_text(encoding="utf-8")
            used_env = {word.split()[0] for word in text.split("env.")[1:]}
            used_vars = set(re.findall(r"\{\{ (demo_\w+)", text))
            assert used_env <= env_names, path.name
            assert used_vars <= var_names, path.name


class FakeRunning:
    """Stands in for `runner.running.execute`, recording what the demo passes."""

    def __init__(self, status: int = 0) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []
        self.reachable: list[int] = []

    def execute(self, options: RunOptions, *, out: TextIO, err: TextIO) -> int:
        env, variables = options.env, options.variables
        self.calls.append(
            {
                "paths": list(options.paths),
                "env": dict(env),
                "variables": dict(variables),
                "concurrency": options.concurrency,
                "color": options.color,
            }
        )
        data = {
            "grant_type": "client_credentials",
            "client_id": variables["demo_crm_client_id"],
            "client_secret": env["RUNNER_DEMO_CRM_CLIENT_SECRET"],
        }
        token = httpx.post(variables["demo_token_url"], data=data).json()[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        health = httpx.get(variables["demo_api_url"] + "/health", headers=headers)
        self.reachable.append(health.status_code)
        return self.status


@pytest.fixture
def fake_running(monkeypatch: pytest.MonkeyPatch) -> FakeRunning:
    fake = FakeRunning()
    module = types.ModuleType("runner.running")
    module.execute = fake.execute  # type: ignore[attr-defined]
    module.RunOptions = RunOptions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "runner.running", module)
    return fake


def demo_args(**values: Any) -> argparse.Namespace:
    return argparse.Namespace(**({"examples": None, "no_color": False} | values))


class TestDemoCommand:
    def test_demo_runs_the_examples_against_a_live_server(
        self, fake_running: FakeRunning
    ) -> None:
        out, err = io.StringIO(), io.StringIO()

        status = demo_command(demo_args(no_color=True), out=out, err=err)

        assert status == 0
        assert fake_running.reachable == [200]
        (call,) = fake_running.calls
        assert call["paths"] == [EXAMPLES]
        assert call["color"] is False
        assert call["variables"]["demo_api_url"].startswith("http://127.0.0.1:")
        first_line = out.getvalue().splitlines()[0]
        assert first_line.startswith("demo API on http://127.0.0.1:")
        assert first_line.endswith("(token lifetime 2 s)")

    def test_demo_returns_the_run_status_and_stops_the_server(
        self, fake_running: FakeRunning
    ) -> None:
        fake_running.status = 1
        out = io.StringIO()

        status = demo_command(demo_args(), out=out, err=io.StringIO())

        assert status == 1
        api_url = fake_running.calls[0]["variables"]["demo_api_url"]
        with pytest.raises(httpx.ConnectError):
            httpx.get(api_url + "/health", timeout=1)

    def test_demo_without_examples_folder_exits_2(
        self, tmp_path: Path, fake_running: FakeRunning
    ) -> None:
        err = io.StringIO()

        status = demo_command(
            demo_args(examples=tmp_path / "absent"), out=io.StringIO(), err=err
        )

        assert status == 2
        assert "absent" in err.getvalue()
        assert fake_running.calls == []

    def test_demo_finds_the_checkout_examples(self) -> None:
        assert find_examples() == EXAMPLES

    def test_import_of_runner_demo_stays_light(self) -> None:
        code = (
            "import sys, runner.demo; "
            "heavy = {'httpx', 'http.server', 'runner.running'} & set(sys.modules); "
            "sys.exit(sorted(heavy) or 0)"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


def test_demo_end_to_end_passes_every_example() -> None:
    """The real `runner demo`: every example request passes, no secret shows."""
    pytest.importorskip(
        "runner.running", reason="the runner's sending is not there yet"
    )
    out, err = io.StringIO(), io.StringIO()

    status = demo_command(demo_args(no_color=True), out=out, err=err)

    output = out.getvalue() + err.getvalue()
    assert status == 0, output
    for secret in (BILLING_CLIENT.client_secret, CRM_CLIENT.client_secret):
        assert secret not in output
        assert quote_plus(secret) not in output

"""The loader (`runner.loading`): every bad-input case located, good input loaded.

The parser's own cases are in `test_yamlsource.py`; the printed form of the
errors and the exit status of `runner check` are in `test_check_command.py`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from runner.connections import HttpConnection, OAuth2Connection
from runner.errors import InputError
from runner.loading import (
    LoadedConnection,
    LoadResult,
    load_paths,
    parse_var_options,
    read_env_files,
)
from runner.secrets import Redactor
from runner.templates import Templates

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).parent / "broken"
EXAMPLES = ROOT / "examples"

# SPEC.md, "Connection files": the catalogue's own example, unchanged.
CATALOGUE_EXAMPLE = {
    "url": "https://api.example.com/oauth2",
    "client_id": "client_id_value",
    "client_secret": "client_secret_value",
    "token_url": "https://auth.example.com/token",
    "headers": {},
    "method": "GET",
    "body": None,
    "verify_ssl": True,
}


def load(
    *paths: Path,
    env: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    for_run: bool = False,
    redactor: Redactor | None = None,
) -> LoadResult:
    redactor = redactor or Redactor()
    environment = dict(env or {})
    return load_paths(
        list(paths),
        env=environment,
        variables=dict(variables or {}),
        redactor=redactor,
        templates=Templates(environment, redactor),
        for_run=for_run,
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def only_error(result: LoadResult) -> InputError:
    assert len(result.errors) == 1, [error.render() for error in result.errors]
    return result.errors[0]


def where(error: InputError) -> tuple[int, int]:
    assert error.location is not None
    return error.location.line, error.location.column


# Each broken fixture, the position of its one error, and what it says.
BROKEN_CASES = [
    ("syntax.yaml", (2, 7), "YAML syntax error: did not find expected ',' or ']'"),
    ("tabs.yaml", (3, 1), "tab used for indentation; indent YAML with spaces"),
    ("two_documents.yaml", (2, 1), "several YAML documents in one file"),
    ("duplicate_key.yaml", (3, 1), "duplicate key 'url' (first at line 1)"),
    ("duplicate_key.json", (3, 3), "duplicate key 'url' (first at line 2)"),
    ("top_list.yaml", (1, 1), "the top level must be a mapping, got a list"),
    ("empty.yaml", (1, 1), "the file is empty"),
    ("comments_only.yaml", (1, 1), "the file is empty"),
    ("wrong_type.yaml", (2, 13), "expected true or false, got 'maybe'"),
    ("negative_timeout.yaml", (2, 10), "must be greater than 0, got -5"),
    ("absurd_repeat.yaml", (5, 13), "must be at most 10000, got 100000000"),
    ("unknown_field.yaml", (2, 1), "unknown field 'metod' (did you mean 'method'?)"),
    ("missing_required.yaml", (1, 1), "missing required field 'client_secret'"),
    (
        "invalid_url.yaml",
        (1, 6),
        "invalid URL 'htp//api.example.com': relative URL without a base",
    ),
    ("invalid_method.yaml", (2, 9), "expected one of 'GET', 'POST', 'PUT'"),
    (
        "missing_connection.yaml",
        (1, 13),
        "connection file '../connections/nowhere.yaml' not found",
    ),
    ("folder_connection.yaml", (1, 13), "connection '.' is a folder"),
    ("loop_a.yaml", (1, 13), "connection 'loop_b.yaml' is a suite file"),
    (
        "undefined_connection.yaml",
        (6, 17),
        "undefined connection 'biling' (did you mean 'billing'?)",
    ),
    (
        "undefined_variable.yaml",
        (5, 10),
        "undefined variable 'custmer' (did you mean 'customer'?)",
    ),
    ("template_syntax.yaml", (3, 10), "template syntax error: unexpected end"),
    ("that_syntax.yaml", (6, 11), "expression syntax error"),
    ("capture_syntax.yaml", (5, 16), "expression syntax error"),
    ("sandbox.yaml", (1, 6), "sandbox violation: access to attribute '__class__'"),
    ("schema_invalid.yaml", (8, 22), "not a valid JSON Schema: 12 is not valid"),
    ("schema_missing.yaml", (5, 15), "schemas/nothing.json' not found"),
    ("alias_bomb.yaml", (8, 10), "aliases expand to more than 10000 values"),
    ("deep.yaml", (2, 70), "nesting deeper than 64 levels"),
    ("binary.yaml", (2, 7), "binary file (NUL byte)"),
    ("latin1.yaml", (3, 14), "not UTF-8 text (invalid byte 0xe9)"),
    ("trailing_comma.json", (3, 18), "trailing comma before '}'"),
    ("nan.json", (3, 14), "NaN and Infinity are not JSON"),
]


class TestBrokenFiles:
    @pytest.mark.parametrize(
        ("name", "position", "message"), BROKEN_CASES, ids=[c[0] for c in BROKEN_CASES]
    )
    def test_broken_file_has_one_located_error(
        self, name: str, position: tuple[int, int], message: str
    ) -> None:
        error = only_error(load(BROKEN / name))

        assert message in error.message
        assert where(error) == position
        assert error.location is not None
        assert error.location.file == str(BROKEN / name)

    def test_every_fixture_is_in_the_table(self) -> None:
        listed = {case[0] for case in BROKEN_CASES} | {"loop_b.yaml"}
        assert listed == {path.name for path in BROKEN.iterdir() if path.is_file()}

    def test_loop_names_the_cycle(self) -> None:
        error = only_error(load(BROKEN / "loop_a.yaml"))

        assert error.message.endswith("uses this suite as its connection: a loop)")

    def test_suite_that_is_its_own_connection(self, tmp_path: Path) -> None:
        path = write(tmp_path, "s.yaml", "connection: s.yaml\nrequests: [{url: a}]\n")

        error = only_error(load(path))

        assert error.message == "connection 's.yaml' is this suite itself (a loop)"
        assert where(error) == (1, 13)

    def test_file_too_large(self, tmp_path: Path) -> None:
        path = tmp_path / "big.yaml"
        path.write_text("url: https://h\nbody: '" + "x" * (1024 * 1024) + "'\n")

        error = only_error(load(path))

        assert error.message.startswith("file too large")
        assert where(error) == (1, 1)

    def test_missing_path_argument(self, tmp_path: Path) -> None:
        error = only_error(load(tmp_path / "nothing.yaml"))

        assert error.message == "no such file or folder"


class TestConnectionValidation:
    def test_catalogue_example_loads_unchanged(self, tmp_path: Path) -> None:
        catalogue = EXAMPLES / "catalogue" / "http_oauth2.json"
        if catalogue.exists():
            assert json.loads(catalogue.read_text()) == CATALOGUE_EXAMPLE
        else:
            catalogue = write(tmp_path, "c.json", json.dumps(CATALOGUE_EXAMPLE))

        result = load(catalogue)

        assert result.errors == []
        (connection,) = result.connections.values()
        model = connection.model
        assert isinstance(model, OAuth2Connection)
        assert str(model.url) == "https://api.example.com/oauth2"
        assert model.client_secret.get_secret_value() == "client_secret_value"
        assert model.method == "GET" and model.verify_ssl and model.body is None

    def test_all_errors_of_a_file_are_reported(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "c.yaml",
            "url: https://h\ntoken_url: https://t\nclient_id: 3\n"
            "metod: GET\ntimeout: abc\nverify_ssl: 'no'\n",
        )

        result = load(path)

        messages = {(where(e), e.message) for e in result.errors}
        assert messages == {
            ((1, 1), "missing required field 'client_secret'"),
            ((3, 12), "expected a string, got 3"),
            ((4, 1), "unknown field 'metod' (did you mean 'method'?)"),
            ((5, 10), "expected a number, got 'abc'"),
            ((6, 13), "expected true or false, got 'no'"),
        }
        assert [where(e) for e in result.errors] == sorted(
            where(e) for e in result.errors
        )

    def test_unknown_type_suggests_the_closest(self, tmp_path: Path) -> None:
        path = write(tmp_path, "c.yaml", "type: oauth3\nurl: https://h\n")

        error = only_error(load(path))

        assert error.message == (
            "expected one of 'http', 'oauth2', 'basic', 'bearer', 'api_key', "
            "got 'oauth3' (did you mean 'oauth2'?)"
        )
        assert where(error) == (1, 7)

    def test_oauth2_field_on_http_connection_says_why(self, tmp_path: Path) -> None:
        path = write(tmp_path, "c.yaml", "url: https://h\nclient_id: x\n")

        error = only_error(load(path))

        assert "not allowed on an http connection" in error.message
        assert "add token_url" in error.message

    def test_secret_field_value_is_never_echoed(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "c.yaml",
            "url: https://h\ntoken_url: https://t\nclient_id: x\n"
            "client_secret: [hunter2-literal]\n",
        )

        error = only_error(load(path))

        assert error.message == "expected a string"
        assert error.location is not None and error.location.path == ("client_secret",)
        assert "hunter2" not in error.render()

    def test_token_url_scheme(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "c.yaml",
            "url: https://h\ntoken_url: ftp://t\nclient_id: x\nclient_secret: abcd\n",
        )

        error = only_error(load(path))

        assert error.message.startswith("invalid URL 'ftp://t': URL scheme should be")
        assert where(error) == (2, 12)

    def test_templated_value_is_shown_as_written(self, tmp_path: Path) -> None:
        """A value rendered from env may be secret: the message shows the template."""
        path = write(tmp_path, "c.yaml", "url: '{{ env.API_URL }}'\n")

        error = only_error(load(path, env={"API_URL": "htp//secret-host"}))

        assert "secret-host" not in error.render()
        assert "rendered from '{{ env.API_URL }}'" in error.message
        assert where(error) == (1, 6)

    def test_undefined_env_variable_is_located(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, "c.yaml", "url: https://h\nheaders:\n  X: '{{ env.NOPE }}'\n"
        )

        error = only_error(load(path))

        assert (
            error.message == "undefined variable 'env.NOPE': not set in the environment"
        )
        assert where(error) == (3, 6)

    def test_connection_renders_env(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, "c.yaml", "url: '{{ env.API_URL }}/v1'\ntimeout: '{{ 5 }}'\n"
        )

        result = load(path, env={"API_URL": "https://api.example.com"})

        assert result.errors == []
        (connection,) = result.connections.values()
        assert isinstance(connection.model, HttpConnection)
        assert str(connection.model.url) == "https://api.example.com/v1"
        assert connection.model.timeout == 5
        assert connection.name == "c"
        assert connection.key == str(path.resolve())


SUITE = """\
connection: {url: https://api.example.com}
vars:
  customer: acme
requests:
"""


class TestSuites:
    def test_examples_all_load(self) -> None:
        if not EXAMPLES.is_dir():
            pytest.skip("examples/ is not written yet")

        result = load(EXAMPLES)

        assert [error.render() for error in result.errors] == []
        assert result.files_checked == len(
            [p for p in EXAMPLES.rglob("*") if p.suffix in {".yaml", ".yml", ".json"}]
        )
        assert result.suites

    def test_requests_are_loaded_with_captures_and_uses(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            SUITE
            + "  - url: items\n    capture: {item_id: response.json.id}\n"
            + "  - url: 'items/{{ item_id }}/{{ customer }}'\n"
            + "    expect: {that: ['response.json.id == item_id']}\n",
        )

        result = load(path)

        assert result.errors == []
        (suite,) = result.suites
        first, second = suite.requests
        assert set(first.captures) == {"item_id"}
        assert first.uses == frozenset()
        assert second.uses == frozenset({"item_id"})
        assert second.location.line == 7
        assert first.connection is second.connection
        assert first.connection.key == f"{path.resolve()}#connection"
        assert suite.variables == {"customer": "acme"}

    def test_capture_of_a_later_request_is_undefined(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            SUITE
            + "  - url: 'items/{{ item_id }}'\n"
            + "  - url: items\n    capture: {item_id: response.json.id}\n",
        )

        error = only_error(load(path))

        assert error.message == (
            "undefined variable 'item_id' "
            "(captured by request 2, too late for this one)"
        )
        assert where(error) == (5, 10)

    def test_undefined_names_in_that_capture_and_body(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            SUITE
            + "  - url: items\n"
            + "    body: {a: ['{{ nope1 }}']}\n"
            + "    expect:\n      that: [response.status == nope2]\n"
            + "    capture: {x: 'response.json[nope3]'}\n",
        )

        result = load(path)

        found = [(where(e), e.message) for e in result.errors]
        assert found == [
            ((6, 16), "undefined variable 'nope1'"),
            ((8, 14), "undefined variable 'nope2'"),
            ((9, 18), "undefined variable 'nope3'"),
        ]

    def test_var_option_overrides_and_defines(self, tmp_path: Path) -> None:
        path = write(
            tmp_path, "s.yaml", SUITE + "  - url: '{{ customer }}/{{ extra }}'\n"
        )

        result = load(path, variables={"customer": "globex", "extra": "1"})

        assert result.errors == []
        assert result.suites[0].variables == {"customer": "globex", "extra": "1"}

    def test_vars_render_over_env_and_feed_inline_connections(
        self, tmp_path: Path
    ) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "connection: {url: '{{ base }}'}\nvars:\n  base: '{{ env.BASE }}'\n"
            "requests: [{url: items}]\n",
        )

        result = load(path, env={"BASE": "https://api.example.com/v2"})

        assert result.errors == []
        suite = result.suites[0]
        assert suite.variables == {"base": "https://api.example.com/v2"}
        assert (
            str(suite.requests[0].connection.model.url) == "https://api.example.com/v2"
        )

    def test_suite_without_connection(self, tmp_path: Path) -> None:
        path = write(tmp_path, "s.yaml", "requests: [{url: https://h/x}]\n")

        error = only_error(load(path))

        assert error.message.startswith("a suite needs a `connection`")
        assert where(error) == (1, 1)

    def test_request_naming_a_connection_of_a_single_connection_suite(
        self, tmp_path: Path
    ) -> None:
        path = write(tmp_path, "s.yaml", SUITE + "  - url: a\n    connection: other\n")

        error = only_error(load(path))

        assert "this suite has a single `connection`" in error.message
        assert where(error) == (6, 17)

    def test_several_connections_and_no_choice(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "connections:\n  a: {url: https://a}\n  b: {url: https://b}\n"
            "requests:\n  - url: x\n",
        )

        error = only_error(load(path))

        assert error.message == "name this request's connection: one of 'a', 'b'"
        assert where(error) == (5, 5)

    def test_unknown_field_in_inline_connection(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            "connection:\n  url: https://h\n  metod: GET\nrequests: [{url: a}]\n",
        )

        error = only_error(load(path))

        assert error.message == "unknown field 'metod' (did you mean 'method'?)"
        assert where(error) == (3, 3)

    def test_wrong_types_in_requests_are_all_reported(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "s.yaml",
            SUITE
            + "  - method: GETT\n    expect: {status: abc}\n"
            + "  - expect: {status: 99, stauts: 1}\n    delay: -5\n"
            + "  - 5\n",
        )

        result = load(path)

        found = [(where(e), e.message) for e in result.errors]
        assert found == [
            (
                (5, 13),
                "expected one of 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', "
                "'OPTIONS', got 'GETT' (did you mean 'GET'?)",
            ),
            ((6, 22), "expected an integer, a list or null, got 'abc'"),
            ((7, 22), "must be at least 100, got 99"),
            ((7, 26), "unknown field 'stauts' (did you mean 'status'?)"),
            ((8, 12), "must be at least 0, got -5"),
            ((9, 5), "expected a mapping, got 5"),
        ]
        assert result.errors[1].render().endswith("(at requests[0].expect.status)")

    def test_expect_schema_file_is_loaded_relative_to_the_suite(
        self, tmp_path: Path
    ) -> None:
        write(tmp_path, "suites/schemas/item.json", '{"type": "object"}')
        path = write(
            tmp_path,
            "suites/s.yaml",
            SUITE + "  - url: a\n    expect: {schema: schemas/item.json}\n",
        )

        assert load(path).errors == []

    def test_invalid_schema_file_is_located_in_that_file(self, tmp_path: Path) -> None:
        schema = write(tmp_path, "item.json", '{\n  "type": "objekt"\n}')
        path = write(tmp_path, "s.yaml", SUITE + "  - expect: {schema: item.json}\n")

        error = only_error(load(path))

        assert error.message.startswith("not a valid JSON Schema")
        assert error.location is not None
        assert error.location.file == str(schema)
        assert where(error) == (2, 11)

    def test_connection_file_shared_by_suites(self, tmp_path: Path) -> None:
        write(tmp_path, "connections/api.yaml", "url: https://h\n")
        for name in ("a", "b"):
            write(
                tmp_path,
                f"suites/{name}.yaml",
                "connection: ../connections/api.yaml\nrequests: [{url: x}]\n",
            )

        result = load(tmp_path / "suites", for_run=True)

        assert result.errors == []
        first, second = (suite.requests[0].connection for suite in result.suites)
        assert first is second
        assert list(result.connections) == [
            str((tmp_path / "connections/api.yaml").resolve())
        ]
        assert first.name == "api"

    def test_broken_connection_file_is_reported_once_in_its_file(
        self, tmp_path: Path
    ) -> None:
        connection = write(tmp_path, "c.yaml", "url: https://h\nmetod: GET\n")
        for name in ("a", "b"):
            write(
                tmp_path, f"{name}.yaml", "connection: c.yaml\nrequests: [{url: x}]\n"
            )

        result = load(tmp_path)

        error = only_error(result)
        assert error.location is not None and error.location.file == str(connection)
        assert result.files_checked == 3


class TestRunSelection:
    def test_folder_runs_only_suites(self, tmp_path: Path) -> None:
        write(tmp_path, "c.yaml", "url: https://h\n")
        write(tmp_path, "unused.yaml", "url: https://unused\n")
        write(tmp_path, "s.yaml", "connection: c.yaml\nrequests: [{url: x}]\n")

        result = load(tmp_path, for_run=True)

        assert [suite.name for suite in result.suites] == ["s"]
        assert [c.name for c in result.connections.values()] == ["c"]

    def test_named_connection_file_runs_as_one_request(self, tmp_path: Path) -> None:
        path = write(
            tmp_path,
            "ping.yaml",
            "url: https://h/ping\nmethod: POST\nbody: {ping: true}\n",
        )

        result = load(path, for_run=True)

        (suite,) = result.suites
        assert suite.is_bare_connection
        (request,) = suite.requests
        assert request.model.method == "POST"
        assert request.model.url == ""
        assert request.model.body == {"ping": True}
        assert isinstance(request.connection, LoadedConnection)

    def test_check_lists_every_file(self, tmp_path: Path) -> None:
        write(tmp_path, "c.yaml", "url: https://h\nmetod: x\n")
        write(tmp_path, ".hidden/x.yaml", "not: valid: yaml: [")

        result = load(tmp_path)

        assert result.files_checked == 1
        assert only_error(result).message.startswith("unknown field 'metod'")


class TestOptions:
    def test_env_files(self, tmp_path: Path) -> None:
        first = write(
            tmp_path,
            "a.env",
            '# comment\n\nA=1\nexport B = two words # note\nC=\'x # y\'\nD="q\\"n"\n',
        )
        second = write(tmp_path, "b.env", "A=override\n")

        values = read_env_files([first, second])

        assert values == {"A": "override", "B": "two words", "C": "x # y", "D": 'q"n'}

    def test_bad_env_line_is_located_without_its_value(self, tmp_path: Path) -> None:
        path = write(tmp_path, "a.env", "A=1\nthis is s3cret\n")

        with pytest.raises(InputError) as caught:
            read_env_files([path])

        assert where(caught.value) == (2, 1)
        assert "s3cret" not in caught.value.render()

    def test_missing_env_file(self, tmp_path: Path) -> None:
        with pytest.raises(InputError, match="no such file"):
            read_env_files([tmp_path / "none.env"])

    def test_var_options(self) -> None:
        assert parse_var_options(["a=1", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}

    @pytest.mark.parametrize("item", ["novalue", "1a=x", "=x", "a-b=x"])
    def test_bad_var_option(self, item: str) -> None:
        with pytest.raises(InputError, match="expected NAME=VALUE"):
            parse_var_options([item])


def test_connection_file_sees_var_options_but_not_the_suites_vars(
    tmp_path: Path,
) -> None:
    write(tmp_path, "api.yaml", 'url: "http://127.0.0.1:9/{{ area }}"\n')
    suite = write(
        tmp_path,
        "suite.yaml",
        "connection: api.yaml\nvars: {area: from-suite}\nrequests: [{url: x}]\n",
    )

    given = load(suite, variables={"area": "from-command-line"}, for_run=True)
    assert given.errors == []
    (connection,) = given.connections.values()
    assert str(connection.model.url) == "http://127.0.0.1:9/from-command-line"

    # The suite's own `vars` never reach the connection file.
    error = only_error(load(suite, for_run=True))
    assert "area" in error.message
    assert error.location.file.endswith("api.yaml")

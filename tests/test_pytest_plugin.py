"""The pytest plugin (runner.pytest_plugin), through pytest's own `pytester`.

Each test writes a project into a temporary folder (an ini file that opts
suite files in, a connection file, suites) and runs pytest on it: in this
process, so that the servers of tests/oauth_servers.py can count what they
received, or in a subprocess for pytest-xdist. Every inner run treats
warnings as errors, so an unknown marker would fail it. The same sending
code under ``runner run`` is tested in test_run_command.py.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

# Imported here so that pytester's in-process runs, which drop the modules
# they import, do not import the whole runner again each time.
import runner.pytest_items
import runner.pytest_session
from tests.oauth_servers import FixtureServer

pytest_plugins = ["pytester"]

SECRET_ENV = "RUNNER_PLUGIN_TEST_SECRET"

INI = """\
[pytest]
runner_suites =
    suites/*.yaml
filterwarnings = error
"""

CONNECTION = """\
url: {api_url}
token_url: {token_url}
client_id: {client_id}
client_secret: "{{{{ env.{secret_env} }}}}"
"""

# The fixture API answers 200 with {"ok": true, "path": ...} to a valid token.
CHAIN = """\
name: chain
connection: ../connection.yaml
tags: [smoke]
requests:
  - name: make
    url: things
    expect: {status: 200, json: {ok: true}}
    capture: {made: response.json.path}
  - name: use
    url: "seen{{ made }}"
    expect:
      that: ["response.json.path == '/api/seen/api/things'"]
  - url: health
    tags: [quick]
"""


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FixtureServer]:
    with FixtureServer() as fixture:
        monkeypatch.setenv(SECRET_ENV, fixture.client_secret)
        yield fixture


@pytest.fixture
def project(pytester: pytest.Pytester, server: FixtureServer) -> pytest.Pytester:
    """A project with the ini setting and a connection file to `server`."""
    pytester.makefile(".ini", pytest=INI)
    connection = CONNECTION.format(
        api_url=server.api_url,
        token_url=server.token_url,
        client_id=server.client_id,
        secret_env=SECRET_ENV,
    )
    _write(pytester.path, "connection.yaml", connection)
    return pytester


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _output(result: pytest.RunResult) -> str:
    return "\n".join([*result.outlines, *result.errlines])


def _node_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line]


def test_plugin_without_the_setting_collects_no_yaml(
    pytester: pytest.Pytester, server: FixtureServer
) -> None:
    _write(pytester.path, "suites/chain.yaml", CHAIN)

    result = pytester.runpytest("--collect-only", "-q")

    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert server.token_requests == server.api_requests == 0


def test_plugin_collects_only_suite_files_matching_the_patterns(
    project: pytest.Pytester,
) -> None:
    _write(project.path, "suites/chain.yaml", CHAIN)
    # Matches the pattern but is a connection file, not a suite: left alone.
    _write(project.path, "suites/other.yaml", "url: http://127.0.0.1:9/api\n")
    # A suite outside the patterns, and unrelated YAML.
    _write(project.path, "elsewhere/chain.yaml", CHAIN)
    _write(project.path, "suites/notes.txt", "requests: []\n")

    result = project.runpytest("--collect-only", "-q")

    assert result.ret == pytest.ExitCode.OK, _output(result)
    assert _node_ids(result) == [
        "suites/chain.yaml::make",
        "suites/chain.yaml::use",
        "suites/chain.yaml::GET health",
    ]


def test_plugin_names_repeated_requests_uniquely_in_suite_order(
    project: pytest.Pytester,
) -> None:
    _write(
        project.path,
        "suites/same.yaml",
        """\
        connection: ../connection.yaml
        requests:
          - {name: read, url: a}
          - {url: b}
          - {name: read, url: c}
          - {name: read, url: d}
        """,
    )

    result = project.runpytest("--collect-only", "-q")

    assert _node_ids(result) == [
        "suites/same.yaml::read",
        "suites/same.yaml::GET b",
        "suites/same.yaml::read[2]",
        "suites/same.yaml::read[3]",
    ]


def test_plugin_suite_passes_with_captures_carried_between_items(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(project.path, "suites/chain.yaml", CHAIN)

    result = project.runpytest("-v")

    result.assert_outcomes(passed=3)
    assert server.api_requests == 3
    result.stdout.fnmatch_lines(["*1 connection, 1 token fetched*"])


def test_plugin_failure_reads_with_file_line_and_reason_and_skips_dependents(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(
        project.path, "suites/chain.yaml", CHAIN.replace("status: 200", "status: 201")
    )

    result = project.runpytest("-rfs")

    result.assert_outcomes(passed=1, failed=1, skipped=1)
    output = _output(result)
    result.stdout.fnmatch_lines(
        [
            "*_ chain > make _*",
            "suites/chain.yaml:5:5: chain > make: GET */api/things -> 200 in * ms",
            "    status: expected 201, got 200 (body: *)",
            "FAILED suites/chain.yaml::make - suites/chain.yaml:5:5: chain > make*",
            "SKIPPED [[]1[]] suites/chain.yaml:9: uses 'made', not captured: "
            "make did not pass",
        ]
    )
    assert "Traceback" not in output
    assert "runner/" not in output and "_pytest" not in output
    assert server.api_requests == 2


def test_plugin_k_deselecting_a_capturer_skips_its_users_with_the_reason(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(project.path, "suites/chain.yaml", CHAIN)

    result = project.runpytest("-rs", "-k", "not make")

    result.assert_outcomes(passed=1, skipped=1, deselected=1)
    result.stdout.fnmatch_lines(
        [
            "SKIPPED [[]1[]] suites/chain.yaml:9: uses 'made', not captured: "
            "make not selected in this pytest run"
        ]
    )
    assert server.api_requests == 1


def test_plugin_x_stops_after_the_first_failing_request(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(
        project.path,
        "suites/stop.yaml",
        """\
        connection: ../connection.yaml
        requests:
          - {url: a}
          - {url: forbidden}
          - {url: c}
        """,
    )

    result = project.runpytest("-x")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["    status: expected a 2xx status, got 403*"])
    assert server.api_requests == 2


def test_plugin_tags_are_markers_accepted_by_strict_markers(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(project.path, "suites/chain.yaml", CHAIN)
    _write(
        project.path,
        "suites/tagged.yaml",
        """\
        connection: ../connection.yaml
        requests:
          - {name: slow one, url: a, tags: [slow-path, skip, "two words"]}
          - {name: quick one, url: b, tags: [quick]}
        """,
    )

    quick = project.runpytest("--strict-markers", "-m", "quick")
    smoke = project.runpytest("--strict-markers", "-m", "smoke and not quick")
    # A tag named like one of pytest's own marks does not skip the request.
    other = project.runpytest("--strict-markers", "-m", "slow-path")

    quick.assert_outcomes(passed=2, deselected=3)
    smoke.assert_outcomes(passed=2, deselected=3)
    other.assert_outcomes(passed=1, deselected=4)
    assert server.api_requests == 5


def test_plugin_fetches_one_token_for_two_suite_files(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(project.path, "suites/one.yaml", CHAIN)
    _write(project.path, "suites/two.yaml", CHAIN.replace("chain", "again"))

    result = project.runpytest()

    result.assert_outcomes(passed=6)
    assert server.token_requests == 1
    assert server.api_requests == 6


@pytest.mark.parametrize("setting", ["option", "ini"])
def test_plugin_token_cache_serves_a_second_session_without_a_fetch(
    project: pytest.Pytester,
    server: FixtureServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str,
) -> None:
    """The same cache as ``runner run --token-cache``, per option or ini value."""
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    _write(project.path, "suites/one.yaml", CHAIN)
    args: list[str] = []
    if setting == "option":
        args.append("--runner-token-cache")
    else:
        project.makefile(".ini", pytest=INI + "runner_token_cache = true\n")

    first = project.runpytest(*args)
    second = project.runpytest(*args)

    first.assert_outcomes(passed=3)
    second.assert_outcomes(passed=3)
    assert server.token_requests == 1
    assert server.api_requests == 6
    files = [path for path in (tmp_path / "cache").rglob("*") if path.is_file()]
    assert files and all(path.stat().st_mode & 0o077 == 0 for path in files)
    output = _output(first) + _output(second)
    for token in server.issued:
        assert token not in output


def test_plugin_invalid_suite_file_is_a_clean_collection_error_sending_nothing(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(project.path, "suites/good.yaml", CHAIN)
    _write(
        project.path,
        "suites/bad.yaml",
        """\
        connection: ../connection.yaml
        requests:
          - url: "{{ nowhere }}"
            expect: {status: 9000}
            retyr: {times: 2}
        """,
    )

    result = project.runpytest()

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(errors=1)
    output = _output(result)
    assert re.search(r"^suites/bad\.yaml:4:\d+: .*9000", output, re.MULTILINE)
    assert re.search(r"^suites/bad\.yaml:5:\d+: .*retyr.*retry", output, re.M)
    assert "Traceback" not in output and "_pytest" not in output
    assert server.token_requests == server.api_requests == 0


def test_plugin_refuses_a_plain_http_token_url_off_loopback(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(
        project.path,
        "suites/far.yaml",
        """\
        connection:
          url: http://example.invalid/api
          token_url: http://example.invalid/token
          client_id: someone
          client_secret: "{{ env.RUNNER_PLUGIN_TEST_SECRET }}"
        requests: [{url: a}]
        """,
    )

    result = project.runpytest()

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["suites/far.yaml:2:3: *token_url*"])
    assert server.client_secret not in _output(result)


def test_plugin_output_never_shows_the_secret_or_a_token(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    _write(
        project.path,
        "suites/leaky.yaml",
        f"""\
        connection: ../connection.yaml
        requests:
          - name: secret in the query
            url: a
            params: {{key: "{{{{ env.{SECRET_ENV} }}}}"}}
            expect: {{status: 201, body_contains: nothing like this}}
          - name: uses it
            url: b
            headers: {{X-Key: "{{{{ env.{SECRET_ENV} }}}}"}}
            expect:
              that: ["response.json.path == 'no'"]
        """,
    )
    junit = project.path / "junit.xml"

    result = project.runpytest("-rA", "-vv", "--log-level=DEBUG", f"--junitxml={junit}")

    result.assert_outcomes(failed=2)
    written = _output(result) + junit.read_text(encoding="utf-8")
    assert "key=***" in written
    assert server.issued
    for secret in (server.client_secret, *server.issued):
        assert secret not in written


def test_plugin_demo_option_runs_the_example_suites_and_all_pass(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".ini", pytest="[pytest]\nfilterwarnings = error\n")

    result = pytester.runpytest("--runner-demo", "--strict-markers", "-v")

    result.assert_outcomes(passed=14)
    result.stdout.fnmatch_lines(["*suites/invoices.yaml::health PASSED*"])


def test_plugin_under_xdist_keeps_each_suite_on_one_worker(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    for name in ("one", "two", "three"):
        _write(project.path, f"suites/{name}.yaml", CHAIN.replace("chain", name))

    result = project.runpytest_subprocess("-n", "2", "-p", "xdist", timeout=120)

    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["runner: --dist load turned into loadfile*"])
    # Each worker fetches its own token, never one per suite file.
    assert 1 <= server.token_requests <= 2
    assert server.client_secret not in _output(result)


def test_plugin_under_xdist_with_the_token_cache_fetches_one_token(
    project: pytest.Pytester,
    server: FixtureServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The workers are processes of their own; the cache's lock serves them all."""
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    server.token_delay = 0.5  # so that both workers ask while one fetch is out
    for name in ("one", "two", "three", "four"):
        _write(project.path, f"suites/{name}.yaml", CHAIN.replace("chain", name))

    result = project.runpytest_subprocess(
        "-n", "2", "-p", "xdist", "--runner-token-cache", timeout=120
    )

    result.assert_outcomes(passed=12)
    assert server.token_requests == 1
    output = _output(result)
    for secret in (server.client_secret, *server.issued):
        assert secret not in output


def test_plugin_no_token_cache_option_overrides_the_ini_value(
    project: pytest.Pytester,
    server: FixtureServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    project.makefile(".ini", pytest=INI + "runner_token_cache = true\n")
    _write(project.path, "suites/one.yaml", CHAIN)

    first = project.runpytest("--runner-no-token-cache")
    second = project.runpytest("--runner-no-token-cache")

    first.assert_outcomes(passed=3)
    second.assert_outcomes(passed=3)
    assert server.token_requests == 2
    assert not (tmp_path / "cache").exists()
    second.stdout.fnmatch_lines(["runner: 1 connection, 1 token fetched"])


def test_plugin_loads_and_runs_without_xdist(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    """The xdist hook it implements is optional: no error when xdist is absent."""
    _write(project.path, "suites/chain.yaml", CHAIN)

    result = project.runpytest("-p", "no:xdist")

    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["runner: 1 connection, 1 token fetched"])


def test_plugin_under_xdist_prints_the_workers_warnings_and_tokens(
    project: pytest.Pytester,
    server: FixtureServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Each worker's warnings (once each) and the sum of their tokens."""
    cache = tmp_path / "cache"
    (cache / "tokens").mkdir(parents=True)
    (cache / "tokens").chmod(0o777)  # refused by every worker: warned once
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(cache))
    connection = project.path / "connection.yaml"
    connection.write_text(connection.read_text() + "verify_ssl: false\n")
    for name in ("one", "two", "three", "four"):
        _write(project.path, f"suites/{name}.yaml", CHAIN.replace("chain", name))

    result = project.runpytest_subprocess(
        "-n", "2", "-p", "xdist", "--runner-token-cache", timeout=120
    )

    result.assert_outcomes(passed=12)
    output = _output(result)
    warnings = [line for line in result.outlines if "runner: warning:" in line]
    assert warnings == [
        f"runner: warning: token cache: {cache / 'tokens'} may be written by other "
        "users (mode 777); tokens are not cached this run",
        "runner: warning: connection: verify_ssl is false; TLS certificates are "
        "not checked, the token endpoint's included",
    ], output
    result.stdout.fnmatch_lines(["runner: 1 connection on 2 workers, 2 tokens fetched"])
    assert server.token_requests == 2
    assert server.client_secret not in output


def test_plugin_under_xdist_counts_tokens_read_from_the_cache(
    project: pytest.Pytester,
    server: FixtureServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("one", "two", "three", "four"):
        _write(project.path, f"suites/{name}.yaml", CHAIN.replace("chain", name))
    args = ("-n", "2", "-p", "xdist", "--runner-token-cache")

    first = project.runpytest_subprocess(*args, timeout=120)
    second = project.runpytest_subprocess(*args, timeout=120)

    first.assert_outcomes(passed=12)
    second.assert_outcomes(passed=12)
    second.stdout.fnmatch_lines(
        ["runner: 1 connection on 2 workers, 0 tokens fetched, 2 from cache"]
    )
    assert server.token_requests == 1


def test_plugin_under_xdist_loadscope_keeps_suites_with_colons_in_names_whole(
    project: pytest.Pytester, server: FixtureServer
) -> None:
    """loadscope groups by the node id up to its last "::": none in a name."""
    suite = """\
        connection: ../connection.yaml
        requests:
          - name: "one::make"
            url: things
            capture: {made: response.json.path}
          - name: "two::use"
            url: "seen{{ made }}"
            expect:
              that: ["response.json.path == '/api/seen/api/things'"]
        """
    for name in ("one", "two"):
        _write(project.path, f"suites/{name}.yaml", suite)

    result = project.runpytest_subprocess(
        "-n", "2", "-p", "xdist", "--dist", "loadscope", "-v", timeout=120
    )

    result.assert_outcomes(passed=4)
    lookalike = "\N{PROPORTION}"
    result.stdout.fnmatch_lines([f"*PASSED suites/one.yaml::two{lookalike}use*"])
    assert server.api_requests == 4


def test_item_name_replaces_node_id_separators_with_a_lookalike() -> None:
    lookalike = "\N{PROPORTION}"
    name = runner.pytest_items.item_name

    assert name("GET http://[::1]:8080/a") == f"GET http://[{lookalike}1]:8080/a"
    assert name("a:::b") == f"a{lookalike}:b"
    assert name("plain: name") == "plain: name"


@pytest.mark.parametrize("dist", ["worksteal", "loadgroup"])
def test_plugin_refuses_xdist_modes_that_would_split_suites(
    project: pytest.Pytester, dist: str
) -> None:
    _write(project.path, "suites/chain.yaml", CHAIN)

    result = project.runpytest_subprocess("-n", "2", "--dist", dist, timeout=60)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--dist {dist} would split suite files*"])


def test_tag_markers_leave_out_pytest_marks_and_unusable_names() -> None:
    names = runner.pytest_items.tag_markers(
        ["smoke", "skip", "xfail", "two words", "a:b", "slow-path", "smoke"]
    )

    assert names == ["slow-path", "smoke"]

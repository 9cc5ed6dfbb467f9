"""``--tag``, ``--shard K/N`` and ``--fail-fast``: what a run sends and reports.

Whole runs against `FixtureServer` on 127.0.0.1 (its API answers 200 to
every ``/api/...`` path, so a request fails by expecting another status);
`Shard` and `select` on their own at the end. The run as a whole is tested
in test_run_command.py.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from runner.cli import main
from runner.selection import Shard
from tests.oauth_servers import FixtureServer, SecretWatch

SECRET_ENV = "RUNNER_TEST_CLIENT_SECRET"


@pytest.fixture
def server(
    watch: SecretWatch, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> FixtureServer:
    """A fixture server, its connection file in tmp_path, and tmp_path as cwd."""
    fixture = watch.fixture_server()
    monkeypatch.setenv(SECRET_ENV, fixture.client_secret)
    monkeypatch.chdir(tmp_path)
    _write(
        tmp_path / "connection.yaml",
        f"""\
        url: {fixture.api_url}
        token_url: {fixture.token_url}
        client_id: {fixture.client_id}
        client_secret: "{{{{ env.{SECRET_ENV} }}}}"
        """,
    )
    return fixture


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _run(watch: SecretWatch, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["run", "--no-color", *args], stdout=out, stderr=err)
    watch.seen(out.getvalue(), err.getvalue())
    return status, out.getvalue(), err.getvalue()


def _marks(out: str) -> list[str]:
    """``MARK suite > request`` of each outcome line, in order."""
    return [
        line.split("  ")[0] + " " + line.split("  ")[1]
        for line in out.splitlines()
        if line[:4] in ("PASS", "FAIL", "ERR ", "SKIP")
    ]


TAGGED = """\
name: tagged
connection: connection.yaml
requests:
  - name: login
    url: login
    tags: [setup]
    capture: {where: response.json.path}
  - name: smoke one
    url: one
    tags: [smoke]
  - name: uses login
    url: "two{{ where }}"
    tags: [smoke]
  - name: slow
    url: slow
    tags: [nightly]
"""


# ------------------------------------------------------------------ --tag


def test_tag_on_requests_runs_only_those_and_counts_the_rest_deselected(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    """A capture made by a deselected request skips the request that uses it."""
    _write(tmp_path / "tagged.yaml", TAGGED)

    status, out, _ = _run(watch, "--tag", "smoke", "tagged.yaml")

    assert status == 0, out
    assert _marks(out) == ["PASS tagged > smoke one", "SKIP tagged > uses login"]
    assert "'where', not captured: login not selected by --tag" in out
    assert server.api_requests == 1
    assert out.splitlines()[-1].startswith(
        "1 suite, 2 requests: 1 passed, 0 failed, 1 skipped, 2 deselected; "
    )


def test_tag_on_a_suite_runs_it_whole_and_leaves_untagged_suites_out(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    _write(
        tmp_path / "suites" / "tagged.yaml",
        TAGGED.replace("connection.yaml", "../connection.yaml"),
    )
    _write(
        tmp_path / "suites" / "whole.yaml",
        """\
        name: whole
        connection: ../connection.yaml
        tags: [nightly, billing]
        requests: [{name: a, url: a}, {name: b, url: b}]
        """,
    )
    _write(
        tmp_path / "suites" / "other.yaml",
        "name: other\nconnection: ../connection.yaml\nrequests: [{url: x}]\n",
    )

    status, out, _ = _run(watch, "--tag", "billing", "--tag", "setup", "suites")

    assert status == 0, out
    assert sorted(_marks(out)) == [
        "PASS tagged > login",
        "PASS whole > a",
        "PASS whole > b",
    ]
    assert server.api_requests == 3
    assert "2 suites, 3 requests: 3 passed, 0 failed, 4 deselected;" in out


def test_tag_that_selects_nothing_exits_2_and_sends_nothing(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    _write(tmp_path / "tagged.yaml", TAGGED)

    status, out, err = _run(watch, "--tag", "smoek", "tagged.yaml")

    assert status == 2
    assert out == ""
    assert err == (
        "--tag 'smoek': selects no request of the 1 suite loaded "
        "(did you mean 'smoke'?); nothing was sent\n"
    )
    assert server.token_requests == 0
    assert server.api_requests == 0


def test_empty_tag_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--tag", " ", "suite.yaml"])

    assert exited.value.code == 2
    assert "expected a tag" in capsys.readouterr().err


# ------------------------------------------------------------ --fail-fast


def test_fail_fast_skips_everything_after_the_first_failure(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    _write(
        tmp_path / "suites" / "a.yaml",
        """\
        name: first
        connection: ../connection.yaml
        requests:
          - {name: fine, url: fine}
          - {name: broken, url: broken, repeat: 3, expect: {status: 201}}
          - {name: after, url: after}
        """,
    )
    _write(
        tmp_path / "suites" / "b.yaml",
        """\
        name: second
        connection: ../connection.yaml
        requests: [{name: later, url: later, repeat: 2}]
        """,
    )

    status, out, _ = _run(watch, "--fail-fast", "--concurrency", "1", "suites")

    assert status == 1
    assert _marks(out) == [
        "PASS first > fine",
        "FAIL first > broken",
        "SKIP first > broken",
        "SKIP first > broken",
        "SKIP first > after",
        "SKIP second > later",
        "SKIP second > later",
    ]
    reason = "       not sent: --fail-fast after a failure in first > broken"
    assert out.splitlines().count(reason) == 5
    assert server.api_requests == 2
    assert "2 suites, 7 requests: 1 passed, 1 failed, 5 skipped;" in out


def test_fail_fast_wakes_a_request_waiting_out_its_delay(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    """The other worker's request is in its 20 s delay: it is skipped, not sent."""
    _write(
        tmp_path / "suites" / "a.yaml",
        """\
        name: patient
        connection: ../connection.yaml
        requests: [{name: waits, url: waits, delay: 20000}]
        """,
    )
    _write(
        tmp_path / "suites" / "b.yaml",
        """\
        name: hasty
        connection: ../connection.yaml
        requests: [{name: fails, url: fails, expect: {status: 204}}]
        """,
    )

    status, out, _ = _run(watch, "--fail-fast", "--concurrency", "2", "suites")

    assert status == 1
    assert sorted(_marks(out)) == ["FAIL hasty > fails", "SKIP patient > waits"]
    assert "not sent: --fail-fast after a failure in hasty > fails" in out
    assert server.api_requests == 1


def test_without_fail_fast_a_failure_stops_nothing(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    _write(
        tmp_path / "suite.yaml",
        """\
        name: s
        connection: connection.yaml
        requests: [{url: a, expect: {status: 201}}, {name: b, url: b}]
        """,
    )

    status, out, _ = _run(watch, "suite.yaml")

    assert status == 1
    assert _marks(out)[-1] == "PASS s > b"
    assert server.api_requests == 2


# ---------------------------------------------------------------- --shard

SHARD_FILES = [
    "a.yaml",
    "b.yml",
    "c.json",
    "nested/d.yaml",
    "nested/deeper/e.yaml",
    "nested/f.yaml",
    "z.yaml",
]


def _shard_folder(tmp_path: Path) -> list[str]:
    names = []
    for number, relative in enumerate(SHARD_FILES):
        name = f"suite{number}"
        depth = relative.count("/") + 1
        connection = "../" * depth + "connection.yaml"
        _write(
            tmp_path / "suites" / relative,
            f'{{"name": "{name}", "connection": "{connection}", '
            '"requests": [{"url": "ping"}]}\n',
        )
        names.append(name)
    return names


def test_shards_together_run_every_suite_exactly_once(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    """For several N, the N shards are disjoint, whole and within one of each other."""
    names = _shard_folder(tmp_path)

    for count in (1, 2, 3, 7, 9):
        shards: list[list[str]] = []
        for index in range(1, count + 1):
            status, out, _ = _run(watch, "--shard", f"{index}/{count}", "suites")
            assert status == 0, out
            shards.append([mark.split(" ")[1] for mark in _marks(out)])
            if not shards[-1]:
                assert out == (
                    f"shard {index}/{count}: none of the 7 suite files falls in "
                    "this shard; nothing to send\n"
                )

        ran = [name for shard in shards for name in shard]
        assert sorted(ran) == sorted(names), count  # whole and disjoint
        sizes = [len(shard) for shard in shards]
        assert max(sizes) - min(sizes) <= 1, sizes

    assert server.api_requests == 5 * len(names)


def test_shard_does_not_depend_on_how_the_files_are_named(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    """Files named one by one, in another order, fall in the same shards."""
    _shard_folder(tmp_path)
    files = [str(Path("suites") / name) for name in reversed(SHARD_FILES)]

    _, by_folder, _ = _run(watch, "--shard", "2/3", "suites")
    _, by_file, _ = _run(watch, "--shard", "2/3", *files)

    assert sorted(_marks(by_folder)) == sorted(_marks(by_file))
    assert len(_marks(by_file)) == 2
    assert "shard 2/3: 2 of 7 suite files" in by_file


def test_shards_split_the_suites_that_tags_selected(
    server: FixtureServer, watch: SecretWatch, tmp_path: Path
) -> None:
    """Tags first: two tagged suites of five go one to each of two shards."""
    _shard_folder(tmp_path)
    for name in ("a.yaml", "z.yaml"):
        path = tmp_path / "suites" / name
        path.write_text(
            path.read_text().replace('"requests"', '"tags": ["smoke"], "requests"')
        )

    runs = [
        _run(watch, "--tag", "smoke", "--shard", shard, "suites")
        for shard in ("1/2", "2/2")
    ]

    assert [status for status, _, _ in runs] == [0, 0]
    assert [_marks(out) for _, out, _ in runs] == [
        ["PASS suite0 > GET ping"],
        ["PASS suite6 > GET ping"],
    ]
    assert all("1 suite, 1 requests: 1 passed, 0 failed; " in out for _, out, _ in runs)


@pytest.mark.parametrize("value", ["0/2", "3/2", "a/b", "1/0", "2", "1/2/3", ""])
def test_shard_bad_values_are_usage_errors(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["run", "--shard", value, "suite.yaml"])

    assert exited.value.code == 2
    assert "--shard: expected K/N" in capsys.readouterr().err


def test_shard_parse_reads_k_and_n() -> None:
    shard = Shard.parse(" 2/5 ")

    assert (shard.index, shard.count) == (2, 5)
    assert str(shard) == "2/5"


def test_shard_part_deals_sorted_relative_paths_round_robin(tmp_path: Path) -> None:
    """Unit view of the rule the whole runs above rely on."""
    paths = [tmp_path / name for name in ("c", "sub/a", "d", "b", "../out")]

    parts = [Shard(index, 2).part(paths, cwd=tmp_path) for index in (1, 2)]

    # Sorted: ../out, b, c, d, sub/a; dealt out as 1, 2, 1, 2, 1.
    names = [sorted(path.name for path in part) for part in parts]
    assert names == [["a", "c", "out"], ["b", "d"]]

"""``runner check``: every error of every file printed, located, secrets masked.

The cases themselves are in `test_loading.py` and `test_yamlsource.py`; here
the command line around them: output format, summary, exit status, imports.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner.cli import main
from runner.loading import load_paths
from runner.secrets import Redactor
from runner.templates import Templates

ROOT = Path(__file__).resolve().parent.parent
BROKEN = Path(__file__).parent / "broken"
EXAMPLES = ROOT / "examples"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")


def check(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = main(["check", *argv], stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def test_broken_folder_gives_each_file_its_own_located_error() -> None:
    status, out, err = check(str(BROKEN))

    lines = out.splitlines()
    errors = [LINE.match(line) for line in lines[:-1]]
    assert status == 2
    assert err == ""
    assert all(errors), [line for line in lines if not LINE.match(line)]
    files = {Path(match["file"]).name for match in errors if match}
    assert files == {path.name for path in BROKEN.iterdir() if path.is_file()}
    count = len(files)
    assert lines[-1] == f"{len(errors)} errors in {count} of {count} files"
    assert "Traceback" not in out


def test_errors_of_a_file_are_in_line_order() -> None:
    status, out, _ = check(
        str(BROKEN / "absurd_repeat.yaml"), str(BROKEN / "tabs.yaml")
    )

    assert status == 2
    assert out.splitlines() == [
        f"{BROKEN / 'absurd_repeat.yaml'}:5:13: must be at most 10000, "
        "got 100000000 (at requests[0].repeat)",
        f"{BROKEN / 'tabs.yaml'}:3:1: tab used for indentation; indent YAML with "
        "spaces",
        "2 errors in 2 of 2 files",
    ]


def test_examples_are_valid() -> None:
    if not EXAMPLES.is_dir():
        pytest.skip("examples/ is not written yet")

    status, out, _ = check(str(EXAMPLES))

    assert out.splitlines()[-1].endswith("files checked, all valid"), out
    assert status == 0


def test_one_valid_file_summary(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("url: https://api.example.com\n")

    assert check(str(path)) == (0, "1 file checked, all valid\n", "")


def test_bad_options_are_reported_with_the_files(tmp_path: Path) -> None:
    env_file = tmp_path / "a.env"
    env_file.write_text("GOOD=1\nnot a line\n")
    path = tmp_path / "c.yaml"
    path.write_text("url: https://api.example.com\n")

    status, out, _ = check(str(path), "--env-file", str(env_file), "--var", "x")

    assert status == 2
    assert f"{env_file}:2:1: expected NAME=VALUE" in out
    assert "--var: expected NAME=VALUE" in out


def test_unreadable_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "c.yaml"
    path.write_text("url: https://api.example.com\n")
    path.chmod(0)

    status, out, _ = check(str(path))

    assert status == 2
    assert out.startswith(f"{path}:1:1: cannot read the file: Permission denied")


def test_secrets_never_reach_output_errors_or_reprs(tmp_path: Path) -> None:
    """A literal client secret and a value from env, in an otherwise broken setup."""
    literal = "literal-client-s3cret"
    from_env = "env-s3cret-value"
    connection = tmp_path / "c.yaml"
    connection.write_text(
        "url: https://api.example.com\ntoken_url: https://auth.example.com/t\n"
        f"client_id: me\nclient_secret: {literal}\n"
        "headers:\n  X-Key: '{{ env.API_KEY }}'\n"
    )
    (tmp_path / "s.yaml").write_text(
        "connection: c.yaml\nvars:\n  key: '{{ env.API_KEY }}'\n"
        "requests:\n  - url: '{{ key }}/{{ nope }}'\n"
        f"    headers: {{X-Echo: {literal}}}\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"url: '{{{{ env.API_KEY }}}}'\ntoken_url: https://a\nclient_id: x\n"
        f"client_secret: {{nested: {literal}}}\n"
    )
    env_file = tmp_path / "secrets.env"
    env_file.write_text(f"API_KEY={from_env}\n")

    status, out, err = check(str(tmp_path), "--env-file", str(env_file))

    assert status == 2
    assert "undefined variable 'nope'" in out
    assert "client_secret" in out
    for secret in (literal, from_env):
        assert secret not in out
        assert secret not in err

    redactor = Redactor()
    env = {"API_KEY": from_env}
    result = load_paths(
        [tmp_path],
        env=env,
        variables={},
        redactor=redactor,
        templates=Templates(env, redactor),
        for_run=False,
    )
    texts = [repr(result), *(error.render() for error in result.errors)]
    texts += [repr(c) for c in result.connections.values()]
    for text in texts:
        assert literal not in text
        assert from_env not in text


def test_check_does_not_import_httpx() -> None:
    code = "import runner.checking, sys; assert 'httpx' not in sys.modules"

    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_loaded_suite_with_an_inline_connection_keeps_env_values_out_of_reprs(
    tmp_path: Path,
) -> None:
    """The inline connection is rendered in the suite model: not in its repr."""
    from_env = "inline-env-s3cret"
    (tmp_path / "s.yaml").write_text(
        "connection:\n  url: http://127.0.0.1:9/api\n"
        "  headers: {X-Key: '{{ env.API_KEY }}'}\n"
        "requests:\n  - url: items\n"
    )
    redactor = Redactor()
    env = {"API_KEY": from_env}
    result = load_paths(
        [tmp_path / "s.yaml"],
        env=env,
        variables={},
        redactor=redactor,
        templates=Templates(env, redactor),
        for_run=True,
    )

    assert not result.errors
    (suite,) = result.suites
    assert suite.model.connection == {
        "url": "http://127.0.0.1:9/api",
        "headers": {"X-Key": from_env},
    }
    for text in (repr(result), repr(suite), *map(repr, suite.requests)):
        assert from_env not in text


def test_no_secret_reaches_a_pickle(tmp_path: Path) -> None:
    """SPEC: secrets never reach a pickle. Models mask them; holders refuse."""
    literal = "pickled-client-s3cret"
    from_env = "pickled-env-s3cret"
    (tmp_path / "c.yaml").write_text(
        "url: https://api.example.com\ntoken_url: https://auth.example.com/t\n"
        f"client_id: me\nclient_secret: {literal}\n"
    )
    (tmp_path / "s.yaml").write_text(
        "connection: c.yaml\nvars: {key: '{{ env.API_KEY }}'}\n"
        "requests:\n  - url: '{{ key }}'\n"
    )
    redactor = Redactor()
    env = {"API_KEY": from_env}
    templates = Templates(env, redactor)
    result = load_paths(
        [tmp_path / "s.yaml"],
        env=env,
        variables={},
        redactor=redactor,
        templates=templates,
        for_run=True,
    )
    assert not result.errors
    (connection,) = result.connections.values()

    pickled = pickle.dumps(connection.model)
    assert literal.encode() not in pickled
    assert pickle.loads(pickled).client_secret.get_secret_value() == "***"
    for holder in (redactor, templates, result.suites[0]):
        with pytest.raises(TypeError, match="holds secrets and is never pickled"):
            pickle.dumps(holder)


def test_check_refuses_a_plain_http_token_url_as_run_does(tmp_path: Path) -> None:
    """`run` refuses it before sending: `check` calls it invalid input too."""
    (tmp_path / "c.yaml").write_text(
        "url: https://api.example.com\ntoken_url: http://auth.example.com/t\n"
        "client_id: me\nclient_secret: not-over-http\n"
    )

    status, out, _ = check(str(tmp_path / "c.yaml"))

    assert status == 2
    assert "token_url uses plain http to auth.example.com" in out
    assert "not-over-http" not in out

"""Property: whatever a file holds, the loader fails only with its own errors.

Random text (YAML-ish and JSON-ish) and random documents dumped as YAML or
JSON go through `load_paths`, which must return, with any problem as an
`InputError` in the result, and never raise; and through the parser, which
may raise only `InputError` or `InputErrors`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import InputError, InputErrors
from runner.loading import load_paths
from runner.secrets import Redactor
from runner.templates import Templates
from runner.yamlsource import parse_json, parse_yaml

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# Pieces that make random text likely to hit YAML, JSON and jinja2 syntax.
TOKENS = st.sampled_from(
    [
        "url: ",
        "https://h/x",
        "requests:",
        "\n",
        "  ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "&a ",
        "*a",
        "<<: ",
        "'",
        '"',
        "\t",
        "---",
        "#",
        "!!str ",
        "{{ ",
        " }}",
        "{%",
        "env.X",
        "connection: ",
        "expect: ",
        "status: ",
        "that: ",
        "capture: ",
        "null",
        "1e999",
        "NaN",
        "\x00",
        "é",
        "\\u00",
        "token_url: ",
        "client_secret: ",
        "method: ",
        "GET",
        "schema: ",
        "x.json",
    ]
)
FUZZ_TEXT = st.one_of(
    st.text(max_size=200),
    st.lists(TOKENS, max_size=40).map("".join),
)

KEYS = st.sampled_from(
    [
        "url",
        "method",
        "headers",
        "body",
        "requests",
        "connection",
        "connections",
        "vars",
        "expect",
        "status",
        "that",
        "capture",
        "schema",
        "json",
        "type",
        "token_url",
        "client_id",
        "client_secret",
        "timeout",
        "repeat",
        "name",
    ]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["https://h/x", "{{ x }}", "{{ env.HOME }}", "response.status"])
)
DOCUMENTS = st.dictionaries(
    KEYS,
    st.recursive(
        SCALARS,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4)
        ),
        max_leaves=20,
    ),
    max_size=6,
)


REQUEST_KEYS = st.sampled_from(
    [
        "url",
        "method",
        "headers",
        "params",
        "body",
        "expect",
        "capture",
        "connection",
        "repeat",
        "delay",
        "timeout",
        "tags",
        "name",
    ]
)
EXPECT_KEYS = st.sampled_from(
    ["status", "headers", "json", "schema", "body_contains", "max_ms", "that"]
)
EXPRESSIONS = st.sampled_from(
    ["response.status == 200", "x +", "{{ y }}", "response.json[0]", "", "a.b(", "1"]
)
VALUES = SCALARS | EXPRESSIONS | st.lists(SCALARS | EXPRESSIONS, max_size=3)
EXPECTS = st.dictionaries(
    EXPECT_KEYS, VALUES | st.dictionaries(KEYS, SCALARS, max_size=3), max_size=4
)
REQUESTS = st.dictionaries(
    REQUEST_KEYS,
    VALUES | EXPECTS | st.dictionaries(KEYS | EXPRESSIONS, EXPRESSIONS, max_size=3),
    max_size=6,
)
SUITES = st.fixed_dictionaries(
    {
        "connection": st.sampled_from(
            [{"url": "https://h"}, {"url": "{{ v }}"}, "c.yaml", "none.yaml", "."]
        ),
        "requests": st.lists(REQUESTS, max_size=4),
    },
    optional={"vars": st.dictionaries(st.sampled_from(["v", "x", "1"]), VALUES)},
)


def _load(folder: Path) -> None:
    redactor = Redactor()
    env = {"HOME": "/home/someone"}
    result = load_paths(
        [folder],
        env=env,
        variables={},
        redactor=redactor,
        templates=Templates(env, redactor),
        for_run=False,
    )
    assert all(isinstance(error, InputError) for error in result.errors)


def _parse(text: str, *, json_syntax: bool) -> None:
    try:
        if json_syntax:
            parse_json(text, "f.json")
        else:
            parse_yaml(text, "f.yaml")
    except (InputError, InputErrors):
        pass


@FUZZ
@given(text=FUZZ_TEXT)
def test_parser_raises_only_input_errors_on_random_text(text: str) -> None:
    _parse(text, json_syntax=False)
    _parse(text, json_syntax=True)


@FUZZ
@given(text=FUZZ_TEXT, suffix=st.sampled_from([".yaml", ".json"]))
def test_loader_never_raises_on_random_text(text: str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        _load(Path(folder))


@FUZZ
@given(document=DOCUMENTS, as_json=st.booleans())
def test_loader_never_raises_on_random_documents(
    document: dict[str, Any], as_json: bool
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if as_json:
            path = Path(folder) / "f.json"
            path.write_text(json.dumps(document), encoding="utf-8")
        else:
            path = Path(folder) / "f.yaml"
            path.write_text(yaml.safe_dump(document), encoding="utf-8")
        _load(Path(folder))


@FUZZ
@given(suite=SUITES)
def test_loader_never_raises_on_random_suites(suite: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "c.yaml").write_text("url: https://h\n", encoding="utf-8")
        Path(folder, "s.yaml").write_text(yaml.safe_dump(suite), encoding="utf-8")
        _load(Path(folder))

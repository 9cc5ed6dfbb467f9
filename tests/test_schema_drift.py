"""The committed JSON Schemas: the models' export, and what editors validate with.

`runner schema --check` must pass on the committed files and fail when a
model changes; a plain jsonschema validator (what an editor runs) must
accept every example and reject the broken files that a schema can see.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.cli import main
from runner.schema import SCHEMA_FILES, render_schema
from runner.validation import PACKAGED_SCHEMAS

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
EXAMPLES = ROOT / "examples"
BROKEN = Path(__file__).parent / "broken"

# Broken files whose one error a schema can see, and which schema sees it.
SCHEMA_VISIBLE = [
    "wrong_type.yaml",
    "negative_timeout.yaml",
    "absurd_repeat.yaml",
    "unknown_field.yaml",
    "missing_required.yaml",
    "invalid_method.yaml",
    "top_list.yaml",
]


def schema_check(folder: Path) -> tuple[int, str]:
    out = io.StringIO()
    status = main(["schema", "--check", "--output", str(folder)], stdout=out)
    return status, out.getvalue()


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


def kind_of(document: Any) -> str:
    is_suite = isinstance(document, dict) and "requests" in document
    return "suite.schema.json" if is_suite else "connection.schema.json"


def test_committed_schemas_match_the_models() -> None:
    assert schema_check(SCHEMAS) == (0, "")


def test_check_fails_after_a_model_change(changed_model: None) -> None:
    status, out = schema_check(SCHEMAS)

    assert status == 1
    assert "connection.schema.json: differs from the models" in out


def test_check_fails_on_an_edited_file(tmp_path: Path) -> None:
    assert main(["schema", "--output", str(tmp_path)], stdout=io.StringIO()) == 0
    path = tmp_path / "suite.schema.json"
    path.write_text(path.read_text().replace("sent in order", "sent"))

    status, out = schema_check(tmp_path)

    assert status == 1
    assert out == f"{path}: differs from the models; run `runner schema`\n"


def test_export_is_deterministic() -> None:
    for build in SCHEMA_FILES.values():
        assert render_schema(build()) == render_schema(build())


def test_schemas_have_ids_titles_and_the_2020_12_dialect() -> None:
    for name in SCHEMA_FILES:
        schema = json.loads((SCHEMAS / name).read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].endswith(name)
        assert schema["title"]


def example_files() -> list[Path]:
    if not EXAMPLES.is_dir():
        return []
    suffixes = {".yaml", ".yml", ".json"}
    return sorted(path for path in EXAMPLES.rglob("*") if path.suffix in suffixes)


@pytest.mark.parametrize("path", example_files(), ids=lambda path: path.name)
def test_plain_validator_accepts_every_example(path: Path) -> None:
    document = read(path)

    errors = list(validator(kind_of(document)).iter_errors(document))

    assert errors == []


def test_plain_validator_accepts_the_catalogue_example() -> None:
    schema = json.loads((SCHEMAS / "connection.schema.json").read_text())

    (example,) = schema["examples"]
    assert Draft202012Validator(schema).is_valid(example)


@pytest.mark.parametrize("name", SCHEMA_VISIBLE)
def test_plain_validator_rejects_broken_files(name: str) -> None:
    document = read(BROKEN / name)

    assert not validator(kind_of(document)).is_valid(document)


@pytest.mark.parametrize(
    "suite",
    [
        {"connection": {"url": "https://h"}, "requests": [{"expect": {"stauts": 1}}]},
        {"connection": {"url": "https://h"}, "requests": []},
        {"connection": {"url": "https://h", "metod": "GET"}, "requests": [{}]},
        {"connections": {"bad-name": "c.yaml"}, "requests": [{}]},
        {"connection": "c.yaml", "requests": [{"capture": {"1x": "response"}}]},
        {"connection": "c.yaml", "requests": [{"delay": -1}]},
    ],
)
def test_plain_validator_rejects_bad_suites(suite: dict[str, Any]) -> None:
    assert not validator("suite.schema.json").is_valid(suite)


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_packaged_schemas_are_the_export(name: str) -> None:
    """The copies shipped in the package (the loader reads the file schemas)
    are the export too (refresh: ``runner schema --output runner/schemas``)."""
    packaged = (PACKAGED_SCHEMAS / name).read_text(encoding="utf-8")

    assert packaged == render_schema(SCHEMA_FILES[name]())
    assert sorted(path.name for path in PACKAGED_SCHEMAS.iterdir()) == sorted(
        SCHEMA_FILES
    )

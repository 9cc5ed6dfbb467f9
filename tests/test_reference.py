"""The reference page of the connection types (`runner docs`, docs/connections.md).

`runner docs --check` must pass on the committed page and fail when a model
changes, as the schemas' drift test does for schemas/. The page's HTTP
OAuth2 section must read like the catalogue entry SPEC.md quotes: the same
eight fields with the same types, required-ness and defaults, our
extensions apart and marked. Every JSON example on it must load.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from runner.cli import main
from runner.connections import (
    CONNECTION_TYPES,
    EXTENSION_MARK,
)
from runner.loading import load_paths
from runner.reference import render_reference
from runner.secrets import Redactor
from runner.templates import Templates

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "connections.md"

# SPEC.md, "Connection files": field, type, required, default.
CATALOGUE_OAUTH2 = [
    ("url", "HttpUrl", "yes", ""),
    ("headers", "mapping of str to str", "no", "none"),
    ("method", "GET, POST, PUT, DELETE or PATCH", "no", "`GET`"),
    ("body", "JSON object", "no", "none"),
    ("verify_ssl", "bool", "no", "`true`"),
    ("client_id", "str", "yes", ""),
    ("client_secret", "str (secret)", "yes", ""),
    ("token_url", "HttpUrl", "yes", ""),
]
# The base HTTP connection's fields in the catalogue, which every type has.
HTTP_FIELDS = ["url", "headers", "method", "body", "verify_ssl"]


def docs(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    status = main(["docs", *args], stdout=out)
    return status, out.getvalue()


def section(page: str, title: str) -> str:
    """The text of the ``## title`` section, up to the next one."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", page, re.M | re.S)
    assert match is not None, f"no section {title!r}"
    return match.group(1)


def table(text: str, heading: str) -> list[list[str]]:
    """The body rows of the table under ``### heading``, cells stripped."""
    match = re.search(rf"^### {re.escape(heading)}\n\n((?:\|.*\n)+)", text, re.M)
    assert match is not None, f"no table under {heading!r}"
    lines = match.group(1).splitlines()[2:]  # past the header and the rule
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_docs_check_passes_on_the_committed_page() -> None:
    assert docs("--check", "--output", str(PAGE)) == (0, "")


def test_docs_check_fails_after_a_model_change(changed_model: None) -> None:
    status, out = docs("--check", "--output", str(PAGE))

    assert status == 1
    assert out == f"{PAGE}: differs from the models; run `runner docs`\n"


def test_docs_writes_the_page_then_finds_it_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "connections.md"

    assert docs("--output", str(path)) == (0, f"wrote {path}\n")
    assert path.read_text(encoding="utf-8") == render_reference()
    assert docs("--output", str(path)) == (0, "reference is up to date\n")
    assert docs("--check", "--output", str(path)) == (0, "")


def test_docs_check_on_a_missing_page_fails_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "connections.md"

    status, _ = docs("--check", "--output", str(path))

    assert status == 1
    assert not path.exists()


def test_oauth2_section_lists_exactly_the_catalogue_fields() -> None:
    oauth2 = section(render_reference(), "HTTP OAuth2")

    rows = table(oauth2, "Catalogue fields")

    assert [(f.strip("`"), t, r, d) for f, t, r, _, d, _ in rows] == CATALOGUE_OAUTH2
    assert "- **type ID:** 5" in oauth2
    assert "- **module:** `httplib`" in oauth2
    assert "- **category:** `api`" in oauth2


def test_oauth2_extensions_are_apart_and_each_marked() -> None:
    rows = table(section(render_reference(), "HTTP OAuth2"), "Extensions")

    names = [row[0].strip("`") for row in rows]
    assert names == ["type", "timeout", "retry", "scope", "token_params", "auth_method"]
    assert all(row[3].startswith("**Extension.**") for row in rows)


def test_every_type_has_a_section_with_the_catalogue_page_parts() -> None:
    page = render_reference()

    for entry in CONNECTION_TYPES.values():
        text = section(page, entry.title)
        assert entry.description in text
        for part in ("Catalogue fields", "Extensions", "Example", "Notes"):
            assert f"\n### {part}\n" in text, (entry.name, part)
        assert f"- **`type`:** `{entry.name}`" in text


def test_extension_types_have_no_catalogue_id_and_say_so() -> None:
    page = render_reference()

    for entry in CONNECTION_TYPES.values():
        if not entry.extension:
            continue
        text = section(page, entry.title)
        assert entry.type_id is None and entry.module is None
        assert "- **type ID:** none" in text
        assert "- **extension:** yes" in text
        # Only the base HTTP connection's fields count as the catalogue's.
        rows = table(text, "Catalogue fields")
        assert [row[0].strip("`") for row in rows] == HTTP_FIELDS


def test_every_field_outside_the_catalogue_is_marked_as_an_extension() -> None:
    """The page sorts fields by the mark: a new field without it would pose as
    one of the catalogue's."""
    catalogue = {name for name, _, _, _ in CATALOGUE_OAUTH2}

    for entry in CONNECTION_TYPES.values():
        for name, info in entry.model.model_fields.items():
            if name not in catalogue:
                assert (info.description or "").startswith(EXTENSION_MARK), name


def test_page_writes_no_library_sentinel_or_internal_name() -> None:
    page = render_reference()

    for word in ("PydanticUndefined", "SecretStr", "NoneType", "typing.", "Annotated"):
        assert word not in page
    for entry in CONNECTION_TYPES.values():
        text = section(page, entry.title)
        for heading in ("Catalogue fields", "Extensions"):
            for row in table(text, heading):
                assert row[2] in ("yes", "no"), row


@pytest.mark.parametrize("name", list(CONNECTION_TYPES))
def test_each_example_on_the_page_loads_as_its_type(name: str, tmp_path: Path) -> None:
    entry = CONNECTION_TYPES[name]
    blocks = re.findall(
        r"```json\n(.*?)\n```", section(render_reference(), entry.title), re.S
    )
    [example] = blocks
    path = tmp_path / f"{name}.json"
    path.write_text(example, encoding="utf-8")
    redactor = Redactor()

    result = load_paths(
        [path],
        env={},
        variables={},
        redactor=redactor,
        templates=Templates({}, redactor),
        for_run=False,
    )

    assert [error.render() for error in result.errors] == []
    [loaded] = result.connections.values()
    assert type(loaded.model) is entry.model
    assert json.loads(example) == dict(entry.example)


def test_oauth2_example_is_the_catalogue_example_unchanged() -> None:
    schema = json.loads((ROOT / "schemas" / "connection.schema.json").read_text())

    assert dict(CONNECTION_TYPES["oauth2"].example) == schema["examples"][0]

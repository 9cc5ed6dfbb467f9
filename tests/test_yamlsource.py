"""Parsing YAML and strict JSON with positions and limits (`runner.yamlsource`).

The loader tests (`test_loading.py`) cover what happens to these errors
afterwards; `test_check_command.py` covers how `runner check` prints them.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runner.errors import InputError, InputErrors
from runner.yamlsource import (
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    Document,
    parse_json,
    parse_yaml,
    read_document,
)

BROKEN = Path(__file__).parent / "broken"


def _error(parse: object, text: str) -> InputError:
    assert callable(parse)
    with pytest.raises(InputError) as caught:
        parse(text, "f.yaml")
    return caught.value


def _where(error: InputError) -> tuple[int, int]:
    assert error.location is not None
    return error.location.line, error.location.column


class TestYamlPositions:
    def test_values_and_keys_are_located_one_based(self) -> None:
        document = parse_yaml("a: 1\nb:\n  - x\n  - {c: 2, d: [1, 2]}\n", "f.yaml")

        assert document.data == {"a": 1, "b": ["x", {"c": 2, "d": [1, 2]}]}
        assert document.location_of(("a",)) == (1, 4)
        assert document.location_of(("b", 1, "d", 1)) == (4, 19)
        assert document.key_location_of(("b", 1, "c")) == (4, 6)

    def test_unknown_path_falls_back_to_nearest_parent(self) -> None:
        document = parse_yaml("a:\n  b: {c: 1}\n", "f.yaml")

        assert document.location_of(("a", "b", "zz", 3)) == (2, 6)
        assert document.location_of(("nothing",)) == (1, 1)

    def test_locate_builds_a_location_with_the_path(self) -> None:
        document = parse_yaml("a:\n  - 1\n", "f.yaml")

        location = document.locate(("a", 0))

        assert (location.file, location.line, location.column) == ("f.yaml", 2, 5)
        assert location.path == ("a", 0)

    def test_scalars_keep_json_types_and_dates_stay_text(self) -> None:
        text = "i: 3\nf: 1.5\nb: true\nn: null\ns: '3'\nd: 2024-01-31\n200: ok\n"

        data = parse_yaml(text, "f.yaml").data

        assert data == {
            "i": 3,
            "f": 1.5,
            "b": True,
            "n": None,
            "s": "3",
            "d": "2024-01-31",
            "200": "ok",
        }

    def test_merge_keys_merge_without_overriding(self) -> None:
        text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\n"

        assert parse_yaml(text, "f.yaml").data["m"] == {"x": 1, "y": 3}

    def test_small_aliases_are_expanded(self) -> None:
        text = "h: &h {Accept: json}\na: *h\nb: *h\n"

        assert parse_yaml(text, "f.yaml").data["b"] == {"Accept": "json"}


class TestYamlErrors:
    def test_syntax_error_has_pyyaml_problem_and_position(self) -> None:
        error = _error(parse_yaml, "a: [1, 2\nb: 3\n")

        assert "YAML syntax error" in error.message
        assert "flow sequence" in error.message
        assert _where(error)[0] == 2

    def test_tab_indentation_is_named(self) -> None:
        error = _error(parse_yaml, "a:\n\tb: 1\n")

        assert error.message == "tab used for indentation; indent YAML with spaces"
        assert _where(error) == (2, 1)

    def test_several_documents_are_refused_at_the_second(self) -> None:
        error = _error(parse_yaml, "a: 1\n---\nb: 2\n")

        assert "several YAML documents" in error.message
        assert _where(error) == (2, 1)

    def test_duplicate_key_names_key_and_first_line(self) -> None:
        error = _error(parse_yaml, "url: x\nmethod: GET\nurl: y\n")

        assert error.message == "duplicate key 'url' (first at line 1)"
        assert _where(error) == (3, 1)

    def test_several_duplicate_keys_are_all_reported(self) -> None:
        with pytest.raises(InputErrors) as caught:
            parse_yaml("a: 1\na: 2\nb: {x: 1, x: 2}\n", "f.yaml")

        assert [_where(error) for error in caught.value.errors] == [(2, 1), (3, 11)]

    @pytest.mark.parametrize(
        ("text", "kind"), [("- 1\n", "a list"), ("just text\n", "a string")]
    )
    def test_top_level_must_be_a_mapping(self, text: str, kind: str) -> None:
        error = _error(parse_yaml, text)

        assert error.message == f"the top level must be a mapping, got {kind}"
        assert _where(error) == (1, 1)

    @pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n# another\n"])
    def test_empty_and_comment_only_files(self, text: str) -> None:
        error = _error(parse_yaml, text)

        assert "the file is empty" in error.message
        assert _where(error) == (1, 1)

    def test_billion_laughs_is_refused_quickly(self) -> None:
        """Refused while building, long before the expansion would exhaust memory."""
        text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        for level in range(1, 10):
            previous, current = chr(ord("a") + level - 1), chr(ord("a") + level)
            text += f"{current}: &{current} [" + ",".join([f"*{previous}"] * 9) + "]\n"

        started = time.perf_counter()
        error = _error(parse_yaml, text)
        elapsed = time.perf_counter() - started

        assert f"more than {MAX_ALIAS_NODES} values" in error.message
        assert "alias bomb" in error.message
        assert _where(error) == (5, 8)
        assert elapsed < 2  # generous; the benchmark measures, this only guards

    def test_recursive_alias_is_refused(self) -> None:
        error = _error(parse_yaml, "a: &a [1, *a]\n")

        assert "refers to a collection that contains it" in error.message
        assert _where(error) == (1, 11)

    def test_undefined_alias(self) -> None:
        error = _error(parse_yaml, "a: *nothing\n")

        assert error.message == "undefined alias *nothing"

    def test_absurd_nesting(self) -> None:
        error = _error(parse_yaml, "a: " + "[" * 100 + "]" * 100 + "\n")

        assert error.message == f"nesting deeper than {MAX_DEPTH} levels"
        assert _where(error) == (1, 3 + MAX_DEPTH)  # the top mapping is a level

    def test_python_tags_are_not_constructed(self) -> None:
        error = _error(parse_yaml, "a: !!python/object/apply:os.system [ls]\n")

        assert "unsupported YAML tag !!python/object/apply:os.system" in error.message
        assert _where(error) == (1, 4)

    def test_mapping_as_key_is_refused(self) -> None:
        error = _error(parse_yaml, "? [a]\n: 1\n")

        assert "a mapping key must be a plain value" in error.message

    def test_control_character_is_located(self) -> None:
        error = _error(parse_yaml, "a: 1\nb: \x01\n")

        assert "#x0001 is not allowed" in error.message
        assert _where(error) == (2, 4)

    def test_huge_integer_is_an_error_not_a_crash(self) -> None:
        error = _error(parse_yaml, "a: " + "1" * 5000 + "\n")

        assert error.message.startswith("invalid int")


class TestJson:
    def test_positions_of_values_and_keys(self) -> None:
        text = '{\n  "a": {"b": [1, {"c": true}]},\n  "d": "x"\n}'

        document = parse_json(text, "f.json")

        assert document.data == {"a": {"b": [1, {"c": True}]}, "d": "x"}
        assert document.location_of(("a", "b", 1, "c")) == (2, 24)
        assert document.key_location_of(("d",)) == (3, 3)

    @pytest.mark.parametrize(
        ("text", "message", "where"),
        [
            ('{"a": 1,}', "trailing comma before '}'", (1, 8)),
            ('{"a": [1, 2,]}', "trailing comma before ']'", (1, 12)),
            ('{\n "a": 1,\n "a": 2}', "duplicate key 'a' (first at line 2)", (3, 2)),
            ('{"a": NaN}', "NaN and Infinity are not JSON", (1, 7)),
            ('{"a": -Infinity}', "NaN and Infinity are not JSON", (1, 7)),
            ("[1]", "the top level must be an object, got a list", (1, 1)),
            ("", "the file is empty (nothing but blank lines or comments)", (1, 1)),
            ('{"a": 1} x', "extra data after the JSON value", (1, 10)),
            ('{"a" 1}', "expected ':' after the key, found '1'", (1, 6)),
            ('{"a": 1', "expected ',' or '}', found the end of the file", (1, 8)),
            ("{a: 1}", "expected a string key, found 'a'", (1, 2)),
            ('{"a": 1e999}', "number out of range", (1, 7)),
            ('{"a": // c\n 1}', "expected a JSON value, found '/'", (1, 7)),
        ],
    )
    def test_strict_json_errors(
        self, text: str, message: str, where: tuple[int, int]
    ) -> None:
        error = _error(parse_json, text)

        assert error.message == message
        assert _where(error) == where

    def test_control_character_in_string(self) -> None:
        error = _error(parse_json, '{"a": "x\ny"}')

        assert error.message.startswith("invalid string: invalid control character")

    def test_absurd_nesting(self) -> None:
        error = _error(parse_json, '{"a": ' + "[" * 70 + "]" * 70 + "}")

        assert error.message == f"nesting deeper than {MAX_DEPTH} levels"


class TestFiles:
    def test_json_suffix_means_strict_json(self, tmp_path: Path) -> None:
        path = tmp_path / "c.json"
        path.write_text("{'a': 1}", encoding="utf-8")  # YAML would accept it

        with pytest.raises(InputError, match="expected a string key"):
            read_document(path)

    def test_yaml_file_is_read(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("\ufeffa: 1\n", encoding="utf-8")

        document = read_document(path, "shown.yaml")

        assert isinstance(document, Document)
        assert document.data == {"a": 1}
        assert document.file == "shown.yaml"

    def test_file_too_large_is_refused_before_reading(self, tmp_path: Path) -> None:
        path = tmp_path / "big.yaml"
        with path.open("wb") as stream:
            stream.truncate(MAX_FILE_BYTES + 1)

        error = _read_error(path)

        assert error.message.startswith("file too large")
        assert _where(error) == (1, 1)

    def test_binary_file_locates_the_nul_byte(self) -> None:
        error = _read_error(BROKEN / "binary.yaml")

        assert error.message == "binary file (NUL byte); expected UTF-8 text"
        assert _where(error) == (2, 7)

    def test_non_utf8_file_locates_the_bad_byte(self) -> None:
        error = _read_error(BROKEN / "latin1.yaml")

        assert error.message == "not UTF-8 text (invalid byte 0xe9)"
        assert _where(error) == (3, 14)

    def test_utf16_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text("a: 1\n", encoding="utf-16")

        assert "UTF-16" in _read_error(path).message

    def test_folder_and_missing_file(self, tmp_path: Path) -> None:
        assert _read_error(tmp_path).message == "is a folder"
        assert _read_error(tmp_path / "none.yaml").message == "no such file"


def _read_error(path: Path) -> InputError:
    with pytest.raises(InputError) as caught:
        read_document(path)
    return caught.value

"""Read a YAML or JSON file into plain data, remembering where every value was.

`read_document` returns a `Document`: the data (dicts, lists, strings,
numbers, booleans and None) and the line and column of every value and of
every mapping key, so that later stages point their errors at the exact
place in the file.

Only what a careful user means is accepted:

- YAML is read from its event stream with PyYAML's safe machinery, and the
  data is built here, without recursion, so that nesting, alias expansion
  ("billion laughs") and duplicate keys are all under our control;
- ``.json`` files are strict JSON (RFC 8259): no trailing commas, no
  comments, no ``NaN``, no duplicate keys;
- files larger than `MAX_FILE_BYTES`, binary or non-UTF-8 files, several
  YAML documents, empty files and a top level that is not a mapping are
  refused with a located error.

Every refusal is an `InputError` with a `Location`; a file with several
duplicate keys raises `InputErrors` holding one error per key.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import InputError, InputErrors, Location

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "Document",
    "DocumentPath",
    "parse_json",
    "parse_text",
    "parse_yaml",
    "read_document",
    "read_text",
]

DocumentPath = tuple[str | int, ...]
Position = tuple[int, int]

# A request suite of a megabyte is already unusual; anything bigger is almost
# certainly the wrong file, and refusing it early keeps memory bounded.
MAX_FILE_BYTES = 1024 * 1024
# Deeper than any sensible document; far below what would exhaust a stack.
MAX_DEPTH = 64
# Values that aliases may add by expansion. Repeating a header block a few
# hundred times stays far below; a "billion laughs" file hits it at once.
MAX_ALIAS_NODES = 10_000

_JSON_SUFFIXES = frozenset({".json"})
_EMPTY = "the file is empty (nothing but blank lines or comments)"


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed file: its data and the position of each value and key in it.

    Positions are 1-based ``(line, column)``. A path that was not recorded
    (a value inside an alias, or a path that does not exist) falls back to
    its nearest recorded parent.
    """

    file: str
    data: dict[str, Any]
    values: Mapping[DocumentPath, Position] = field(repr=False)
    keys: Mapping[DocumentPath, Position] = field(repr=False)

    def location_of(self, path: Sequence[str | int]) -> Position:
        """Where the value at `path` starts, or its nearest recorded parent."""
        current = tuple(path)
        while current:
            position = self.values.get(current)
            if position is not None:
                return position
            current = current[:-1]
        return self.values.get((), (1, 1))

    def key_location_of(self, path: Sequence[str | int]) -> Position:
        """Where the mapping key naming the last part of `path` is written."""
        position = self.keys.get(tuple(path))
        if position is not None:
            return position
        return self.location_of(path)

    def locate(self, path: Sequence[str | int], *, key: bool = False) -> Location:
        """A `Location` for the value (or with `key`, the key) at `path`."""
        line, column = self.key_location_of(path) if key else self.location_of(path)
        return Location(self.file, line, column, tuple(path))


def read_document(path: Path, display: str | None = None) -> Document:
    """Read and parse the file at `path`; errors name it as `display`.

    Raises:
        InputError: the file cannot be read, is too large, binary, not UTF-8,
            or not a valid document (see the module docstring).
        InputErrors: several duplicate keys.
    """
    name = display if display is not None else str(path)
    text = read_text(path, name)
    return parse_text(text, name, json_syntax=path.suffix.lower() in _JSON_SUFFIXES)


def read_text(path: Path, display: str | None = None) -> str:
    """The UTF-8 text of the file at `path`, within the size limit.

    Raises:
        InputError: the file cannot be read, is too large, binary or not UTF-8.
    """
    name = display if display is not None else str(path)
    return _decode(_read_bytes(path, name), name)


def parse_text(text: str, file: str, *, json_syntax: bool) -> Document:
    """Parse `text` as strict JSON or as YAML."""
    if json_syntax:
        return parse_json(text, file)
    return parse_yaml(text, file)


def _at(file: str, position: Position = (1, 1)) -> Location:
    return Location(file, position[0], position[1])


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        if not path.is_file():
            reason = "is a folder" if path.is_dir() else "is not a regular file"
            if not path.exists():
                reason = "no such file"
            raise InputError(reason, _at(name))
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            message = _too_large(size)
            raise InputError(message, _at(name))
        with path.open("rb") as stream:
            # Read one byte past the limit: a file may grow after the stat.
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        message = f"cannot read the file: {error.strerror or error}"
        raise InputError(message, _at(name)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InputError(_too_large(len(raw)), _at(name))
    return raw


def _too_large(size: int) -> str:
    limit = MAX_FILE_BYTES // 1024
    return f"file too large ({size} bytes; the limit is {limit} KiB)"


def _decode(raw: bytes, name: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        message = "the file is UTF-16; save it as UTF-8"
        raise InputError(message, _at(name))
    nul = raw.find(b"\x00")
    if nul >= 0:
        message = "binary file (NUL byte); expected UTF-8 text"
        raise InputError(message, _at(name, _byte_position(raw, nul)))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text (invalid byte 0x{raw[error.start]:02x})"
        raise InputError(message, _at(name, _byte_position(raw, error.start))) from None
    return text.removeprefix("\ufeff")


def _byte_position(raw: bytes, offset: int) -> Position:
    line_start = raw.rfind(b"\n", 0, offset) + 1
    line = raw.count(b"\n", 0, offset) + 1
    column = len(raw[line_start:offset].decode("utf-8", errors="replace")) + 1
    return line, column


# --------------------------------------------------------------------- YAML

# libyaml's parser when PyYAML was built with it: the same events, ten times
# faster, and it accepts tabs where YAML allows them (between tokens).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_SCALAR_TAGS = frozenset(
    {
        _STR,
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        # Dates stay the text the user wrote: the files are JSON-shaped.
        "tag:yaml.org,2002:timestamp",
    }
)


def _yaml_position(mark: Any) -> Position:
    return mark.line + 1, mark.column + 1


@dataclass(slots=True)
class _Anchor:
    value: Any
    size: int
    height: int


@dataclass(slots=True)
class _Frame:
    """A mapping or sequence being built."""

    path: DocumentPath
    container: dict[str, Any] | list[Any]
    anchor: str | None
    size: int = 1
    height: int = 1
    # Mappings only: the key waiting for its value, and where each key was.
    key: str | None = None
    key_position: Position = (0, 0)
    expecting_key: bool = True
    first_lines: dict[str, int] = field(default_factory=dict)
    merges: list[Any] = field(default_factory=list)
    merge_pending: bool = False


class _YamlBuilder:
    """Builds plain data from PyYAML events, iteratively and within limits."""

    def __init__(self, text: str, file: str) -> None:
        self.file = file
        # PyYAML's loader methods are untyped; it is used through `Any`.
        self.loader: Any = _SafeLoader(text)
        self.values: dict[DocumentPath, Position] = {}
        self.keys: dict[DocumentPath, Position] = {}
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.stack: list[_Frame] = []
        self.alias_nodes = 0
        self.duplicates: list[InputError] = []

    def error(self, message: str, mark: Any) -> InputError:
        return InputError(message, _at(self.file, _yaml_position(mark)))

    def build(self) -> Document:
        loader = self.loader
        try:
            loader.get_event()  # StreamStart
            if loader.check_event(yaml.StreamEndEvent):
                raise InputError(_EMPTY, _at(self.file))
            loader.get_event()  # DocumentStart
            root, root_mark = self._document()
            loader.get_event()  # DocumentEnd
            if loader.check_event(yaml.DocumentStartEvent):
                event = loader.peek_event()
                message = "several YAML documents in one file; keep one per file"
                raise self.error(message, event.start_mark)
        finally:
            dispose = getattr(loader, "dispose", None)
            if dispose is not None:
                dispose()
        if self.duplicates:
            if len(self.duplicates) == 1:
                raise self.duplicates[0]
            raise InputErrors(self.duplicates)
        if root is None:
            raise InputError("the document is empty", _at(self.file, root_mark))
        if not isinstance(root, dict):
            message = f"the top level must be a mapping, got {_kind(root)}"
            raise InputError(message, _at(self.file, root_mark))
        return Document(self.file, root, self.values, self.keys)

    def _document(self) -> tuple[Any, Position]:
        loader = self.loader
        result: list[Any] = []
        root_mark: Position = (1, 1)
        while True:
            event = loader.get_event()
            if not self.stack and not result:
                root_mark = _yaml_position(event.start_mark)
            if isinstance(event, yaml.ScalarEvent):
                self._add(self._scalar(event), event, size=1, height=0, result=result)
            elif isinstance(event, yaml.AliasEvent):
                self._alias(event, result)
            elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                self._open(event)
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                self._close(result)
            if not self.stack and result:
                return result[0], root_mark

    def _child_path(self) -> DocumentPath | None:
        """The path of the next value, or None when it is a mapping key."""
        if not self.stack:
            return ()
        frame = self.stack[-1]
        if isinstance(frame.container, list):
            return (*frame.path, len(frame.container))
        if frame.expecting_key:
            return None
        assert frame.key is not None
        return (*frame.path, frame.key)

    def _open(self, event: Any) -> None:
        path = self._child_path()
        if path is None:
            message = "a mapping key must be a plain value, not a mapping or list"
            raise self.error(message, event.start_mark)
        if len(self.stack) >= MAX_DEPTH:
            message = f"nesting deeper than {MAX_DEPTH} levels"
            raise self.error(message, event.start_mark)
        is_mapping = isinstance(event, yaml.MappingStartEvent)
        expected = _MAP if is_mapping else _SEQ
        if event.tag not in (None, "!", expected):
            message = f"unsupported YAML tag {_tag_name(event.tag)}"
            raise self.error(message, event.start_mark)
        self.values[path] = _yaml_position(event.start_mark)
        container: dict[str, Any] | list[Any] = {} if is_mapping else []
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame(path, container, event.anchor))

    def _close(self, result: list[Any]) -> None:
        frame = self.stack.pop()
        if isinstance(frame.container, dict):
            self._apply_merges(frame)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            anchor = _Anchor(frame.container, frame.size, frame.height)
            self.anchors[frame.anchor] = anchor
        self._place(frame.container, frame.size, frame.height, result)

    def _apply_merges(self, frame: _Frame) -> None:
        mapping = frame.container
        assert isinstance(mapping, dict)
        for merged in frame.merges:
            for key, value in merged.items():
                mapping.setdefault(key, value)

    def _scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self.loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag == _MERGE:
            return _MergeKey(event.value)
        if tag not in _SCALAR_TAGS:
            message = f"unsupported YAML tag {_tag_name(tag)}"
            raise self.error(message, event.start_mark)
        if tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return event.value
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark)
        construct: Callable[[Any, Any], Any] = self.loader.yaml_constructors[tag]
        try:
            return construct(self.loader, node)
        except (ValueError, yaml.YAMLError):
            kind = tag.rsplit(":", 1)[-1]
            message = f"invalid {kind} {_short(event.value)}"
            raise self.error(message, event.start_mark) from None

    def _alias(self, event: Any, result: list[Any]) -> None:
        name = event.anchor
        if name in self.open_anchors:
            message = f"alias *{name} refers to a collection that contains it"
            raise self.error(message, event.start_mark)
        anchor = self.anchors.get(name)
        if anchor is None:
            raise self.error(f"undefined alias *{name}", event.start_mark)
        self.alias_nodes += anchor.size
        if self.alias_nodes > MAX_ALIAS_NODES:
            message = (
                f"aliases expand to more than {MAX_ALIAS_NODES} values "
                "(an alias bomb?); refused"
            )
            raise self.error(message, event.start_mark)
        if len(self.stack) + anchor.height > MAX_DEPTH:
            message = f"nesting deeper than {MAX_DEPTH} levels (through alias *{name})"
            raise self.error(message, event.start_mark)
        self._add(anchor.value, event, anchor.size, anchor.height, result)

    def _add(
        self, value: Any, event: Any, size: int, height: int, result: list[Any]
    ) -> None:
        """Place a scalar or alias value, which may be a mapping key."""
        if isinstance(event, yaml.ScalarEvent) and event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, 1, 0)
        if self.stack:
            frame = self.stack[-1]
            if isinstance(frame.container, dict) and frame.expecting_key:
                self._key(frame, value, event)
                return
        path = self._child_path()
        assert path is not None
        self.values[path] = _yaml_position(event.start_mark)
        self._place(value, size, height, result)

    def _key(self, frame: _Frame, value: Any, event: Any) -> None:
        position = _yaml_position(event.start_mark)
        if isinstance(value, dict | list):
            message = "a mapping key must be a plain value, not a mapping or list"
            raise self.error(message, event.start_mark)
        if isinstance(value, _MergeKey):
            frame.merge_pending = True
            frame.expecting_key = False
            frame.key = "<<"
            frame.key_position = position
            return
        # Keys are text, written as they were (``200:`` is the key "200").
        if isinstance(value, str):
            key = value
        elif isinstance(event, yaml.ScalarEvent):
            key = event.value
        else:
            key = json.dumps(value)
        first_line = frame.first_lines.get(key)
        if first_line is not None:
            message = f"duplicate key {_short(key)} (first at line {first_line})"
            self.duplicates.append(InputError(message, _at(self.file, position)))
        else:
            frame.first_lines[key] = position[0]
        frame.key = key
        frame.key_position = position
        frame.expecting_key = False
        self.keys[(*frame.path, key)] = position

    def _place(self, value: Any, size: int, height: int, result: list[Any]) -> None:
        if not self.stack:
            result.append(value)
            return
        frame = self.stack[-1]
        frame.size += size
        frame.height = max(frame.height, height + 1)
        if isinstance(frame.container, list):
            frame.container.append(value)
            return
        assert frame.key is not None
        if frame.merge_pending:
            self._merge_value(frame, value)
        else:
            frame.container[frame.key] = value
        frame.expecting_key = True
        frame.merge_pending = False

    def _merge_value(self, frame: _Frame, value: Any) -> None:
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                message = "a merge key (<<) takes a mapping or a list of mappings"
                raise InputError(message, _at(self.file, frame.key_position))
            frame.merges.append(source)
        path = (*frame.path, "<<")
        self.values.pop(path, None)


@dataclass(frozen=True, slots=True)
class _MergeKey:
    text: str


def parse_yaml(text: str, file: str) -> Document:
    """Parse YAML text into a `Document` (see the module docstring)."""
    try:
        return _YamlBuilder(text, file).build()
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error, text, file) from None
    except yaml.reader.ReaderError as error:
        position = _text_position(text, error.position)
        message = f"character #x{error.character:04x} is not allowed in YAML"
        raise InputError(message, _at(file, position)) from None
    except yaml.YAMLError as error:
        raise InputError(f"invalid YAML: {error}", _at(file)) from None


def _syntax_error(error: yaml.MarkedYAMLError, text: str, file: str) -> InputError:
    mark = error.problem_mark or error.context_mark
    position = _yaml_position(mark) if mark is not None else (1, 1)
    problem = error.problem or error.context or "invalid YAML"
    if mark is not None and _char_at(text, mark.index) == "\t":
        line_start = text.rfind("\n", 0, mark.index) + 1
        if text[line_start : mark.index].strip(" \t") == "":
            problem = "tab used for indentation; indent YAML with spaces"
        else:
            problem = "tab character not allowed here; use spaces"
        return InputError(problem, _at(file, position))
    message = f"YAML syntax error: {problem}"
    if error.context and error.problem and error.context_mark is not None:
        context_line = error.context_mark.line + 1
        message += f" ({error.context} at line {context_line})"
    return InputError(message, _at(file, position))


def _char_at(text: str, index: int) -> str:
    return text[index] if 0 <= index < len(text) else ""


def _text_position(text: str, index: int) -> Position:
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


# --------------------------------------------------------------------- JSON

_JSON_WHITESPACE = " \t\n\r"
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _JsonParser:
    """A strict JSON parser that records the position of every value and key.

    Recursive, but only `MAX_DEPTH` deep: the depth is checked before each
    descent.
    """

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.index = 0
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.values: dict[DocumentPath, Position] = {}
        self.keys: dict[DocumentPath, Position] = {}
        self.duplicates: list[InputError] = []
        self.comma = 0  # where the last comma was, for "trailing comma"

    def position(self, index: int) -> Position:
        line = bisect.bisect_right(self.line_starts, index)
        return line, index - self.line_starts[line - 1] + 1

    def error(self, message: str, index: int | None = None) -> InputError:
        where = self.index if index is None else index
        return InputError(message, _at(self.file, self.position(where)))

    def skip_whitespace(self) -> None:
        text, index = self.text, self.index
        while index < len(text) and text[index] in _JSON_WHITESPACE:
            index += 1
        self.index = index

    def peek(self) -> str:
        return _char_at(self.text, self.index)

    def parse(self) -> Document:
        self.skip_whitespace()
        if self.index >= len(self.text):
            raise self.error(_EMPTY, 0)
        start = self.index
        root = self.value((), 0)
        self.skip_whitespace()
        if self.index < len(self.text):
            raise self.error("extra data after the JSON value")
        if self.duplicates:
            if len(self.duplicates) == 1:
                raise self.duplicates[0]
            raise InputErrors(self.duplicates)
        if not isinstance(root, dict):
            message = f"the top level must be an object, got {_kind(root)}"
            raise self.error(message, start)
        return Document(self.file, root, self.values, self.keys)

    def value(self, path: DocumentPath, depth: int) -> Any:
        self.skip_whitespace()
        start = self.index
        self.values[path] = self.position(start)
        char = self.peek()
        if char in "{[":
            if depth >= MAX_DEPTH:
                raise self.error(f"nesting deeper than {MAX_DEPTH} levels")
            if char == "{":
                return self.object(path, depth + 1)
            return self.array(path, depth + 1)
        if char == '"':
            return self.string()
        for literal, result in _LITERALS.items():
            if self.text.startswith(literal, start):
                self.index = start + len(literal)
                return result
        match = _NUMBER.match(self.text, start)
        if match:
            return self.number(match)
        if not char:
            raise self.error("unexpected end of file; expected a value")
        if self.text.startswith(("NaN", "Infinity", "-Infinity"), start):
            raise self.error("NaN and Infinity are not JSON")
        raise self.error(f"expected a JSON value, found {char!r}")

    def number(self, match: re.Match[str]) -> int | float:
        text = match.group()
        self.index = match.end()
        try:
            if any(c in text for c in ".eE"):
                number = float(text)
                if number in (float("inf"), float("-inf")):
                    raise ValueError(text)
                return number
            return int(text)
        except ValueError:
            raise self.error("number out of range", match.start()) from None

    def string(self) -> str:
        try:
            text, end = json.decoder.scanstring(self.text, self.index + 1, True)  # type: ignore[attr-defined]
        except json.JSONDecodeError as error:
            reason = error.msg.removesuffix(" at").lower()
            raise self.error(f"invalid string: {reason}", error.pos) from None
        self.index = end
        assert isinstance(text, str)
        return text

    def expect(self, char: str, what: str) -> None:
        self.skip_whitespace()
        if self.peek() != char:
            found = self.peek()
            shown = repr(found) if found else "the end of the file"
            raise self.error(f"expected {what}, found {shown}")
        self.index += 1

    def object(self, path: DocumentPath, depth: int) -> dict[str, Any]:
        self.index += 1
        result: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        self.skip_whitespace()
        if self.peek() == "}":
            self.index += 1
            return result
        while True:
            self.skip_whitespace()
            if self.peek() != '"':
                if self.peek() == "}" and result:
                    raise self.error("trailing comma before '}'", self.comma)
                raise self.error(f"expected a string key, found {self._shown()}")
            key_position = self.position(self.index)
            key = self.string()
            self.expect(":", "':' after the key")
            child = (*path, key)
            if key in first_lines:
                first = first_lines[key]
                message = f"duplicate key {_short(key)} (first at line {first})"
                location = _at(self.file, key_position)
                self.duplicates.append(InputError(message, location))
            else:
                first_lines[key] = key_position[0]
                self.keys[child] = key_position
            result.setdefault(key, self.value(child, depth))
            self.skip_whitespace()
            if self.peek() == ",":
                self.comma = self.index
                self.index += 1
                continue
            self.expect("}", "',' or '}'")
            return result

    def array(self, path: DocumentPath, depth: int) -> list[Any]:
        self.index += 1
        result: list[Any] = []
        self.skip_whitespace()
        if self.peek() == "]":
            self.index += 1
            return result
        while True:
            self.skip_whitespace()
            if self.peek() == "]":
                raise self.error("trailing comma before ']'", self.comma)
            result.append(self.value((*path, len(result)), depth))
            self.skip_whitespace()
            if self.peek() == ",":
                self.comma = self.index
                self.index += 1
                continue
            self.expect("]", "',' or ']'")
            return result

    def _shown(self) -> str:
        found = self.peek()
        return repr(found) if found else "the end of the file"


def parse_json(text: str, file: str) -> Document:
    """Parse strict JSON text into a `Document`."""
    return _JsonParser(text, file).parse()


# ------------------------------------------------------------------ helpers


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "null"
    return "a string"


def _tag_name(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!", 1)


def _short(text: str, limit: int = 40) -> str:
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return repr(text)

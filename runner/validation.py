"""Check a parsed document against the exported JSON Schema, then the models.

Two passes, each mapped back to the file:

1. `schema_errors` validates the document with jsonschema against the
   schema exported from the models (`runner.schema`), the same file an
   editor uses, and collects every error. Errors under ``anyOf`` are
   narrowed to the branch the user evidently meant (the one whose type
   matches), so that a misspelt key in an inline connection reads as
   "unknown field", not as "not valid under any of the given schemas".
2. `build_model` builds the pydantic model, which adds what a schema cannot
   say (URLs that parse, for one), and maps pydantic's error locations to
   the same file positions.

Messages name the field's problem and show the offending value, except for
secret fields, and except for values rendered from a template (which may
come from ``env``): those show the template as written instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from runner.connections import CONNECTION_TYPES, secret_fields
from runner.errors import InputError
from runner.yamlsource import Document, DocumentPath

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError as SchemaViolation
    from jsonschema.protocols import Validator

__all__ = [
    "SECRET_FIELDS",
    "DocumentKind",
    "build_model",
    "did_you_mean",
    "schema_errors",
    "show_value",
]

DocumentKind = Literal["connection", "suite"]
ModelT = TypeVar("ModelT", bound=BaseModel)

# Fields whose value is never shown, whatever is wrong with it: the secret
# fields of every connection type. Matched by name anywhere in a file, so a
# suite's ``vars.token`` is not shown either; hiding too much is the safe side.
SECRET_FIELDS = secret_fields()

_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}
_NAME_RULE = "use letters, digits and '_', not starting with a digit"


# The models' export of the file schemas, shipped in the package (see
# runner.schema): exporting it at start-up would cost every run pydantic time.
PACKAGED_SCHEMAS = Path(__file__).parent / "schemas"


@functools.cache
def _validator(kind: DocumentKind) -> Validator:
    """The validator of one kind of file, built once per process."""
    # jsonschema is imported here: it is only needed once a file is checked.
    from jsonschema import Draft202012Validator

    schema = json.loads((PACKAGED_SCHEMAS / f"{kind}.schema.json").read_bytes())
    validator: Validator = Draft202012Validator(schema)
    return validator


def schema_errors(
    document: Document,
    kind: DocumentKind,
    data: Any = None,
    *,
    base: DocumentPath = (),
) -> list[InputError]:
    """Every schema error of `data` (default: the document's own data).

    `data` may be the document's data with some templates rendered; where a
    value differs from what the file says, messages show the file's text.
    `base` is where `data` sits in the document (an inline connection).
    """
    instance = document.data if data is None else data
    context = _Context(document, base)
    errors: list[InputError] = []
    seen: set[str] = set()
    for violation in _validator(kind).iter_errors(instance):
        for leaf in _leaf_errors(violation):
            for error in _describe(leaf, context):
                text = error.render()
                if text not in seen:
                    seen.add(text)
                    errors.append(error)
    return errors


def build_model(
    document: Document,
    model: type[ModelT],
    data: Any,
    *,
    base: DocumentPath = (),
) -> tuple[ModelT | None, list[InputError]]:
    """Build `model` from `data` (found at `base` in the document).

    Returns the model, or None and the located errors.
    """
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        context = _Context(document, base)
        errors = [_pydantic_error(detail, data, context) for detail in exc.errors()]
        return None, errors


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string."""
    options = [choice for choice in choices if isinstance(choice, str)]
    lowered = {choice.lower(): choice for choice in options}
    match = lowered.get(word.lower())
    if match is None:
        import difflib  # only a file with a mistake in it needs it

        close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
        match = close[0] if close else None
    if match is None or match == word:
        return ""
    return f" (did you mean {match!r}?)"


def show_value(value: Any, limit: int = 60) -> str:
    """A short rendering of a value for a message."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 4] + "...'"
    return text


class _Context:
    """What messages need to know: positions, and the file's own values."""

    def __init__(self, document: Document, base: DocumentPath) -> None:
        self.document = document
        self.base = base

    def path(self, relative: Iterable[str | int]) -> DocumentPath:
        return (*self.base, *relative)

    def locate(self, path: DocumentPath, *, key: bool = False) -> Any:
        return self.document.locate(path, key=key)

    def written(self, path: DocumentPath) -> Any:
        """The value as the file writes it, or `_MISSING`."""
        value: Any = self.document.data
        for part in path:
            if isinstance(value, dict) and isinstance(part, str) and part in value:
                value = value[part]
            elif isinstance(value, list) and isinstance(part, int):
                if not 0 <= part < len(value):
                    return _MISSING
                value = value[part]
            else:
                return _MISSING
        return value

    def shown(self, path: DocumentPath, value: Any) -> str | None:
        """How to show `value` found at `path`, or None when it must not be."""
        if any(part in SECRET_FIELDS for part in path if isinstance(part, str)):
            return None
        written = self.written(path)
        if isinstance(written, str) and written != value and "{" in written:
            return f"{_kind_of(value)} rendered from {show_value(written)}"
        return show_value(value)


_MISSING: Any = object()


def _kind_of(value: Any) -> str:
    for name, test in _KINDS:
        if test(value):
            return _TYPE_NAMES[name]
    return "a value"


_KINDS: Sequence[tuple[str, Callable[[Any], bool]]] = (
    ("null", lambda v: v is None),
    ("boolean", lambda v: isinstance(v, bool)),
    ("integer", lambda v: isinstance(v, int)),
    ("number", lambda v: isinstance(v, float)),
    ("string", lambda v: isinstance(v, str)),
    ("object", lambda v: isinstance(v, dict)),
    ("array", lambda v: isinstance(v, list)),
)


# -------------------------------------------------------------- jsonschema


def _leaf_errors(error: SchemaViolation) -> list[SchemaViolation]:
    """The errors worth reporting for `error`, looking inside anyOf/oneOf."""
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[SchemaViolation]] = {}
    for child in error.context:
        branches.setdefault(child.relative_schema_path[0], []).append(child)
    meant = [
        children
        for children in branches.values()
        if not all(_is_root_type_error(child, error) for child in children)
    ]
    if not meant:
        return [error]  # described as a type error over all branches
    if len(meant) > 1:
        # Several branches fit the value's type: report the best one's errors.
        from jsonschema.exceptions import best_match

        best = best_match([child for children in meant for child in children])
        if best is None:  # pragma: no cover - meant is never empty here
            return [error]
        meant = [children for children in meant if best in children]
    leaves: list[SchemaViolation] = []
    for child in meant[0]:
        leaves.extend(_leaf_errors(child))
    return leaves


def _is_root_type_error(child: SchemaViolation, parent: SchemaViolation) -> bool:
    """Whether `child` only says the value is not this branch's type."""
    same_instance = list(child.absolute_path) == list(parent.absolute_path)
    return same_instance and child.validator == "type"


def _branch_types(error: SchemaViolation) -> list[str]:
    types: list[str] = []
    for child in error.context or ():
        if child.validator != "type":
            continue
        expected = child.validator_value
        for name in [expected] if isinstance(expected, str) else expected:
            if name not in types:
                types.append(name)
    return types


def _type_phrase(types: Sequence[str]) -> str:
    names = [_TYPE_NAMES.get(name, name) for name in types]
    if "an integer" in names and "a number" in names:
        names.remove("an integer")
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]


def _describe(error: SchemaViolation, context: _Context) -> list[InputError]:
    path = context.path(error.absolute_path)
    value = error.instance
    kind = error.validator
    expected = error.validator_value
    shown = context.shown(path, value)
    got = f", got {shown}" if shown is not None else ""

    if kind == "additionalProperties" and isinstance(value, dict):
        return _unknown_fields(error, context, path)
    if kind == "required" and isinstance(value, dict):
        missing = [name for name in expected if name not in value]
        return [
            InputError(f"missing required field {name!r}", context.locate(path))
            for name in missing
        ]
    if "propertyNames" in error.relative_schema_path:
        name = str(value)
        message = f"invalid name {name!r}: {_NAME_RULE}"
        return [InputError(message, context.locate((*path, name), key=True))]

    message = _message(kind, expected, value, got, error)
    return [InputError(message, context.locate(path))]


def _message(
    kind: Any, expected: Any, value: Any, got: str, error: SchemaViolation
) -> str:
    if kind in ("anyOf", "oneOf"):
        return f"expected {_type_phrase(_branch_types(error))}{got}"
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        return f"expected {_type_phrase(types)}{got}"
    if kind == "enum":
        choices = ", ".join(show_value(choice) for choice in expected)
        hint = did_you_mean(value, expected) if isinstance(value, str) else ""
        return f"expected one of {choices}{got}{hint}"
    if kind == "const":
        return f"expected {show_value(expected)}{got}"
    bounds = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "greater than",
        "exclusiveMaximum": "less than",
    }
    if kind in bounds:
        return f"must be {bounds[kind]} {expected}{got}"
    if kind in ("minLength", "minItems") and expected == 1:
        return "must not be empty"
    if kind == "minLength":
        return f"must be at least {expected} characters long"
    if kind == "maxLength":
        return f"must be at most {expected} characters long"
    if kind == "minItems":
        return f"must have at least {expected} items"
    if kind == "maxItems":
        return f"must have at most {expected} items"
    if kind == "pattern":
        return f"must match the pattern {expected}{got}"
    if got:
        return str(error.message)
    return f"invalid value ({kind})"


def _unknown_fields(
    error: SchemaViolation, context: _Context, path: DocumentPath
) -> list[InputError]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    allowed = list(schema.get("properties", {}))
    this_type = _connection_type(schema)
    errors = []
    for name in error.instance:
        if name in allowed:
            continue
        key = str(name)
        message = f"unknown field {key!r}"
        owner = _other_connection_type(key, this_type)
        if owner is not None:
            message = (
                f"field {key!r} is not allowed on {_article(this_type)} "
                f"{this_type} connection (it belongs to type {owner}"
            )
            message += (
                ": add token_url)" if owner == "oauth2" else f": set type: {owner})"
            )
        else:
            message += did_you_mean(key, allowed)
        errors.append(InputError(message, context.locate((*path, key), key=True)))
    return errors


def _connection_type(schema: dict[str, Any]) -> str | None:
    declared = schema.get("properties", {}).get("type", {})
    if not isinstance(declared, dict) or "x-type-id" not in schema:
        return None
    const = declared.get("const")
    return const if isinstance(const, str) else None


def _other_connection_type(field: str, this_type: str | None) -> str | None:
    if this_type is None:
        return None
    for name, entry in CONNECTION_TYPES.items():
        fields = entry.model.model_fields
        written = {info.alias or key for key, info in fields.items()}
        if name != this_type and field in written:
            return name
    return None


def _article(word: str | None) -> str:
    # "an http", "an oauth2", "an api_key", but "a basic", "a bearer".
    return "an" if word and (word[0] in "aeiou" or word == "http") else "a"


# ---------------------------------------------------------------- pydantic


def _pydantic_error(detail: Any, data: Any, context: _Context) -> InputError:
    path = context.path(_data_path(detail.get("loc", ()), data))
    value = detail.get("input")
    shown = context.shown(path, value)
    kind = str(detail.get("type", ""))
    text = str(detail.get("msg", "invalid value"))
    if kind.startswith("url"):
        reason = text.removeprefix("Input should be a valid URL, ")
        what = f"invalid URL {shown}" if shown is not None else "invalid URL"
        message = f"{what}: {reason}"
    else:
        # A validator's own message comes after pydantic's "Value error, ".
        text = text.removeprefix("Value error, ")
        message = text[:1].lower() + text[1:]
        if shown is not None and kind not in ("missing", "extra_forbidden"):
            message += f", got {shown}"
    return InputError(message, context.locate(path))


def _data_path(loc: Sequence[Any], data: Any) -> DocumentPath:
    """The part of pydantic's `loc` that exists in `data`.

    pydantic inserts the name of a union member (``str``, ``list[int]``)
    into the location; those parts name no key and are dropped.
    """
    path: list[str | int] = []
    value = data
    for part in loc:
        in_mapping = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int)
        if in_mapping or (in_list and 0 <= part < len(value)):
            path.append(part)
            value = value[part]
    return tuple(path)

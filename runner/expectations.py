"""Judging responses: what an `expect` block asks, and what a capture takes.

An `Expect` compiles once, when the files load (`CompiledExpect.build`): its
`that` expressions compile and its JSON Schema is checked, so that a mistake
in either is an input error before anything is sent. Each response is then
judged against it (`CompiledExpect.judge`), which gives the reasons it
fails, each one line saying what was expected and what came.

Values shown in a reason are cut to about 200 characters; header values that
are secret whatever they hold (``Set-Cookie``, ...) are never shown.
"""

from __future__ import annotations

import itertools
import json as jsonlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from referencing.exceptions import Unresolvable

from runner.errors import InputError, TemplateError
from runner.secrets import SENSITIVE_HEADERS
from runner.templates import Expression, Templates, is_template

if TYPE_CHECKING:
    from runner.suites import Expect

__all__ = [
    "CompiledExpect",
    "Headers",
    "ResponseView",
    "evaluate_captures",
]

# How much of a value or body a reason shows.
MAX_SHOWN: Final = 200

# How many differences of a `json` subset a reason lists.
MAX_DIFFERENCES: Final = 3

# Schema errors considered for the most relevant one: a body failing a schema
# in thousands of places must not take long to judge.
MAX_SCHEMA_ERRORS: Final = 100

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WHITESPACE = re.compile(r"\s+")
# States of a response body's JSON before and after parsing.
_UNPARSED: Final = object()

# Masks the secrets in a text before it is cut to be shown in a reason.
_Mask = Callable[[str], str]


def _unmasked(text: str) -> str:
    """For texts that hold no run-time value (a schema file's own errors)."""
    return text


_NOT_JSON: Final = object()


class Headers(Mapping[str, str]):
    """Response headers, looked up by name in any case.

    ``headers.content_type`` (from a template) finds ``Content-Type`` too:
    a name not found with underscores is tried with dashes. The index by
    lower-case name is built on first use: most responses that pass are
    never asked for a header.
    """

    __slots__ = ("_index", "_source")

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._source = headers
        self._index: dict[str, tuple[str, str]] | None = None

    @property
    def _items(self) -> dict[str, tuple[str, str]]:
        index = self._index
        if index is None:
            index = {
                name.lower(): (name, value) for name, value in self._source.items()
            }
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        key = name.lower()
        items = self._items
        item = items.get(key)
        if item is None and "_" in key:
            item = items.get(key.replace("_", "-"))
        if item is None:
            raise KeyError(name)
        return item[1]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self[name]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"<Headers: {', '.join(self)}>"


@dataclass(frozen=True, slots=True, repr=False)
class ResponseView:
    """A response as expectations, captures and templates see it (``response``).

    The body is parsed as JSON on first use of `json`, whatever its content
    type says; `json` is None when it is not JSON (`is_json` tells that
    apart from a JSON ``null``).
    """

    status: int
    headers: Mapping[str, str]
    text: str
    elapsed_ms: float
    _parsed: Any = field(default=_UNPARSED, init=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))

    def __repr__(self) -> str:
        size = len(self.text)
        return (
            f"<ResponseView {self.status}, {size} characters, {self.elapsed_ms:.0f} ms>"
        )

    @property
    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        parsed = self._parse()
        return None if parsed is _NOT_JSON else parsed

    @property
    def is_json(self) -> bool:
        """Whether the body is JSON."""
        return self._parse() is not _NOT_JSON

    @property
    def content_type(self) -> str:
        """The media type of the body, without parameters (``text/html``)."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    def as_names(self) -> dict[str, Any]:
        """The names an expression over this response sees: ``response``."""
        return {"response": self}

    def _parse(self) -> Any:
        parsed = self._parsed
        if parsed is _UNPARSED:
            try:
                parsed = jsonlib.loads(self.text)
            except (ValueError, RecursionError):
                parsed = _NOT_JSON
            object.__setattr__(self, "_parsed", parsed)
        return parsed


class CompiledExpect:
    """An `Expect` compiled once and used to judge every response of its request.

    Its `that` expressions are compiled, its JSON Schema checked and its
    validator built, once. Expected values may hold templates (``json:
    {customer: "{{ customer }}"}``); they render with the names given to
    `judge`.

    Attributes:
        names: The names its templates and expressions read besides
            ``response`` (vars, captures), for the caller to check.
    """

    __slots__ = (
        "_body_contains",
        "_headers",
        "_json",
        "_mask",
        "_max_ms",
        "_status",
        "_templated",
        "_templates",
        "_that",
        "_validator",
        "names",
    )

    def __init__(
        self,
        *,
        templates: Templates,
        status: tuple[int, ...] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = _UNPARSED,
        validator: Any = None,
        body_contains: Sequence[str] = (),
        max_ms: float | None = None,
        that: Sequence[Expression] = (),
    ) -> None:
        self._templates = templates
        self._mask = templates.redactor.redact
        self._status = status
        self._headers = dict(headers or {})
        self._json = json
        self._validator = validator
        self._body_contains = tuple(body_contains)
        self._max_ms = max_ms
        self._that = tuple(that)

        expected: list[Any] = [self._headers, list(self._body_contains)]
        if json is not _UNPARSED:
            expected.append(json)
        self._templated = _has_template(expected)
        used = templates.names_in(expected).union(
            *(expression.names for expression in self._that)
        )
        self.names = used - {"response"}

    @classmethod
    def build(
        cls,
        expect: Expect,
        templates: Templates,
        schema: dict[str, Any] | None = None,
        *,
        schema_checked: bool = False,
    ) -> CompiledExpect:
        """Compile `expect`; `schema` is its JSON Schema when it was a path.

        `schema_checked` says the caller has already checked the JSON Schema
        against its metaschema (the loader does, to locate its errors), so
        that it is not checked twice.

        Raises:
            TemplateError: A `that` expression or a template does not compile.
            InputError: The JSON Schema is not a valid JSON Schema.
        """
        if schema is None and isinstance(expect.json_schema, dict):
            schema = expect.json_schema
        elif schema is None and isinstance(expect.json_schema, str):
            message = f"the schema file {expect.json_schema!r} was not loaded"
            raise ValueError(message)

        status = expect.status
        if isinstance(status, int):
            status = [status]
        body_contains = expect.body_contains
        if isinstance(body_contains, str):
            body_contains = [body_contains]
        has_json = "json_subset" in expect.model_fields_set

        that = []
        for source in expect.that:
            try:
                that.append(templates.compile_expression(source))
            except TemplateError as exc:
                raise TemplateError(f"that: {exc.message}") from None

        return cls(
            templates=templates,
            status=None if status is None else tuple(status),
            headers=expect.headers,
            json=expect.json_subset if has_json else _UNPARSED,
            validator=None
            if schema is None
            else _schema_validator(schema, schema_checked),
            body_contains=body_contains or (),
            max_ms=expect.max_ms,
            that=that,
        )

    def judge(
        self, response: ResponseView, names: Mapping[str, Any] | None = None
    ) -> list[str]:
        """The reasons `response` fails, each one line; empty when it passes.

        Args:
            response: The response to judge.
            names: Vars and captures so far, for templates in expected values
                and for `that` expressions (``response`` is added).
        """
        names = names or {}
        reasons: list[str] = []
        mask = self._mask

        expected = self._rendered_expectations(names, reasons)
        if expected is None:
            return reasons
        headers, body_contains, json = expected

        for reason in (
            self._judge_status(response),
            _judge_headers(headers, response, mask),
            None if json is _UNPARSED else _judge_json(json, response, mask),
            self._judge_schema(response),
            _judge_body(body_contains, response, mask),
            self._judge_time(response),
        ):
            if reason is not None:
                reasons.append(reason)

        reasons.extend(self._judge_that(response, names))
        return reasons

    def _rendered_expectations(
        self, names: Mapping[str, Any], reasons: list[str]
    ) -> tuple[dict[str, str], tuple[str, ...], Any] | None:
        if not self._templated:
            return self._headers, self._body_contains, self._json

        try:
            headers = self._templates.render(self._headers, names)
            body_contains = self._templates.render(list(self._body_contains), names)
            json = self._json
            if json is not _UNPARSED:
                json = self._templates.render(json, names)
        except TemplateError as exc:
            reasons.append(f"expect: {exc.message}")
            return None
        headers = {name: str(value) for name, value in headers.items()}
        return headers, tuple(str(text) for text in body_contains), json

    def _judge_status(self, response: ResponseView) -> str | None:
        mask = self._mask
        status = response.status
        if self._status is None:
            if 200 <= status <= 299:
                return None
            wanted = "a 2xx status"
        elif status in self._status:
            return None
        elif len(self._status) == 1:
            wanted = str(self._status[0])
        else:
            wanted = "one of " + ", ".join(str(code) for code in self._status)

        reason = f"status: expected {wanted}, got {status}"
        if response.text.strip():
            reason += f" ({_body_excerpt(response, mask)})"
        return reason

    def _judge_schema(self, response: ResponseView) -> str | None:
        mask = self._mask
        if self._validator is None:
            return None
        if not response.is_json:
            return f"schema: {_not_json(response, mask)}"

        try:
            errors = list(
                itertools.islice(
                    self._validator.iter_errors(response.json), MAX_SCHEMA_ERRORS
                )
            )
        except Unresolvable as exc:
            return f"schema: cannot resolve a reference: {_shorten(str(exc), mask)}"
        if not errors:
            return None

        error = schema_errors.best_match(errors)
        reason = f"schema: at {error.json_path} {_shorten(error.message, mask)}"
        if len(errors) > 1:
            more = len(errors) - 1
            plus = "+" if len(errors) == MAX_SCHEMA_ERRORS else ""
            reason += f" (and {more}{plus} more)"
        return reason

    def _judge_time(self, response: ResponseView) -> str | None:
        if self._max_ms is None or response.elapsed_ms <= self._max_ms:
            return None
        took = f"{response.elapsed_ms:.0f}"
        return f"max_ms: took {took} ms, expected at most {self._max_ms:g} ms"

    def _judge_that(
        self, response: ResponseView, names: Mapping[str, Any]
    ) -> list[str]:
        if not self._that:
            return []
        mask = self._mask
        scope = {**names, "response": response}
        reasons = []
        for expression in self._that:
            try:
                if expression.evaluate(scope):
                    continue
            except TemplateError as exc:
                reasons.append(f"that: {expression.source}: {exc.message}")
                continue
            reason = f"that: {expression.source} is false"
            reasons.append(reason + _compared_values(expression, scope, mask))
        return reasons


def evaluate_captures(
    captures: Mapping[str, Expression],
    response: ResponseView,
    names: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The value of each capture over `response`.

    Args:
        captures: Capture name to its compiled expression.
        response: The response to capture from.
        names: Vars and captures so far, which the expressions may also read.

    Raises:
        TemplateError: An expression failed, for instance because it reads a
            JSON member the response does not have; the message names the
            capture.
    """
    scope = {**(names or {}), "response": response}
    values = {}
    for name, expression in captures.items():
        try:
            values[name] = expression.evaluate(scope)
        except TemplateError as exc:
            message = f"capture {name!r} ({expression.source}): {exc.message}"
            raise TemplateError(message) from None
    return values


def _schema_validator(schema: dict[str, Any], checked: bool = False) -> Any:
    """A validator for `schema` (draft from its ``$schema``, else 2020-12)."""
    validator_class = validators.validator_for(schema)
    if not checked:
        try:
            validator_class.check_schema(schema)
        except schema_errors.SchemaError as exc:
            shown = _shorten(exc.message, _unmasked)
            message = f"invalid JSON Schema: at {exc.json_path} {shown}"
            raise InputError(message) from None
    return validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)


def _has_template(value: Any) -> bool:
    """Whether `value` holds a template string, even one that reads no name."""
    if isinstance(value, str):
        return is_template(value)
    if isinstance(value, dict):
        return any(_has_template(k) or _has_template(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_template(item) for item in value)
    return False


def _judge_headers(
    expected: Mapping[str, str], response: ResponseView, mask: _Mask
) -> str | None:
    problems = []
    for name, value in expected.items():
        actual = response.headers.get(name)
        if actual == value:
            continue
        if actual is None:
            shown = _show(value, mask)
            problems.append(f"{name} expected {shown}, got no such header")
        elif name.lower() in SENSITIVE_HEADERS:
            problems.append(f"{name} does not have the expected value (not shown)")
        else:
            got = _show(actual, mask)
            problems.append(f"{name} expected {_show(value, mask)}, got {got}")
    return "headers: " + "; ".join(problems) if problems else None


def _judge_json(expected: Any, response: ResponseView, mask: _Mask) -> str | None:
    if not response.is_json:
        return f"json: {_not_json(response, mask)}"

    differences = list(
        itertools.islice(
            _differences(expected, response.json, "$", mask), MAX_DIFFERENCES + 1
        )
    )
    if not differences:
        return None
    reason = "json: " + "; ".join(differences[:MAX_DIFFERENCES])
    if len(differences) > MAX_DIFFERENCES:
        reason += "; and more"
    return reason


def _judge_body(
    expected: Sequence[str], response: ResponseView, mask: _Mask
) -> str | None:
    missing = [text for text in expected if text not in response.text]
    if not missing:
        return None
    shown = ", ".join(_show(text, mask) for text in missing)
    got = _body_excerpt(response, mask) if response.text.strip() else "an empty body"
    return f"body_contains: expected the body to contain {shown} ({got})"


def _differences(expected: Any, actual: Any, path: str, mask: _Mask) -> Iterator[str]:
    """Where `actual` does not contain `expected`, as ``at PATH expected X, got Y``.

    Mappings may have more keys than expected; lists must have the same
    length and match item by item; scalars must be equal, with ``1 == 1.0``
    but ``true != 1``.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            yield f"at {path} expected an object, got {_show(actual, mask)}"
            return
        for key, value in expected.items():
            where = _member_path(path, key)
            if key not in actual:
                yield f"at {where} expected {_show(value, mask)}, got no such member"
            else:
                yield from _differences(value, actual[key], where, mask)
    elif isinstance(expected, list):
        if not isinstance(actual, list):
            yield f"at {path} expected an array, got {_show(actual, mask)}"
            return
        if len(expected) != len(actual):
            yield f"at {path} expected {len(expected)} items, got {len(actual)}"
        for index, (value, item) in enumerate(zip(expected, actual, strict=False)):
            yield from _differences(value, item, f"{path}[{index}]", mask)
    elif not _same_scalar(expected, actual):
        yield f"at {path} expected {_show(expected, mask)}, got {_show(actual, mask)}"


def _same_scalar(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return bool(expected == actual)
    return type(expected) is type(actual) and bool(expected == actual)


def _member_path(path: str, key: Any) -> str:
    if isinstance(key, str) and _IDENTIFIER.match(key):
        return f"{path}.{key}"
    return f"{path}[{jsonlib.dumps(str(key), ensure_ascii=False)}]"


def _compared_values(
    expression: Expression, scope: Mapping[str, Any], mask: _Mask
) -> str:
    """`` (left: 12, right: 10)`` for a failing comparison, else ``""``."""
    comparison = expression.comparison()
    if comparison is None:
        return ""
    _, left, right = comparison
    try:
        left_shown = _show(left.evaluate(scope), mask)
        shown = f"{left_shown}, right: {_show(right.evaluate(scope), mask)}"
    except TemplateError:
        return ""
    return f" (left: {shown})"


def _not_json(response: ResponseView, mask: _Mask) -> str:
    if not response.text.strip():
        return "expected a JSON body, got an empty body"
    kind = response.content_type or "a body with no content type"
    return f"expected a JSON body, got {kind} ({_body_excerpt(response, mask)})"


def _body_excerpt(response: ResponseView, mask: _Mask) -> str:
    return "body: " + _shorten(_WHITESPACE.sub(" ", response.text.strip()), mask)


def _show(value: Any, mask: _Mask) -> str:
    """`value` as JSON, masked, then cut to `MAX_SHOWN` characters.

    Its strings are masked before it is encoded: a string that holds a
    secret already escaped (a JSON body in ``response.text``) would be
    escaped once more by the encoding, into a form no mask knows.
    """
    try:
        text = jsonlib.dumps(_masked(value, mask), ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        # Not repr(value): it escapes strings too, past what the masks know.
        text = f"(a {type(value).__name__} too deeply nested to show)"
    return _shorten(text, mask)


def _masked(value: Any, mask: _Mask) -> Any:
    """`value` with every string in it (mapping keys too) masked."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, dict):
        return {mask(str(key)): _masked(item, mask) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(item, mask) for item in value]
    return value


def _shorten(text: str, mask: _Mask) -> str:
    """`text` masked, then cut: a cut first could leave half a secret unmasked."""
    text = mask(text)
    if len(text) <= MAX_SHOWN:
        return text
    return text[: MAX_SHOWN - 3] + "..."

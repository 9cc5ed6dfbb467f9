"""Load connection and suite files into checked, ready-to-run values.

`load_paths` is what ``check`` and ``run`` both call. For every file it:

1. parses it, keeping positions (`runner.yamlsource`);
2. renders the templates of connections, since connections do not change
   during a run: a connection file sees ``env`` and the ``--var`` values,
   an inline connection also its suite's ``vars``;
3. validates against the exported schema, then builds the models
   (`runner.validation`);
4. for suites, resolves connections relative to the suite file, compiles
   ``that`` and ``capture`` expressions and ``expect.schema``, and checks
   statically that every name a request's templates use is ``env``, a var,
   or captured by an earlier request.

Request templates stay unrendered: captures exist only at run time. Every
error of every file is collected, located at its file, line and column;
nothing stops at the first.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.connections import (
    CONNECTION_TYPES,
    ApiKeyConnection,
    BasicConnection,
    BearerConnection,
    Connection,
    OAuth2Connection,
    Retry,
    connection_type_of,
)
from runner.errors import InputError, InputErrors, Location, TemplateError
from runner.expectations import CompiledExpect
from runner.retrying import RetryPlan
from runner.secrets import NeverPickled, Redactor
from runner.suites import Expect, Request, RequestRetry, Suite
from runner.templates import Expression, Templates, is_template
from runner.validation import (
    SECRET_FIELDS,
    build_model,
    did_you_mean,
    schema_errors,
)
from runner.yamlsource import Document, DocumentPath, read_document, read_text

__all__ = [
    "SUFFIXES",
    "LoadResult",
    "LoadedConnection",
    "LoadedRequest",
    "LoadedSuite",
    "load_paths",
    "parse_var_options",
    "read_env_files",
]

SUFFIXES = frozenset({".yaml", ".yml", ".json"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Names a request's expressions may read besides vars and captures.
_RESPONSE = "response"


@dataclass(frozen=True, slots=True)
class LoadedConnection:
    """A connection with its templates rendered, shared by all its users.

    Attributes:
        key: Its identity: the absolute file path, or
            ``<suite path>#connections.NAME`` / ``#connection`` when inline.
        name: For display: the file stem, or the suite's name for it.
        model: The validated model, templates rendered.
        location: Where it is defined.
    """

    key: str
    name: str
    # Rendered values may come from env, all secrets: kept out of the repr.
    model: Connection = field(repr=False)
    location: Location


@dataclass(frozen=True, slots=True)
class LoadedRequest:
    """A request of a suite, checked and compiled, templates not rendered.

    Attributes:
        index: Its position in the suite, from 0.
        model: The request as written.
        location: Where its mapping starts in the suite file.
        connection: The connection it is sent through.
        expect: Its expectations, compiled.
        captures: Its capture expressions, compiled, by name.
        uses: Names captured by earlier requests that its templates use.
        retry: When to send it again: its own ``retry``, else its
            connection's; None sends it once.
    """

    index: int
    model: Request
    location: Location
    connection: LoadedConnection
    expect: CompiledExpect
    captures: Mapping[str, Expression]
    uses: frozenset[str]
    retry: RetryPlan | None = None


@dataclass(frozen=True, slots=True)
class LoadedSuite(NeverPickled):
    """A suite ready to run.

    Attributes:
        path: The suite file (or the bare connection file).
        name: The suite's ``name``, or the file stem.
        model: The suite as written.
        variables: Its ``vars``, rendered, with ``--var`` applied over them.
        requests: Its requests, in order.
        tags: Its tags.
        is_bare_connection: A connection file named on the command line,
            run as a suite of one request (its own url, method, headers
            and body).
    """

    path: Path
    name: str
    # An inline connection in it is rendered, env values and all.
    model: Suite = field(repr=False)
    variables: Mapping[str, Any] = field(repr=False)  # may hold env values
    requests: tuple[LoadedRequest, ...]
    tags: frozenset[str]
    is_bare_connection: bool = False


@dataclass
class LoadResult:
    """Everything `load_paths` found.

    Attributes:
        suites: The suites a run would send, in the order of the paths.
        connections: Every connection they use, by key, each loaded once.
        errors: Every input error, grouped by file, each file's by line.
        files_checked: How many connection and suite files were read.
    """

    suites: list[LoadedSuite] = field(default_factory=list)
    connections: dict[str, LoadedConnection] = field(default_factory=dict)
    errors: list[InputError] = field(default_factory=list)
    files_checked: int = 0


def load_paths(
    paths: Sequence[Path],
    *,
    env: Mapping[str, str],
    variables: Mapping[str, str],
    redactor: Redactor,
    templates: Templates,
    for_run: bool,
) -> LoadResult:
    """Load and check every file under `paths`.

    Args:
        paths: Files and folders; folders are searched recursively for
            ``*.yaml``, ``*.yml`` and ``*.json`` (hidden ones skipped).
        env: The environment templates see as ``env``.
        variables: ``--var`` values, overriding every suite's ``vars``.
        redactor: Where literal client secrets are registered.
        templates: The run's template engine (it registers ``env`` reads).
        for_run: Whether the result is to be run: then named files run
            (a bare connection file as a one-request suite) but only the
            suite files of folders; connection files of folders are read
            but not checked unless a suite uses them. Otherwise every file
            is checked and `LoadResult.suites` lists every valid suite.

    Never raises for bad input: every problem is in `LoadResult.errors`.
    """
    del env  # templates carries it; kept in the signature for callers' clarity
    loader = _Loader(
        variables=variables, redactor=redactor, templates=templates, for_run=for_run
    )
    for path in paths:
        loader.argument(path)
    return loader.finish()


def read_env_files(paths: Sequence[Path]) -> dict[str, str]:
    """The ``NAME=VALUE`` lines of each env file, later files winning.

    Blank lines and ``#`` comments are skipped; a line may start with
    ``export``; a value may be in single quotes (taken as written) or
    double quotes (``\\n``, ``\\"`` and ``\\\\`` escapes). Values are never
    shown in errors.

    Raises:
        InputError: A file cannot be read, or a line is not ``NAME=VALUE``
            (located at that line).
    """
    values: dict[str, str] = {}
    for path in paths:
        text = read_text(path, str(path))
        for number, line in enumerate(text.splitlines(), start=1):
            entry = _env_line(line)
            if entry is None:
                continue
            if isinstance(entry, str):
                raise InputError(entry, Location(str(path), number, 1))
            values[entry[0]] = entry[1]
    return values


def _env_line(line: str) -> tuple[str, str] | str | None:
    """A ``(name, value)`` pair, None for nothing, or what is wrong."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if text.startswith("export "):
        text = text.removeprefix("export ").lstrip()
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not _NAME.fullmatch(name):
        return "expected NAME=VALUE (a name of letters, digits and '_')"
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        if value[0] == '"':
            inner = re.sub(r"\\(.)", _unescape, inner)
        return name, inner
    if value[:1] in ("'", '"'):
        return f"unterminated quote in the value of {name}"
    comment = value.find(" #")
    if comment >= 0:
        value = value[:comment].rstrip()
    return name, value


def _unescape(match: re.Match[str]) -> str:
    char = match.group(1)
    return {"n": "\n", "t": "\t", "r": "\r"}.get(char, char)


def parse_var_options(items: Sequence[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` options as a mapping, later ones winning.

    Raises:
        InputError: An item is not ``NAME=VALUE`` (its value is never shown).
    """
    values: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not _NAME.fullmatch(name):
            shown = f" (name {name!r})" if equals else ""
            message = f"expected NAME=VALUE, a name of letters, digits and '_'{shown}"
            raise InputError(message, Location("--var"))
        values[name] = value
    return values


# ------------------------------------------------------------------ loader


@dataclass(frozen=True, slots=True)
class _Parsed:
    """A file read once: its document, or None when it could not be parsed."""

    document: Document | None
    display: str


class _IsSuite:
    """Marks a connection path that leads to a suite file."""

    def __init__(self, document: Document) -> None:
        self.document = document


class _Loader:
    def __init__(
        self,
        *,
        variables: Mapping[str, str],
        redactor: Redactor,
        templates: Templates,
        for_run: bool,
    ) -> None:
        self.variables = dict(variables)
        self.redactor = redactor
        self.templates = templates
        self.for_run = for_run
        self.result = LoadResult()
        self.parsed: dict[str, _Parsed] = {}
        self.file_connections: dict[str, LoadedConnection | _IsSuite | None] = {}
        self.suites_done: set[str] = set()
        self.schemas: dict[str, dict[str, Any] | None] = {}
        self.errors: list[InputError] = []

    # ---------------------------------------------------------- arguments

    def argument(self, path: Path) -> None:
        display = str(path)
        try:
            if path.is_dir():
                for file in _files_under(path):
                    self.file(file, str(file), named=False)
                return
            if not path.exists():
                self.error(InputError("no such file or folder", Location(display)))
                return
        except OSError as exc:
            message = f"cannot read: {exc.strerror or exc}"
            self.error(InputError(message, Location(display)))
            return
        self.file(path, display, named=True)

    def file(self, path: Path, display: str, *, named: bool) -> None:
        document = self.parse(path, display)
        if document is None:
            return
        if "requests" in document.data:
            suite = self.suite(path, document)
            if suite is not None:
                self.result.suites.append(suite)
            return
        if self.for_run and not named:
            return  # in a folder, only suites run; their connections load below
        connection = self.connection_file(path, display)
        if self.for_run and isinstance(connection, LoadedConnection):
            self.result.suites.append(self.bare_suite(path, connection))

    def finish(self) -> LoadResult:
        self.result.errors = _ordered(self.errors)
        return self.result

    def error(self, error: InputError) -> None:
        self.errors.append(error)

    def parse(self, path: Path, display: str) -> Document | None:
        key = _key(path)
        parsed = self.parsed.get(key)
        if parsed is None:
            document: Document | None = None
            try:
                document = read_document(path, display)
            except InputErrors as exc:
                self.errors.extend(exc.errors)
            except InputError as exc:
                self.error(exc)
            parsed = _Parsed(document, display)
            self.parsed[key] = parsed
            self.result.files_checked += 1
        return parsed.document

    # -------------------------------------------------------- connections

    def connection_file(
        self, path: Path, display: str
    ) -> LoadedConnection | _IsSuite | None:
        key = _key(path)
        if key in self.file_connections:
            return self.file_connections[key]
        self.file_connections[key] = None  # a re-entry finds "in progress"
        document = self.parse(path, display)
        loaded: LoadedConnection | _IsSuite | None = None
        if document is not None:
            if "requests" in document.data:
                loaded = _IsSuite(document)
            else:
                # A connection file sees ``env`` and the ``--var`` values, never
                # a suite's ``vars``: where a secret may be sent is decided by
                # the connection file and the command line alone.
                loaded = self.connection(
                    document,
                    document.data,
                    (),
                    key=key,
                    name=path.stem,
                    names=self.variables,
                )
        self.file_connections[key] = loaded
        if isinstance(loaded, LoadedConnection):
            self.result.connections[key] = loaded
        return loaded

    def connection(
        self,
        document: Document,
        data: dict[str, Any],
        base: DocumentPath,
        *,
        key: str,
        name: str,
        names: Mapping[str, Any],
        validated: bool = False,
    ) -> LoadedConnection | None:
        """Render, validate and build one connection (a file or inline)."""
        # Registered before anything can fail, so that no message shows them.
        for secret_field in SECRET_FIELDS:
            secret = data.get(secret_field)
            if isinstance(secret, str) and not is_template(secret):
                self.redactor.add(secret)

        errors: list[InputError] = []
        rendered = self.render(document, data, base, names, errors)
        if not validated:
            errors += schema_errors(document, "connection", rendered, base=base)
        if errors:
            self.errors.extend(errors)
            return None
        entry = CONNECTION_TYPES[connection_type_of(rendered)]
        model, errors = build_model(document, entry.model, rendered, base=base)
        if model is None:
            self.errors.extend(errors)
            return None
        _register_secrets(model, self.redactor)
        location = document.locate(base)
        return LoadedConnection(key=key, name=name, model=model, location=location)

    def render(
        self,
        document: Document,
        value: Any,
        path: DocumentPath,
        names: Mapping[str, Any],
        errors: list[InputError],
    ) -> Any:
        """`value` with each template rendered; failures located and kept."""
        if isinstance(value, str):
            if not is_template(value):
                return value
            try:
                return self.templates.render(value, names)
            except TemplateError as exc:
                errors.append(TemplateError(exc.message, document.locate(path)))
                return value
        if isinstance(value, dict):
            result = {}
            for key, item in value.items():
                new_key = key
                if isinstance(key, str) and is_template(key):
                    try:
                        new_key = str(self.templates.render(key, names))
                    except TemplateError as exc:
                        location = document.locate((*path, key), key=True)
                        errors.append(TemplateError(exc.message, location))
                child = (*path, key)
                result[new_key] = self.render(document, item, child, names, errors)
            return result
        if isinstance(value, list):
            return [
                self.render(document, item, (*path, index), names, errors)
                for index, item in enumerate(value)
            ]
        return value

    # ------------------------------------------------------------- suites

    def suite(self, path: Path, document: Document) -> LoadedSuite | None:
        key = _key(path)
        if key in self.suites_done:
            return None  # named twice, or found in a folder and named
        self.suites_done.add(key)
        return _SuiteLoader(self, path, document).load()

    def bare_suite(self, path: Path, connection: LoadedConnection) -> LoadedSuite:
        model = connection.model
        request = Request(method=model.method, body=model.body)
        suite = Suite(name=path.stem, connection=path.name, requests=[request])
        loaded_request = LoadedRequest(
            index=0,
            model=request,
            location=connection.location,
            connection=connection,
            expect=CompiledExpect.build(Expect(), self.templates, None),
            captures={},
            uses=frozenset(),
            retry=None if model.retry is None else RetryPlan.build(model.retry),
        )
        return LoadedSuite(
            path=path,
            name=path.stem,
            model=suite,
            variables=dict(self.variables),
            requests=(loaded_request,),
            tags=frozenset(),
            is_bare_connection=True,
        )

    def schema_file(
        self, path: Path, display: str, at: Location
    ) -> dict[str, Any] | None:
        """A response schema file, read and checked once; None if unusable.

        Its problems are reported once, in the schema file itself (or at the
        first `schema:` naming it when it cannot be read).
        """
        key = _key(path)
        if key in self.schemas:
            return self.schemas[key]
        schema: dict[str, Any] | None = None
        try:
            if not path.is_file():
                what = "is a folder" if path.is_dir() else "not found"
                message = f"schema file {display!r} {what}"
                self.error(InputError(message, at))
            else:
                document = read_document(path, display)
                if self.check_schema(document, document.data, (), self.errors):
                    schema = document.data
        except InputErrors as exc:
            self.errors.extend(exc.errors)
        except InputError as exc:
            self.error(exc)
        except OSError as exc:
            message = f"cannot read schema file {display!r}: {exc.strerror or exc}"
            self.error(InputError(message, at))
        self.schemas[key] = schema
        return schema

    @staticmethod
    def check_schema(
        document: Document,
        schema: dict[str, Any],
        base: DocumentPath,
        errors: list[InputError],
    ) -> bool:
        """Whether `schema` is a valid JSON Schema; if not, the error is added."""
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        try:
            validator_for(schema, default=_default_validator()).check_schema(schema)
        except SchemaError as exc:
            path = (*base, *exc.absolute_path)
            message = f"not a valid JSON Schema: {exc.message}"
            errors.append(InputError(message, document.locate(path)))
            return False
        return True


def _default_validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator


class _SuiteLoader:
    """Loads one suite file; its errors go to the shared loader."""

    def __init__(self, loader: _Loader, path: Path, document: Document) -> None:
        self.loader = loader
        self.templates = loader.templates
        self.path = path
        self.document = document
        self.errors: list[InputError] = []

    def locate(self, *path: str | int, key: bool = False) -> Location:
        return self.document.locate(path, key=key)

    def load(self) -> LoadedSuite | None:
        document = self.document
        data = document.data
        variables = self.variables(data.get("vars"))
        rendered = dict(data)
        for name, inline in self.inline_connections(data):
            at = ("connection",) if name is None else ("connections", name)
            value = self.loader.render(document, inline, at, variables, self.errors)
            if name is None:
                rendered["connection"] = value
            else:
                rendered["connections"] = {**rendered["connections"], name: value}

        errors = schema_errors(document, "suite", rendered)
        if errors:
            self.fail(errors)
            return None
        suite, errors = build_model(document, Suite, rendered)
        if suite is None:
            self.fail(errors)
            return None

        connections = self.connections(suite, variables)
        requests = self.requests(suite, variables, connections)
        if self.errors or requests is None:
            self.fail([])
            return None
        return LoadedSuite(
            path=self.path,
            name=self.name(suite),
            model=suite,
            variables=variables,
            requests=requests,
            tags=frozenset(suite.tags),
        )

    def fail(self, errors: list[InputError]) -> None:
        self.loader.errors.extend(self.errors)
        self.loader.errors.extend(errors)

    def name(self, suite: Suite) -> str:
        return suite.name or self.path.stem

    def variables(self, declared: Any) -> dict[str, Any]:
        """The suite's vars rendered over ``env``, with ``--var`` over them."""
        overrides = self.loader.variables
        result: dict[str, Any] = {}
        if isinstance(declared, dict):
            for name, value in declared.items():
                if name in overrides:
                    continue
                at = ("vars", name)
                result[name] = self.loader.render(
                    self.document, value, at, {}, self.errors
                )
        result.update(overrides)
        return result

    @staticmethod
    def inline_connections(
        data: dict[str, Any],
    ) -> Iterator[tuple[str | None, dict[str, Any]]]:
        if isinstance(data.get("connection"), dict):
            yield None, data["connection"]
        connections = data.get("connections")
        if isinstance(connections, dict):
            for name, value in connections.items():
                if isinstance(value, dict):
                    yield name, value

    # -------------------------------------------------------- connections

    def connections(
        self, suite: Suite, variables: Mapping[str, Any]
    ) -> dict[str | None, LoadedConnection | None]:
        """The suite's connections by name (None: the single `connection`)."""
        found: dict[str | None, LoadedConnection | None] = {}
        if suite.connection is None and not suite.connections:
            message = "a suite needs a `connection` (or several under `connections`)"
            self.errors.append(InputError(message, self.locate()))
            return found
        if suite.connection is not None and suite.connections:
            message = "use either `connection` or `connections`, not both"
            location = self.locate("connections", key=True)
            self.errors.append(InputError(message, location))
            return found
        if suite.connection is not None:
            found[None] = self.one_connection(
                suite.connection, ("connection",), self.name(suite), variables
            )
        for name, value in suite.connections.items():
            found[name] = self.one_connection(
                value, ("connections", name), name, variables
            )
        return found

    def one_connection(
        self,
        value: str | dict[str, Any],
        at: DocumentPath,
        name: str,
        variables: Mapping[str, Any],
    ) -> LoadedConnection | None:
        suite_key = _key(self.path)
        if isinstance(value, dict):
            key = suite_key + "#" + ".".join(str(part) for part in at)
            # Rendered again from the file's text, with errors located there.
            written: Any = self.document.data
            for part in at:
                written = written[part]
            loaded = self.loader.connection(
                self.document,
                written,
                at,
                key=key,
                name=name,
                names=variables,
                validated=True,
            )
            if loaded is not None:
                self.loader.result.connections[key] = loaded
            return loaded
        return self.connection_file(value, at)

    def connection_file(self, value: str, at: DocumentPath) -> LoadedConnection | None:
        location = self.document.locate(at)
        target = self.path.parent / value
        display = _display(self.document.file, value)
        try:
            if _key(target) == _key(self.path):
                message = f"connection {value!r} is this suite itself (a loop)"
                self.errors.append(InputError(message, location))
                return None
            if target.is_dir():
                message = f"connection {value!r} is a folder, not a connection file"
                self.errors.append(InputError(message, location))
                return None
            if not target.exists():
                message = f"connection file {value!r} not found (looked for {display})"
                self.errors.append(InputError(message, location))
                return None
        except OSError as exc:
            message = f"cannot read connection {value!r}: {exc.strerror or exc}"
            self.errors.append(InputError(message, location))
            return None
        loaded = self.loader.connection_file(target, display)
        if isinstance(loaded, _IsSuite):
            message = f"connection {value!r} is a suite file, not a connection"
            if self._refers_back(loaded.document, target):
                message += " (and it uses this suite as its connection: a loop)"
            self.errors.append(InputError(message, location))
            return None
        return loaded

    def _refers_back(self, other: Document, other_path: Path) -> bool:
        data = other.data
        values = [data.get("connection")]
        connections = data.get("connections")
        if isinstance(connections, dict):
            values += list(connections.values())
        mine = _key(self.path)
        for value in values:
            if isinstance(value, str):
                try:
                    if _key(other_path.parent / value) == mine:
                        return True
                except (OSError, ValueError):
                    continue
        return False

    # ----------------------------------------------------------- requests

    def requests(
        self,
        suite: Suite,
        variables: Mapping[str, Any],
        connections: Mapping[str | None, LoadedConnection | None],
    ) -> tuple[LoadedRequest, ...] | None:
        loaded: list[LoadedRequest] = []
        complete = True
        captured: dict[str, int] = {}
        later = _captured_later(suite)
        for index, request in enumerate(suite.requests):
            checker = _NameCheck(self, variables, captured, later, index)
            result = self.request(index, request, connections, checker)
            if result is None:
                complete = False
            else:
                loaded.append(result)
            for name in request.capture:
                captured.setdefault(name, index)
        return tuple(loaded) if complete else None

    def request(
        self,
        index: int,
        request: Request,
        connections: Mapping[str | None, LoadedConnection | None],
        checker: _NameCheck,
    ) -> LoadedRequest | None:
        errors_before = len(self.errors)
        base: DocumentPath = ("requests", index)
        connection = self.pick_connection(index, request, connections)

        raw = self.document.data["requests"][index]
        for part in ("url", "headers", "params", "body"):
            if part in raw:
                checker.templates_in(raw[part], (*base, part))
        raw_expect = raw.get("expect") or {}
        for part in ("headers", "json", "body_contains"):
            if part in raw_expect:
                checker.templates_in(raw_expect[part], (*base, "expect", part))

        captures: dict[str, Expression] = {}
        for name, source in request.capture.items():
            expression = checker.expression(source, (*base, "capture", name))
            if expression is not None:
                captures[name] = expression

        retry = self.retry_plan(request, connection, checker)

        at = (*base, "expect", "schema")
        schema, schema_valid = self.expect_schema(request.expect, at)
        expect = self.compiled_expect(request.expect, schema, schema_valid, checker)
        failed = len(self.errors) > errors_before or expect is None
        if failed or connection is None or expect is None:
            return None
        return LoadedRequest(
            index=index,
            model=request,
            location=self.locate(*base),
            connection=connection,
            expect=expect,
            captures=captures,
            uses=frozenset(checker.uses),
            retry=retry,
        )

    def retry_plan(
        self,
        request: Request,
        connection: LoadedConnection | None,
        checker: _NameCheck,
    ) -> RetryPlan | None:
        """The request's own `retry`, else its connection's, compiled.

        ``retry: null`` on the request turns its connection's off. An
        ``until`` compiles here and its names are checked like ``that``'s.
        """
        retry: Retry | None
        if "retry" in request.model_fields_set:
            retry = request.retry
        else:
            retry = connection.model.retry if connection is not None else None
        if retry is None:
            return None
        if not isinstance(retry, RequestRetry) or retry.until is None:
            return RetryPlan.build(retry)

        at = (*checker.path, "retry")
        if "on" in retry.model_fields_set:
            message = (
                "`on` does not apply with `until`: every response that leaves "
                "`until` false is sent again"
            )
            self.errors.append(InputError(message, self.locate(*at, "on", key=True)))
        until = checker.expression(retry.until, (*at, "until"))
        return None if until is None else RetryPlan.build(retry, until)

    def compiled_expect(
        self,
        expect: Expect,
        schema: dict[str, Any] | None,
        schema_valid: bool,
        checker: _NameCheck,
    ) -> CompiledExpect | None:
        """`expect` compiled, its `that` expressions' names checked.

        `CompiledExpect.build` compiles the `that` expressions; only when it
        fails, or they use an unknown name, are they compiled one by one
        again, to say which one it was.
        """
        base = (*checker.path, "expect")
        compiled: CompiledExpect | None = None
        failure: InputError | None = None
        if schema_valid:
            try:
                compiled = CompiledExpect.build(
                    expect, self.templates, schema, schema_checked=True
                )
            except InputError as exc:
                failure = exc
        if compiled is not None and checker.known(compiled.names):
            checker.uses.update(compiled.names & checker.captured.keys())
            return compiled

        errors_before = len(self.errors)
        for number, source in enumerate(expect.that):
            checker.expression(source, (*base, "that", number))
        if failure is not None and len(self.errors) == errors_before:
            location = failure.location or self.document.locate(base)
            self.errors.append(InputError(failure.message, location))
        return None if len(self.errors) > errors_before else compiled

    def pick_connection(
        self,
        index: int,
        request: Request,
        connections: Mapping[str | None, LoadedConnection | None],
    ) -> LoadedConnection | None:
        if not connections:
            return None
        asked = request.connection
        if None in connections:
            if asked is None:
                return connections[None]
            message = (
                f"this suite has a single `connection`; `connection: {asked}` "
                "names nothing (list several under `connections`)"
            )
            location = self.locate("requests", index, "connection")
            self.errors.append(InputError(message, location))
            return None
        names = [name for name in connections if name is not None]
        if asked is None:
            if len(names) == 1:
                return connections[names[0]]
            choices = ", ".join(repr(name) for name in names)
            message = f"name this request's connection: one of {choices}"
            self.errors.append(InputError(message, self.locate("requests", index)))
            return None
        if asked not in connections:
            choices = ", ".join(repr(name) for name in names)
            message = (
                f"undefined connection {asked!r}{did_you_mean(asked, names)}; "
                f"this suite defines {choices}"
            )
            location = self.locate("requests", index, "connection")
            self.errors.append(InputError(message, location))
            return None
        return connections[asked]

    def expect_schema(
        self, expect: Expect, at: DocumentPath
    ) -> tuple[dict[str, Any] | None, bool]:
        """The response schema of `expect`, loaded and checked, and whether it is."""
        value = expect.json_schema
        if value is None:
            return None, True
        if isinstance(value, dict):
            valid = self.loader.check_schema(self.document, value, at, self.errors)
            return (value, True) if valid else (None, False)
        target = self.path.parent / value
        display = _display(self.document.file, value)
        schema = self.loader.schema_file(target, display, self.document.locate(at))
        return schema, schema is not None


class _NameCheck:
    """Checks the names one request's templates and expressions read."""

    def __init__(
        self,
        suite: _SuiteLoader,
        variables: Mapping[str, Any],
        captured: Mapping[str, int],
        later: Mapping[str, int],
        index: int,
    ) -> None:
        self.suite = suite
        self.templates = suite.templates
        self.variables = variables
        self.captured = captured
        self.later = later
        self.index = index
        self.path: DocumentPath = ("requests", index)
        self.uses: set[str] = set()

    def known(self, names: frozenset[str]) -> bool:
        """Whether every one of `names` is defined for this request."""
        return all(
            name in self.captured or name in self.variables
            for name in names - {_RESPONSE}
        )

    def templates_in(self, value: Any, path: DocumentPath) -> None:
        if isinstance(value, str):
            if is_template(value):
                self.template(value, path, key=False)
        elif isinstance(value, dict):
            for name, item in value.items():
                if isinstance(name, str) and is_template(name):
                    self.template(name, (*path, name), key=True)
                self.templates_in(item, (*path, name))
        elif isinstance(value, list):
            for number, item in enumerate(value):
                self.templates_in(item, (*path, number))

    def template(self, text: str, path: DocumentPath, *, key: bool) -> None:
        location = self.suite.document.locate(path, key=key)
        try:
            names = self.templates.names_in(text)
        except TemplateError as exc:
            self.suite.errors.append(TemplateError(exc.message, location))
            return
        self.check(names, location)

    def expression(self, source: str, path: DocumentPath) -> Expression | None:
        location = self.suite.document.locate(path)
        try:
            expression = self.templates.compile_expression(source)
        except TemplateError as exc:
            self.suite.errors.append(TemplateError(exc.message, location))
            return None
        self.check(expression.names - {_RESPONSE}, location)
        return expression

    def check(self, names: frozenset[str], location: Location) -> None:
        for name in sorted(names):
            if name in self.captured:
                self.uses.add(name)
                continue
            if name in self.variables:
                continue
            message = f"undefined variable {name!r}"
            later = self.later.get(name)
            if later is not None and later >= self.index:
                message += f" (captured by request {later + 1}, too late for this one)"
            else:
                known = [*self.variables, *self.captured, "env"]
                message += did_you_mean(name, known)
            self.suite.errors.append(TemplateError(message, location))


def _captured_later(suite: Suite) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, request in enumerate(suite.requests):
        for name in request.capture:
            found.setdefault(name, index)
    return found


# ----------------------------------------------------------------- helpers


def _files_under(folder: Path) -> list[Path]:
    """The YAML and JSON files under `folder`, sorted; hidden ones skipped."""
    found: list[Path] = []
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in SUFFIXES:
                found.append(Path(root) / name)
    return found


def _display(referrer: str, value: str) -> str:
    """How to name a file that `referrer` refers to as `value`."""
    return os.path.normpath(os.path.join(os.path.dirname(referrer), value))


def _register_secrets(model: Connection, redactor: Redactor) -> None:
    """Mask a connection's secrets, in the forms they travel in, from now on."""
    if isinstance(model, OAuth2Connection):
        redactor.add(model.client_secret.get_secret_value())
    elif isinstance(model, BasicConnection):
        password = model.password.get_secret_value()
        redactor.add_basic_credential(model.username, password)
    elif isinstance(model, BearerConnection):
        redactor.add(model.token.get_secret_value())
    elif isinstance(model, ApiKeyConnection):
        redactor.add(model.value.get_secret_value())


def _key(path: Path) -> str:
    return str(path.resolve())


def _ordered(errors: list[InputError]) -> list[InputError]:
    """One entry per distinct error, grouped by file, each file's by position."""
    by_file: dict[str, list[InputError]] = {}
    seen: set[str] = set()
    for error in errors:
        text = error.render()
        if text in seen:
            continue
        seen.add(text)
        file = error.location.file if error.location is not None else ""
        by_file.setdefault(file, []).append(error)
    ordered: list[InputError] = []
    for group in by_file.values():
        group.sort(key=_position)
        ordered.extend(group)
    return ordered


def _position(error: InputError) -> tuple[int, int]:
    if error.location is None:
        return 0, 0
    return error.location.line, error.location.column

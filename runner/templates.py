"""Rendering templates and evaluating expressions, in a jinja2 sandbox.

Any string value of a file may hold jinja2 templates. They render in an
immutable sandboxed environment where an undefined name is an error, never
an empty string. A string that is exactly one expression (``"{{ n }}"``)
keeps the type of its value; any other template renders to a string.

`that` and `capture` expressions compile once, when the files load, and
evaluate once per response.

The name ``env`` is always defined: a read-only view of the environment in
which every value read is registered with the run's `Redactor`, since
SPEC.md makes each of them a secret. Error messages name what is wrong and
never show a value of ``env``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from types import GeneratorType
from typing import Any, Final

from jinja2 import nodes
from jinja2.environment import Template, TemplateExpression
from jinja2.exceptions import (
    SecurityError,
    TemplateAssertionError,
    TemplateRuntimeError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.meta import find_undeclared_variables
from jinja2.parser import Parser
from jinja2.runtime import Context, StrictUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from runner.errors import TemplateError
from runner.secrets import NeverPickled, Redactor

__all__ = ["Expression", "Templates", "is_template"]

# Compiled templates kept per source string: a run renders the same request
# templates once per send, and compiling costs far more than rendering.
CACHE_SIZE: Final = 4096

# Bounds on the two operators that can build huge values from tiny sources
# (``'x' * 10**9``, ``9 ** 10**9``); jinja2's own sandbox bounds `range` only.
MAX_SEQUENCE_LENGTH: Final = 1_000_000
MAX_POWER_BITS: Final = 1 << 16


def is_template(text: str) -> bool:
    """Whether `text` holds jinja2 syntax (``{{``, ``{%`` or ``{#``).

    A string without any is returned as it is, without being parsed.
    """
    return "{" in text and ("{{" in text or "{%" in text or "{#" in text)


class _Undefined(StrictUndefined):
    """Fails on any use, with a message that says which name is missing."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        name = self._undefined_name
        owner = self._undefined_obj
        if self._undefined_hint:
            return self._undefined_hint
        if isinstance(owner, _EnvView):
            return f"undefined variable 'env.{name}': not set in the environment"
        if owner is missing:
            return f"undefined variable {name!r}"
        return super()._undefined_message


class _EnvView(NeverPickled, Mapping[str, str]):
    """The environment as templates see it; every value read becomes a secret."""

    __slots__ = ("_redactor", "_registered", "_values")

    def __init__(self, values: Mapping[str, str], redactor: Redactor) -> None:
        self._values = dict(values)
        self._redactor = redactor
        self._registered: set[str] = set()

    def __getitem__(self, name: str) -> str:
        value = self._values[name]
        if name not in self._registered:
            self._redactor.add(value)
            self._registered.add(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<environment of {len(self._values)} names>"


class _Sandbox(ImmutableSandboxedEnvironment):
    """jinja2's immutable sandbox, with two changes.

    ``a.b`` on a mapping prefers the key ``b`` over a method of that name, so
    that ``response.json.items`` is the JSON member "items", not `dict.items`.
    ``*`` and ``**`` refuse results too large to be anything but a mistake.
    """

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and _power_bits(left, right) > MAX_POWER_BITS:
            raise SecurityError(f"{left} ** {right} is too large a number")
        if operator == "*":
            size = _repeated_length(left, right) or _repeated_length(right, left)
            if size > MAX_SEQUENCE_LENGTH:
                message = f"a repeated sequence of {size} items is too long"
                raise SecurityError(message)
        return super().call_binop(context, operator, left, right)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _power_bits(base: Any, exponent: Any) -> int:
    if _is_int(base) and _is_int(exponent) and exponent > 0:
        return int(abs(base).bit_length() * exponent)
    return 0


def _repeated_length(sequence: Any, times: Any) -> int:
    if isinstance(sequence, str | list | tuple) and _is_int(times):
        return int(len(sequence) * times)
    return 0


class Expression:
    """A compiled jinja2 expression: compile once, evaluate many times.

    Attributes:
        source: The expression as written.
        names: The names it reads that the caller must supply (``response``,
            a capture, a var); ``env`` and jinja2's globals are not listed.
    """

    __slots__ = (
        "_compile_node",
        "_compiled",
        "_env",
        "_operands",
        "_redactor",
        "names",
        "node",
        "source",
    )

    def __init__(
        self,
        source: str,
        node: nodes.Expr,
        compiled: TemplateExpression,
        names: frozenset[str],
        env: _EnvView,
        redactor: Redactor,
        compile_node: Callable[[str, nodes.Expr], Expression],
    ) -> None:
        self.source = source
        self.node = node
        self.names = names
        self._compiled = compiled
        self._env = env
        self._redactor = redactor
        self._compile_node = compile_node
        self._operands: tuple[str, Expression, Expression] | None = None

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def evaluate(self, names: Mapping[str, Any]) -> Any:
        """The value of the expression with `names` (and ``env``) defined.

        Raises:
            TemplateError: A name is undefined, the sandbox refused an
                operation, or the expression failed (a type error, ...).
        """
        try:
            value = self._compiled(names, env=self._env)
            return _concrete(value)
        except Exception as exc:
            raise _template_error(exc, self._redactor) from None

    def comparison(self) -> tuple[str, Expression, Expression] | None:
        """The operator and both sides when the expression is one comparison.

        ``response.json.amount == 10`` gives ``("==", <left>, <right>)``, so
        that a failing check can show the values it compared; other
        expressions give None. The sides compile on first use.
        """
        node = self.node
        if not isinstance(node, nodes.Compare) or len(node.ops) != 1:
            return None
        if self._operands is None:
            operand = node.ops[0]
            symbol = _COMPARISONS.get(operand.op, operand.op)
            left = self._compile_node(f"{self.source} (left)", node.expr)
            right = self._compile_node(f"{self.source} (right)", operand.expr)
            self._operands = (symbol, left, right)
        return self._operands


_COMPARISONS: Final = {
    "eq": "==",
    "ne": "!=",
    "gt": ">",
    "gteq": ">=",
    "lt": "<",
    "lteq": "<=",
    "in": "in",
    "notin": "not in",
}


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})


def _concrete(value: Any) -> Any:
    """`value` with lazy results made concrete and undefined parts refused."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Undefined):
        str(value)  # a strict undefined raises here, with its message
    if isinstance(value, GeneratorType | range | KeysView | ValuesView | ItemsView):
        value = list(value)
    if isinstance(value, _EnvView):
        return dict(value.items())
    if isinstance(value, str):
        return str.__str__(value)  # a Markup from `|safe` becomes a plain str
    if isinstance(value, list | tuple):
        for item in value:
            _concrete(item)
    elif isinstance(value, dict):
        for item in value.values():
            _concrete(item)
    return value


def _template_error(exc: Exception, redactor: Redactor) -> TemplateError:
    """Our error for anything a template or expression raised while running."""
    if isinstance(exc, TemplateError):
        return exc
    if isinstance(exc, SecurityError):
        message = f"sandbox violation: {exc}"
    elif isinstance(exc, UndefinedError):
        message = str(exc)
    elif isinstance(exc, TemplateRuntimeError):
        message = f"template error: {exc}"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return TemplateError(redactor.redact(message))


def _syntax_error(kind: str, exc: TemplateSyntaxError, source: str) -> TemplateError:
    if isinstance(exc, TemplateAssertionError):  # an unknown filter or test
        message = f"{kind} error: {exc.message}"
    else:
        message = f"{kind} syntax error: {exc.message}"
    if "\n" in source.strip() and exc.lineno:
        message += f" (line {exc.lineno} of the {kind})"
    return TemplateError(message)


# What a source string compiles to: an expression that keeps its value's
# type, or a template that renders to a string.
_Compiled = Expression | Template


class Templates(NeverPickled):
    """Sandboxed jinja2 for one run: renders values and compiles expressions.

    The environment is jinja2's `ImmutableSandboxedEnvironment` with a strict
    undefined: an undefined name is an error, never ``''``. Compiled sources
    are cached, so rendering the same request many times costs only the
    rendering. Safe to share between threads.

    Args:
        env: The process environment (plus ``--env-file``), seen by templates
            as ``env``.
        redactor: Where every value read from ``env`` is registered.
    """

    def __init__(self, env: Mapping[str, str], redactor: Redactor) -> None:
        self._redactor = redactor
        self._env = _EnvView(env, redactor)
        self._jinja = _Sandbox(
            undefined=_Undefined,
            autoescape=False,
            keep_trailing_newline=True,
            cache_size=0,
        )
        self._always_defined = frozenset({"env", *self._jinja.globals})
        self._cache: OrderedDict[str, _Compiled] = OrderedDict()
        self._names: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Templates: {len(self._cache)} compiled>"

    @property
    def redactor(self) -> Redactor:
        """The run's redactor, which every value read from ``env`` joins."""
        return self._redactor

    def names_in(self, value: Any) -> frozenset[str]:
        """The names every template inside `value` reads (dict keys included).

        ``env`` and jinja2's globals (``range``, ``dict``, ...) are always
        defined and so not listed.

        Raises:
            TemplateError: A template has a syntax error (without location:
                the caller knows where `value` came from).
        """
        found: set[str] = set()
        self._collect_names(value, found)
        return frozenset(found)

    def render(self, value: Any, names: Mapping[str, Any]) -> Any:
        """`value` with every template in it rendered with `names` (and ``env``).

        Dicts and lists are rendered item by item (dict keys too, always to
        strings); other values are returned as they are.

        Raises:
            TemplateError: A syntax error, an undefined name, a sandbox
                violation or a failing expression.
        """
        if isinstance(value, str):
            if not is_template(value):
                return value
            return self._render_string(value, names)
        if isinstance(value, dict):
            return {
                self._render_key(key, names): self.render(item, names)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.render(item, names) for item in value]
        return value

    def compile_expression(self, source: str) -> Expression:
        """Compile a `that` or `capture` expression such as ``response.status``.

        A source written as a template, ``"{{ response.status }}"``, is
        accepted as the expression inside.

        Raises:
            TemplateError: The expression has a syntax error.
        """
        text = source.strip()
        if text.startswith("{{"):
            node = _single_expression(self._parse(text))
            if node is None:
                message = "expected one expression, not a template"
                raise TemplateError(message)
            return self._expression(source, node)

        try:
            parser = Parser(self._jinja, text, state="variable")
            node = parser.parse_expression()
            if not parser.stream.eos:
                current = parser.stream.current
                message = f"unexpected {current.value!r} after the expression"
                raise TemplateSyntaxError(message, current.lineno)
        except TemplateSyntaxError as exc:
            raise _syntax_error("expression", exc, text) from None
        return self._expression(source, node)

    def _expression(self, source: str, node: nodes.Expr) -> Expression:
        body = [nodes.Assign(nodes.Name("result", "store"), node, lineno=1)]
        tree = nodes.Template(body, lineno=1)
        tree.set_environment(self._jinja)
        kind = "template" if source.lstrip().startswith("{{") else "expression"
        try:
            declared = find_undeclared_variables(tree)
            template = self._jinja.from_string(tree)
        except TemplateSyntaxError as exc:
            raise _syntax_error(kind, exc, source) from None

        names = frozenset(declared) - self._always_defined
        compiled = TemplateExpression(template, undefined_to_none=False)
        return Expression(
            source, node, compiled, names, self._env, self._redactor, self._expression
        )

    def _render_key(self, key: Any, names: Mapping[str, Any]) -> Any:
        if not isinstance(key, str) or not is_template(key):
            return key
        compiled = self._compiled(key)
        if isinstance(compiled, Expression):
            return str(compiled.evaluate(names))
        return self._render_template(compiled, names)

    def _render_string(self, text: str, names: Mapping[str, Any]) -> Any:
        compiled = self._compiled(text)
        if isinstance(compiled, Expression):
            return compiled.evaluate(names)
        return self._render_template(compiled, names)

    def _render_template(self, template: Template, names: Mapping[str, Any]) -> str:
        try:
            return template.render(names, env=self._env)
        except Exception as exc:
            raise _template_error(exc, self._redactor) from None

    def _compiled(self, text: str) -> _Compiled:
        with self._lock:
            compiled = self._cache.get(text)
            if compiled is not None:
                self._cache.move_to_end(text)
                return compiled

        compiled = self._compile(text)

        with self._lock:
            self._cache[text] = compiled
            if len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def _compile(self, text: str) -> _Compiled:
        tree = self._parse(text)
        expression = _single_expression(tree)
        if expression is not None:
            return self._expression(text, expression)
        try:
            return self._jinja.from_string(tree)
        except TemplateSyntaxError as exc:
            raise _syntax_error("template", exc, text) from None

    def _parse(self, text: str) -> nodes.Template:
        try:
            return self._jinja.parse(text)
        except TemplateSyntaxError as exc:
            raise _syntax_error("template", exc, text) from None

    def _collect_names(self, value: Any, found: set[str]) -> None:
        if isinstance(value, str):
            if is_template(value):
                found |= self._names_of(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                self._collect_names(key, found)
                self._collect_names(item, found)
        elif isinstance(value, list):
            for item in value:
                self._collect_names(item, found)

    def _names_of(self, text: str) -> frozenset[str]:
        names = self._names.get(text)
        if names is None:
            tree = self._parse(text)
            try:
                declared = find_undeclared_variables(tree)
            except TemplateSyntaxError as exc:
                raise _syntax_error("template", exc, text) from None
            names = frozenset(declared) - self._always_defined
            self._names[text] = names
        return names


def _single_expression(tree: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is one ``{{ ... }}`` and nothing else.

    Whitespace around it is allowed and dropped.
    """
    if len(tree.body) != 1 or not isinstance(tree.body[0], nodes.Output):
        return None
    parts = [
        node
        for node in tree.body[0].nodes
        if not (isinstance(node, nodes.TemplateData) and not node.data.strip())
    ]
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return parts[0]

"""Templates and expressions: runner/templates.py.

The loader's tests check that these errors arrive with their file and line;
here they are checked without a location.
"""

from __future__ import annotations

from typing import Any

import pytest

from runner.errors import TemplateError
from runner.secrets import Redactor
from runner.templates import Templates, is_template

SECRET = "s3cr3t-token-value"


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def templates(redactor: Redactor) -> Templates:
    return Templates({"TOKEN": SECRET, "REGION": "eu-west"}, redactor)


def render_error(templates: Templates, value: Any, **names: Any) -> str:
    with pytest.raises(TemplateError) as caught:
        templates.render(value, names)
    assert caught.value.location is None
    return caught.value.message


class TestRender:
    def test_render_single_expression_keeps_type(self, templates: Templates) -> None:
        assert templates.render("{{ n }}", {"n": 3}) == 3
        assert templates.render("{{ flag }}", {"flag": False}) is False
        assert templates.render("{{ items }}", {"items": [1, {"a": None}]}) == [
            1,
            {"a": None},
        ]

    def test_render_single_expression_with_whitespace_keeps_type(
        self, templates: Templates
    ) -> None:
        assert templates.render("  {{ n }}\n", {"n": 3}) == 3
        assert templates.render("{{- n -}}", {"n": 3}) == 3

    def test_render_expression_among_text_gives_string(
        self, templates: Templates
    ) -> None:
        assert templates.render("invoices/{{ n }}", {"n": 3}) == "invoices/3"
        assert templates.render("{{ a }}{{ b }}", {"a": 1, "b": 2}) == "12"

    def test_render_string_result_is_plain_str(self, templates: Templates) -> None:
        """A Markup from `|safe` comes back as a plain string."""
        value = templates.render("{{ '<b>' | safe }}", {})
        assert value == "<b>"
        assert type(value) is str

    def test_render_lazy_result_becomes_list(self, templates: Templates) -> None:
        names = {"items": [{"id": 1}, {"id": 2}]}
        assert templates.render("{{ items | map(attribute='id') }}", names) == [1, 2]

    def test_render_plain_values_unchanged(self, templates: Templates) -> None:
        value = {"a": [1, "two", None, {"b": 2.5}], "c": True}
        assert templates.render(value, {}) == value

    def test_render_nested_structure_renders_keys_and_values(
        self, templates: Templates
    ) -> None:
        value = {"{{ key }}": ["{{ n }}", "n={{ n }}"], "plain": {"x": "{{ n }}"}}
        rendered = templates.render(value, {"key": "k", "n": 3})
        assert rendered == {"k": [3, "n=3"], "plain": {"x": 3}}

    def test_render_key_expression_gives_string(self, templates: Templates) -> None:
        assert templates.render({"{{ n }}": 1}, {"n": 3}) == {"3": 1}

    def test_render_keeps_trailing_newline(self, templates: Templates) -> None:
        assert templates.render("line {{ n }}\n", {"n": 1}) == "line 1\n"

    def test_render_filters_available(self, templates: Templates) -> None:
        assert templates.render("{{ d | tojson }}", {"d": {"a": 1}}) == '{"a": 1}'

    def test_render_json_member_named_like_method_gives_member(
        self, templates: Templates
    ) -> None:
        """``d.items`` is the key "items" when the mapping has one."""
        names = {"d": {"items": [1, 2]}}
        assert templates.render("{{ d.items }}", names) == [1, 2]
        assert templates.render("{{ d['items'] }}", names) == [1, 2]


class TestUndefined:
    def test_render_undefined_name_names_it(self, templates: Templates) -> None:
        message = render_error(templates, "{{ customer }}")
        assert message == "undefined variable 'customer'"

    def test_render_undefined_name_in_text_names_it(self, templates: Templates) -> None:
        message = render_error(templates, "invoices/{{ invoice_id }}")
        assert message == "undefined variable 'invoice_id'"

    def test_render_undefined_inside_list_literal_fails(
        self, templates: Templates
    ) -> None:
        """An undefined value hidden in a container is refused, not kept."""
        message = render_error(templates, "{{ [1, missing] }}")
        assert message == "undefined variable 'missing'"

    def test_render_undefined_in_nested_value_fails(self, templates: Templates) -> None:
        message = render_error(templates, {"body": ["ok", "{{ nope }}"]})
        assert message == "undefined variable 'nope'"

    def test_render_missing_attribute_names_it(self, templates: Templates) -> None:
        message = render_error(templates, "{{ d.missing }}", d={})
        assert message == "'dict object' has no attribute 'missing'"

    def test_render_missing_env_name_says_so(self, templates: Templates) -> None:
        message = render_error(templates, "{{ env.NOPE }}")
        assert message == "undefined variable 'env.NOPE': not set in the environment"

    def test_render_is_defined_test_works(self, templates: Templates) -> None:
        assert templates.render("{{ x is defined }}", {}) is False
        assert templates.render("{{ x | default(5) }}", {}) == 5


class TestSyntax:
    @pytest.mark.parametrize(
        ("source", "message"),
        [
            (
                "{{ x",
                "template syntax error: unexpected end of template, expected "
                "'end of print statement'.",
            ),
            (
                "{% if %}",
                "template syntax error: Expected an expression, got "
                "'end of statement block'",
            ),
            ("{{ x | nofilter }}", "template error: No filter named 'nofilter'."),
        ],
    )
    def test_names_in_syntax_error_raises(
        self, templates: Templates, source: str, message: str
    ) -> None:
        with pytest.raises(TemplateError) as caught:
            templates.names_in({"url": source})
        assert caught.value.message == message
        assert caught.value.location is None

    def test_render_syntax_error_raises(self, templates: Templates) -> None:
        message = render_error(templates, "a {{ x")
        assert message.startswith("template syntax error: ")

    def test_syntax_error_multiline_gives_line(self, templates: Templates) -> None:
        with pytest.raises(TemplateError) as caught:
            templates.names_in("a\nb\n{{ x +  }}")
        assert caught.value.message.endswith("(line 3 of the template)")


class TestSandbox:
    @pytest.mark.parametrize(
        ("source", "message"),
        [
            (
                "{{ ''.__class__ }}",
                "sandbox violation: access to attribute '__class__' of 'str' "
                "object is unsafe.",
            ),
            (
                "{{ lipsum.__globals__ }}",
                "sandbox violation: access to attribute '__globals__' of "
                "'function' object is unsafe.",
            ),
            (
                "x{{ '{0.__class__}'.format(1) }}",
                "sandbox violation: access to attribute '__class__' of 'int' "
                "object is unsafe.",
            ),
            (
                "{{ [1].append(2) }}",
                "sandbox violation: access to attribute 'append' of 'list' "
                "object is unsafe.",
            ),
            (
                "{{ 'a' * 10**9 }}",
                "sandbox violation: a repeated sequence of 1000000000 items "
                "is too long",
            ),
            (
                "{{ 9 ** 1000000 }}",
                "sandbox violation: 9 ** 1000000 is too large a number",
            ),
        ],
    )
    def test_render_unsafe_operation_is_sandbox_violation(
        self, templates: Templates, source: str, message: str
    ) -> None:
        assert render_error(templates, source) == message

    def test_render_private_env_attribute_refused(self, templates: Templates) -> None:
        """The env view's internals cannot be reached to read values unseen."""
        message = render_error(templates, "{{ env._values }}")
        assert message.startswith("sandbox violation: ")
        assert SECRET not in message

    def test_render_runtime_error_is_template_error(self, templates: Templates) -> None:
        assert render_error(templates, "{{ 1 / 0 }}") == (
            "ZeroDivisionError: division by zero"
        )
        assert render_error(templates, "{{ 'a' + 1 }}").startswith("TypeError: ")

    def test_render_small_power_allowed(self, templates: Templates) -> None:
        assert templates.render("{{ 2 ** 10 }}", {}) == 1024


class TestEnv:
    def test_render_env_value_registered_as_secret(
        self, templates: Templates, redactor: Redactor
    ) -> None:
        assert not redactor.contains_secret(SECRET)
        assert templates.render("Bearer {{ env.TOKEN }}", {}) == f"Bearer {SECRET}"
        assert redactor.contains_secret(SECRET)

    def test_render_env_by_subscript_registered_as_secret(
        self, templates: Templates, redactor: Redactor
    ) -> None:
        assert templates.render("{{ env['TOKEN'] }}", {}) == SECRET
        assert redactor.redact(f"x {SECRET} y") == "x *** y"

    def test_render_unread_env_value_not_registered(
        self, templates: Templates, redactor: Redactor
    ) -> None:
        templates.render("{{ env.REGION }}", {})
        assert redactor.contains_secret("eu-west")
        assert not redactor.contains_secret(SECRET)

    def test_render_whole_env_registers_every_value(
        self, templates: Templates, redactor: Redactor
    ) -> None:
        assert templates.render("{{ env }}", {}) == {
            "TOKEN": SECRET,
            "REGION": "eu-west",
        }
        assert redactor.contains_secret(SECRET)

    def test_render_env_name_not_overridable(self, templates: Templates) -> None:
        assert templates.render("{{ env.REGION }}", {"env": {}}) == "eu-west"

    def test_render_error_message_masks_env_value(self, templates: Templates) -> None:
        """A value read from env and echoed by an error is masked."""
        message = render_error(templates, "{{ d[env.TOKEN] }}", d={})
        assert SECRET not in message
        assert message == "'dict object' has no attribute '***'"

    def test_render_error_on_env_value_hides_value(self, templates: Templates) -> None:
        message = render_error(templates, "{{ env.TOKEN.nope }}")
        assert message == "'str object' has no attribute 'nope'"
        message = render_error(templates, "{{ env.TOKEN + 1 }}")
        assert SECRET not in message

    def test_env_repr_hides_values(self, templates: Templates) -> None:
        assert templates.render("x{{ env }}", {}) == "x<environment of 2 names>"


class TestNamesIn:
    def test_names_in_nested_structure_collects_all(self, templates: Templates) -> None:
        value = {
            "{{ key }}": ["{{ a.b + 1 }}", {"x": "{% for i in items %}{% endfor %}"}],
            "plain": [1, None, "no template"],
        }
        assert templates.names_in(value) == {"key", "a", "items"}

    def test_names_in_excludes_env_globals_and_locals(
        self, templates: Templates
    ) -> None:
        source = "{% set y = 1 %}{% for i in range(3) %}{{ i + y }}{% endfor %}"
        assert templates.names_in([source, "{{ env.TOKEN }}"]) == frozenset()

    def test_names_in_plain_values_empty(self, templates: Templates) -> None:
        assert templates.names_in({"a": "b", "c": [1, 2.5, True]}) == frozenset()

    def test_names_in_does_not_read_env(
        self, templates: Templates, redactor: Redactor
    ) -> None:
        templates.names_in("{{ env.TOKEN }}")
        assert not redactor.contains_secret(SECRET)

    def test_is_template_detects_markers(self) -> None:
        assert is_template("a {{ b }}")
        assert is_template("{% if a %}{% endif %}")
        assert is_template("{# note #}")
        assert not is_template("{ not: a template }")


class TestExpressions:
    def test_compile_expression_evaluates_many_times(
        self, templates: Templates
    ) -> None:
        expression = templates.compile_expression("response.json.amount == 10")
        assert expression.names == {"response"}
        assert expression.evaluate({"response": {"json": {"amount": 10}}}) is True
        assert expression.evaluate({"response": {"json": {"amount": 9}}}) is False

    def test_compile_expression_keeps_type(self, templates: Templates) -> None:
        expression = templates.compile_expression("response.json.id")
        assert expression.evaluate({"response": {"json": {"id": [1]}}}) == [1]

    def test_compile_expression_in_braces_accepted(self, templates: Templates) -> None:
        expression = templates.compile_expression("{{ response.status }}")
        assert expression.evaluate({"response": {"status": 201}}) == 201

    @pytest.mark.parametrize(
        ("source", "message"),
        [
            (
                "response.status ==",
                "expression syntax error: unexpected 'end of template'",
            ),
            ("a b", "expression syntax error: unexpected 'b' after the expression"),
            ("{{ a }} {{ b }}", "expected one expression, not a template"),
            ("a | nofilter", "expression error: No filter named 'nofilter'."),
        ],
    )
    def test_compile_expression_syntax_error_raises(
        self, templates: Templates, source: str, message: str
    ) -> None:
        with pytest.raises(TemplateError) as caught:
            templates.compile_expression(source)
        assert caught.value.message == message

    def test_evaluate_undefined_result_raises(self, templates: Templates) -> None:
        """An undefined value is an error even when nothing uses it."""
        expression = templates.compile_expression("response.json.id")
        with pytest.raises(TemplateError) as caught:
            expression.evaluate({"response": {"json": None}})
        assert caught.value.message == "'None' has no attribute 'id'"

    def test_evaluate_undefined_name_raises(self, templates: Templates) -> None:
        expression = templates.compile_expression("invoice_id")
        with pytest.raises(TemplateError, match="undefined variable 'invoice_id'"):
            expression.evaluate({})

    def test_evaluate_sandbox_violation_raises(self, templates: Templates) -> None:
        expression = templates.compile_expression("response.__class__")
        with pytest.raises(TemplateError, match=r"^sandbox violation: "):
            expression.evaluate({"response": {}})

    def test_evaluate_reads_env(self, templates: Templates, redactor: Redactor) -> None:
        expression = templates.compile_expression("env.TOKEN")
        assert expression.names == frozenset()
        assert expression.evaluate({}) == SECRET
        assert redactor.contains_secret(SECRET)

    def test_comparison_gives_both_sides(self, templates: Templates) -> None:
        expression = templates.compile_expression("response.json.n + 1 >= limit")
        comparison = expression.comparison()
        assert comparison is not None
        operator, left, right = comparison
        names = {"response": {"json": {"n": 4}}, "limit": 9}
        assert operator == ">="
        assert (left.evaluate(names), right.evaluate(names)) == (5, 9)

    def test_comparison_of_other_expression_none(self, templates: Templates) -> None:
        assert templates.compile_expression("a and b").comparison() is None
        assert templates.compile_expression("a < b < c").comparison() is None


class TestCache:
    def test_render_compiles_each_source_once(
        self, templates: Templates, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        compiled: list[str] = []
        original = templates._compile

        def counting(text: str) -> Any:
            compiled.append(text)
            return original(text)

        monkeypatch.setattr(templates, "_compile", counting)
        request = {"url": "items/{{ n }}", "body": {"n": "{{ n }}"}}
        for n in range(50):
            assert templates.render(request, {"n": n}) == {
                "url": f"items/{n}",
                "body": {"n": n},
            }
        assert sorted(compiled) == ["items/{{ n }}", "{{ n }}"]

    def test_render_plain_strings_never_compiled(
        self, templates: Templates, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def fail(text: str) -> Any:
            raise AssertionError(f"compiled {text!r}")

        monkeypatch.setattr(templates, "_compile", fail)
        assert templates.render({"a": "{ x }", "b": ["c"]}, {}) == {
            "a": "{ x }",
            "b": ["c"],
        }

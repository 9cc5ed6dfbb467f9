"""Expectations and captures: runner/expectations.py.

Each rule is checked passing and failing, with the exact reason a user reads.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import pytest

from runner.errors import InputError, TemplateError
from runner.expectations import (
    CompiledExpect,
    Headers,
    ResponseView,
    evaluate_captures,
)
from runner.secrets import Redactor
from runner.suites import Expect
from runner.templates import Templates


@pytest.fixture
def templates() -> Templates:
    return Templates({}, Redactor())


def response(
    body: Any = None,
    *,
    status: int = 200,
    text: str | None = None,
    headers: dict[str, str] | None = None,
    elapsed_ms: float = 12.0,
) -> ResponseView:
    if text is None:
        text = json.dumps(body)
        headers = {"Content-Type": "application/json", **(headers or {})}
    return ResponseView(
        status=status, headers=headers or {}, text=text, elapsed_ms=elapsed_ms
    )


def judge(
    templates: Templates,
    expect: dict[str, Any],
    answer: ResponseView,
    names: dict[str, Any] | None = None,
) -> list[str]:
    compiled = CompiledExpect.build(Expect.model_validate(expect), templates)
    return compiled.judge(answer, names)


class TestResponseView:
    def test_json_parsed_from_body(self) -> None:
        view = response({"id": 4})
        assert view.json == {"id": 4}
        assert view.is_json

    def test_json_of_non_json_body_none(self) -> None:
        view = response(text="<html></html>", headers={"Content-Type": "text/html"})
        assert view.json is None
        assert not view.is_json

    def test_json_null_body_is_json(self) -> None:
        view = response(None)
        assert view.json is None
        assert view.is_json

    def test_headers_case_insensitive(self) -> None:
        view = response({}, headers={"X-Request-Id": "abc"})
        assert view.headers["x-request-id"] == "abc"
        assert view.headers["X-REQUEST-ID"] == "abc"
        assert "x-request-id" in view.headers
        assert "X-Request-Id" in list(view.headers)

    def test_headers_underscore_finds_dash(self) -> None:
        """``response.headers.content_type`` works from a template."""
        assert Headers({"Content-Type": "text/plain"})["content_type"] == "text/plain"

    def test_repr_hides_body(self) -> None:
        view = response(text="secret body", headers={})
        assert "secret body" not in repr(view)
        assert repr(view) == "<ResponseView 200, 11 characters, 12 ms>"

    def test_as_names_gives_response(self, templates: Templates) -> None:
        view = response({"amount": 10}, headers={"X-A": "1"})
        expression = templates.compile_expression(
            "[response.status, response.json.amount, response.headers['x-a'],"
            " response.text | length, response.elapsed_ms]"
        )
        assert expression.evaluate(view.as_names()) == [200, 10, "1", 14, 12.0]


class TestStatus:
    def test_status_default_accepts_any_2xx(self, templates: Templates) -> None:
        assert judge(templates, {}, response({}, status=204)) == []

    def test_status_default_refuses_other(self, templates: Templates) -> None:
        reasons = judge(templates, {}, response({"error": "no"}, status=404))
        assert reasons == [
            'status: expected a 2xx status, got 404 (body: {"error": "no"})'
        ]

    def test_status_single_code_passes(self, templates: Templates) -> None:
        assert judge(templates, {"status": 201}, response({}, status=201)) == []

    def test_status_single_code_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"status": 201}, response(text="", status=200))
        assert reasons == ["status: expected 201, got 200"]

    def test_status_list_passes(self, templates: Templates) -> None:
        answer = response({}, status=204)
        assert judge(templates, {"status": [200, 204]}, answer) == []

    def test_status_list_fails(self, templates: Templates) -> None:
        answer = response(text="", status=500)
        reasons = judge(templates, {"status": [200, 204]}, answer)
        assert reasons == ["status: expected one of 200, 204, got 500"]

    def test_status_failure_long_body_truncated(self, templates: Templates) -> None:
        answer = response(text="x" * 5000, status=500)
        [reason] = judge(templates, {}, answer)
        assert reason.startswith("status: expected a 2xx status, got 500 (body: xxx")
        assert reason.endswith("...)")
        assert len(reason) < 300


class TestHeaders:
    def test_headers_any_case_passes(self, templates: Templates) -> None:
        answer = response({}, headers={"x-request-id": "abc"})
        assert judge(templates, {"headers": {"X-Request-Id": "abc"}}, answer) == []

    def test_headers_other_value_fails(self, templates: Templates) -> None:
        answer = response({}, headers={"X-Mode": "slow"})
        reasons = judge(templates, {"headers": {"x-mode": "fast"}}, answer)
        assert reasons == ['headers: x-mode expected "fast", got "slow"']

    def test_headers_missing_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"headers": {"X-Mode": "fast"}}, response({}))
        assert reasons == ['headers: X-Mode expected "fast", got no such header']

    def test_headers_sensitive_value_not_shown(self, templates: Templates) -> None:
        answer = response({}, headers={"Set-Cookie": "session=abcdef"})
        reasons = judge(templates, {"headers": {"Set-Cookie": "x"}}, answer)
        assert reasons == [
            "headers: Set-Cookie does not have the expected value (not shown)"
        ]


class TestJson:
    def test_json_subset_passes(self, templates: Templates) -> None:
        answer = response({"id": 4, "customer": "acme", "lines": [{"n": 1, "x": 2}]})
        expect = {"json": {"customer": "acme", "lines": [{"n": 1}]}}
        assert judge(templates, expect, answer) == []

    def test_json_int_equals_float(self, templates: Templates) -> None:
        assert judge(templates, {"json": {"n": 1}}, response({"n": 1.0})) == []

    def test_json_true_is_not_one(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": {"n": 1}}, response({"n": True}))
        assert reasons == ["json: at $.n expected 1, got true"]

    def test_json_string_is_not_number(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": {"n": 1}}, response({"n": "1"}))
        assert reasons == ['json: at $.n expected 1, got "1"']

    def test_json_nested_difference_gives_path(self, templates: Templates) -> None:
        answer = response({"items": [{"id": 4, "name": "a"}]})
        reasons = judge(templates, {"json": {"items": [{"id": 3}]}}, answer)
        assert reasons == ["json: at $.items[0].id expected 3, got 4"]

    def test_json_missing_member_fails(self, templates: Templates) -> None:
        answer = response({"id": 4})
        reasons = judge(templates, {"json": {"customer": "acme"}}, answer)
        assert reasons == ['json: at $.customer expected "acme", got no such member']

    def test_json_list_length_differs_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": [1, 2]}, response([1, 2, 3]))
        assert reasons == ["json: at $ expected 2 items, got 3"]

    def test_json_wrong_container_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": {"a": {"b": 1}}}, response({"a": [1]}))
        assert reasons == ["json: at $.a expected an object, got [1]"]
        reasons = judge(templates, {"json": {"a": [1]}}, response({"a": 1}))
        assert reasons == ["json: at $.a expected an array, got 1"]

    def test_json_odd_key_quoted_in_path(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": {"a b": 1}}, response({"a b": 2}))
        assert reasons == ['json: at $["a b"] expected 1, got 2']

    def test_json_reports_three_differences(self, templates: Templates) -> None:
        answer = response({"a": 0, "b": 0, "c": 0, "d": 0})
        expect = {"json": {"a": 1, "b": 2, "c": 3, "d": 4}}
        assert judge(templates, expect, answer) == [
            "json: at $.a expected 1, got 0; at $.b expected 2, got 0; "
            "at $.c expected 3, got 0; and more"
        ]

    def test_json_null_expected_explicitly(self, templates: Templates) -> None:
        """``json: null`` asks for a JSON null body, unlike an absent `json`."""
        assert judge(templates, {"json": None}, response(None)) == []
        reasons = judge(templates, {"json": None}, response({"a": 1}))
        assert reasons == ['json: at $ expected null, got {"a": 1}']

    def test_json_long_value_truncated(self, templates: Templates) -> None:
        answer = response({"a": "x" * 1000})
        [reason] = judge(templates, {"json": {"a": "y"}}, answer)
        assert reason.startswith('json: at $.a expected "y", got "xxx')
        assert reason.endswith("...")
        assert len(reason) < 300

    def test_json_html_body_fails(self, templates: Templates) -> None:
        answer = response(
            text="<html>\n<p>down</p></html>",
            headers={"Content-Type": "text/html; charset=utf-8"},
            status=200,
        )
        reasons = judge(templates, {"json": {"a": 1}}, answer)
        assert reasons == [
            "json: expected a JSON body, got text/html "
            "(body: <html> <p>down</p></html>)"
        ]

    def test_json_empty_body_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": {}}, response(text="", status=204))
        assert reasons == ["json: expected a JSON body, got an empty body"]

    def test_json_template_renders_with_names(self, templates: Templates) -> None:
        expect = {"json": {"customer": "{{ customer }}", "amount": "{{ amount }}"}}
        answer = response({"customer": "acme", "amount": 10})
        names = {"customer": "acme", "amount": 10}
        assert judge(templates, expect, answer, names) == []

    def test_json_template_undefined_is_reason(self, templates: Templates) -> None:
        reasons = judge(templates, {"json": {"c": "{{ c }}"}}, response({"c": 1}))
        assert reasons == ["expect: undefined variable 'c'"]


class TestSchema:
    SCHEMA: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["id"],
        "properties": {"id": {"type": "integer"}},
    }

    def test_schema_valid_body_passes(self, templates: Templates) -> None:
        assert judge(templates, {"schema": self.SCHEMA}, response({"id": 3})) == []

    def test_schema_invalid_body_gives_path(self, templates: Templates) -> None:
        reasons = judge(templates, {"schema": self.SCHEMA}, response({"id": "3"}))
        assert reasons == ["schema: at $.id '3' is not of type 'integer'"]

    def test_schema_several_errors_counted(self, templates: Templates) -> None:
        """The most relevant error (jsonschema's `best_match`) and a count."""
        schema = {"type": "array", "items": {"type": "integer"}}
        [reason] = judge(templates, {"schema": schema}, response(["a", "b", "c"]))
        assert re.fullmatch(
            r"schema: at \$\[\d\] '\w' is not of type 'integer' \(and 2 more\)",
            reason,
        )

    def test_schema_non_json_body_fails(self, templates: Templates) -> None:
        answer = response(text="ok", headers={"Content-Type": "text/plain"})
        reasons = judge(templates, {"schema": self.SCHEMA}, answer)
        assert reasons == ["schema: expected a JSON body, got text/plain (body: ok)"]

    def test_schema_given_loaded_from_path(self, templates: Templates) -> None:
        """A schema the loader read from a file is passed in beside the Expect."""
        expect = Expect.model_validate({"schema": "schemas/item.json"})
        compiled = CompiledExpect.build(expect, templates, self.SCHEMA)
        assert compiled.judge(response({})) == [
            "schema: at $ 'id' is a required property"
        ]

    def test_schema_invalid_schema_raises(self, templates: Templates) -> None:
        expect = Expect.model_validate({"schema": {"type": "integer", "minimum": "x"}})
        with pytest.raises(InputError) as caught:
            CompiledExpect.build(expect, templates)
        assert caught.value.message == (
            "invalid JSON Schema: at $.minimum 'x' is not of type 'number'"
        )
        assert caught.value.location is None

    def test_schema_format_checked(self, templates: Templates) -> None:
        schema = {"type": "string", "format": "ipv4"}
        reasons = judge(templates, {"schema": schema}, response("999.1.1.1"))
        assert reasons == ["schema: at $ '999.1.1.1' is not a 'ipv4'"]


class TestBodyAndTime:
    def test_body_contains_passes(self, templates: Templates) -> None:
        answer = response(text="hello acme")
        assert judge(templates, {"body_contains": ["acme", "hello"]}, answer) == []

    def test_body_contains_missing_fails(self, templates: Templates) -> None:
        answer = response(text="hello world")
        reasons = judge(templates, {"body_contains": ["acme", "world", "x"]}, answer)
        assert reasons == [
            'body_contains: expected the body to contain "acme", "x" '
            "(body: hello world)"
        ]

    def test_body_contains_empty_body_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"body_contains": "acme"}, response(text=""))
        assert reasons == [
            'body_contains: expected the body to contain "acme" (an empty body)'
        ]

    def test_max_ms_within_passes(self, templates: Templates) -> None:
        assert judge(templates, {"max_ms": 500}, response({}, elapsed_ms=500)) == []

    def test_max_ms_over_fails(self, templates: Templates) -> None:
        reasons = judge(templates, {"max_ms": 500}, response({}, elapsed_ms=812.4))
        assert reasons == ["max_ms: took 812 ms, expected at most 500 ms"]


class TestThat:
    def test_that_true_passes(self, templates: Templates) -> None:
        answer = response({"amount": 10, "items": [1, 2]})
        expect = {
            "that": [
                "response.json.amount == 10",
                "response.json['items'] | length == 2",
                "response.json.items[0] == 1",
                "response.status < 300 and response.elapsed_ms < 1000",
            ]
        }
        assert judge(templates, expect, answer) == []

    def test_that_false_comparison_shows_values(self, templates: Templates) -> None:
        reasons = judge(
            templates,
            {"that": ["response.json.amount == 10"]},
            response({"amount": 12}),
        )
        assert reasons == [
            "that: response.json.amount == 10 is false (left: 12, right: 10)"
        ]

    def test_that_false_other_expression(self, templates: Templates) -> None:
        reasons = judge(templates, {"that": ["response.json.ok"]}, response({"ok": 0}))
        assert reasons == ["that: response.json.ok is false"]

    def test_that_error_is_reason(self, templates: Templates) -> None:
        reasons = judge(templates, {"that": ["response.json.id > 1"]}, response({}))
        assert reasons == [
            "that: response.json.id > 1: 'dict object' has no attribute 'id'"
        ]

    def test_that_uses_names(self, templates: Templates) -> None:
        """`that` may compare with vars and captures."""
        expect = {"that": ["response.json.id == invoice_id"]}
        answer = response({"id": 7})
        assert judge(templates, expect, answer, {"invoice_id": 7}) == []

    def test_that_syntax_error_raises_at_build(self, templates: Templates) -> None:
        expect = Expect.model_validate({"that": ["response.status =="]})
        with pytest.raises(TemplateError) as caught:
            CompiledExpect.build(expect, templates)
        assert caught.value.message == (
            "that: expression syntax error: unexpected 'end of template'"
        )

    def test_that_compiled_once(
        self, templates: Templates, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        compiled = CompiledExpect.build(
            Expect.model_validate({"that": ["response.status == 200"]}), templates
        )

        def fail(source: str) -> Any:
            raise AssertionError("compiled again")

        monkeypatch.setattr(templates, "compile_expression", fail)
        for _ in range(3):
            assert compiled.judge(response({})) == []


class TestCompiledExpect:
    def test_names_lists_what_templates_read(self, templates: Templates) -> None:
        expect = Expect.model_validate(
            {
                "headers": {"X-Id": "{{ request_id }}"},
                "json": {"customer": "{{ customer }}"},
                "body_contains": "{{ word }}",
                "that": ["response.json.id == invoice_id"],
            }
        )
        compiled = CompiledExpect.build(expect, templates)
        assert compiled.names == {"request_id", "customer", "word", "invoice_id"}

    def test_judge_reports_every_failing_rule(self, templates: Templates) -> None:
        expect = {"status": 201, "json": {"a": 1}, "max_ms": 10}
        reasons = judge(templates, expect, response({"a": 2}, elapsed_ms=20))
        assert [reason.split(":")[0] for reason in reasons] == [
            "status",
            "json",
            "max_ms",
        ]


class TestCaptures:
    def test_captures_evaluated(self, templates: Templates) -> None:
        captures = {
            "invoice_id": templates.compile_expression("response.json.id"),
            "next": templates.compile_expression("response.json.page + step"),
        }
        values = evaluate_captures(
            captures, response({"id": 9, "page": 1}), {"step": 2}
        )
        assert values == {"invoice_id": 9, "next": 3}

    def test_captures_failure_names_capture(self, templates: Templates) -> None:
        captures = {"invoice_id": templates.compile_expression("response.json.id")}
        answer = response(text="<html>", headers={"Content-Type": "text/html"})
        with pytest.raises(TemplateError) as caught:
            evaluate_captures(captures, answer)
        assert caught.value.message == (
            "capture 'invoice_id' (response.json.id): 'None' has no attribute 'id'"
        )

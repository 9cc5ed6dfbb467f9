"""JSON Schemas of connection and suite files and of the JSON report, exported
from the models.

The models are the one source: the committed files under ``schemas/`` are
this export, and so are the copies the package ships in
``runner/schemas/``; the loader validates against the two file schemas
there (reading them costs a run far less than exporting them from pydantic
at start-up).
``runner schema --output runner/schemas`` refreshes the copies; a test
fails when any of them drift. Editors read the same files through the
``yaml-language-server`` comment at the top of each example.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from runner.connections import CONNECTION_TYPES
from runner.suites import Suite

__all__ = [
    "SCHEMA_FILES",
    "connection_schema",
    "export_schemas",
    "report_schema",
    "suite_schema",
]

DIALECT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://runner.dev/schemas/"

JsonSchema = dict[str, Any]
# The connection types' schemas under ``$defs``, and the rules choosing one.
ConnectionTypes = tuple[JsonSchema, list[JsonSchema]]


def _model_schema(model: Any) -> JsonSchema:
    # "serialization" mode would describe what we print; users write input.
    schema: JsonSchema = model.model_json_schema(
        mode="validation", ref_template="#/$defs/{model}"
    )
    return schema


def _connection_defs() -> ConnectionTypes:
    """Each connection type's schema under ``$defs``, and the rules choosing one.

    A connection says its type with ``type``, or has none and is then
    ``oauth2`` when it has ``token_url``. Expressed as ``if``/``then`` pairs
    rather than ``oneOf`` so that a validator reports the errors of the one
    type that applies, not of every type that does not.
    """
    defs: JsonSchema = {}
    rules: list[JsonSchema] = []
    for name, entry in CONNECTION_TYPES.items():
        schema = _model_schema(entry.model)
        defs.update(schema.pop("$defs", {}))
        schema["x-type-id"] = entry.type_id
        schema["x-module"] = entry.module
        schema["x-category"] = entry.category
        # Ours, not the catalogue's: such a type has no type ID or module.
        schema["x-extension"] = entry.extension
        def_name = f"{name}_connection"
        defs[def_name] = schema
        rules.append(
            {
                "if": {"required": ["type"], "properties": {"type": {"const": name}}},
                "then": {"$ref": f"#/$defs/{def_name}"},
            }
        )
    untyped_oauth2 = {
        "if": {"not": {"required": ["type"]}, "required": ["token_url"]},
        "then": {"$ref": "#/$defs/oauth2_connection"},
    }
    untyped_http = {
        "if": {"not": {"anyOf": [{"required": ["type"]}, {"required": ["token_url"]}]}},
        "then": {"$ref": "#/$defs/http_connection"},
    }
    rules += [untyped_oauth2, untyped_http]
    return defs, rules


def _connection_body(rules: list[JsonSchema]) -> JsonSchema:
    return {
        "type": "object",
        "properties": {"type": {"enum": list(CONNECTION_TYPES)}},
        "allOf": rules,
    }


def connection_schema(types: ConnectionTypes | None = None) -> JsonSchema:
    """The schema of a connection file (`types`: the connection types' export)."""
    defs, rules = copy.deepcopy(types) if types else _connection_defs()
    return {
        "$schema": DIALECT,
        "$id": BASE_ID + "connection.schema.json",
        "title": "runner connection",
        "description": (
            "Where an API is and how to authenticate to it. The type is "
            "`type`, or `oauth2` when `token_url` is present, else `http`."
        ),
        **_connection_body(rules),
        # The catalogue's own example, as the registry keeps it.
        "examples": [dict(CONNECTION_TYPES["oauth2"].example)],
        "$defs": defs,
    }


def suite_schema(types: ConnectionTypes | None = None) -> JsonSchema:
    """The schema of a suite file, inline connections included."""
    schema = _model_schema(Suite)
    connection_defs, rules = copy.deepcopy(types) if types else _connection_defs()
    defs: JsonSchema = schema.pop("$defs", {})
    defs.update(connection_defs)
    defs["connection"] = _connection_body(rules)

    a_path = {"type": "string", "minLength": 1, "description": "A path to a file."}
    inline = {"$ref": "#/$defs/connection"}
    properties = schema["properties"]
    properties["connection"]["anyOf"] = [a_path, inline, {"type": "null"}]
    properties["connections"]["additionalProperties"] = {
        "anyOf": [copy.deepcopy(a_path), inline]
    }

    return {
        "$schema": DIALECT,
        "$id": BASE_ID + "suite.schema.json",
        **schema,
        "title": "runner suite",
        "$defs": defs,
    }


def report_schema() -> JsonSchema:
    """The schema of the JSON report that ``runner run --report`` writes."""
    # Imported here: the report's models are needed only to write the report
    # or this schema, and every run that imports this module would pay.
    from runner.report import Report

    # Unlike the input files, this describes what the runner writes.
    schema: JsonSchema = Report.model_json_schema(
        mode="serialization", ref_template="#/$defs/{model}"
    )
    return {
        "$schema": DIALECT,
        "$id": BASE_ID + "report.schema.json",
        **schema,
        "title": "runner report",
    }


SCHEMA_FILES = {
    "connection.schema.json": connection_schema,
    "report.schema.json": report_schema,
    "suite.schema.json": suite_schema,
}


def render_schema(schema: JsonSchema) -> str:
    """The exact text written to disk, so that drift checks compare bytes."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def export_schemas(folder: Path, *, check: bool) -> list[Path]:
    """Write the schemas to `folder`, or with `check` list those that differ."""
    differing: list[Path] = []
    for file_name, build in SCHEMA_FILES.items():
        path = folder / file_name
        text = render_schema(build())
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        differing.append(path)
        if not check:
            folder.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return differing

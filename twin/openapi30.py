"""The API description as OpenAPI 3.0, for OGC clients.

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12); OGC API clients and test
suites read 3.0 (GDAL, OWSLib, ogctests: ``service-desc`` of type
``application/vnd.oai.openapi+json;version=3.0``). The two differ in a few
schema keywords only, which this module rewrites: ``null`` types become
``nullable``, ``const`` becomes a one-value ``enum``, ``examples`` becomes
``example``, numeric ``exclusiveMinimum``/``Maximum`` become flags, and
``patternProperties`` (absent from 3.0) becomes ``additionalProperties``.
"""

from __future__ import annotations

import copy
from typing import Any

_NESTED_LISTS = ("allOf", "anyOf", "oneOf")


def downgrade(document: dict[str, Any]) -> dict[str, Any]:
    """A 3.0.3 copy of a FastAPI (3.1) document."""
    result = copy.deepcopy(document)
    result["openapi"] = "3.0.3"
    result.get("info", {}).pop("summary", None)
    for name, schema in result.get("components", {}).get("schemas", {}).items():
        result["components"]["schemas"][name] = _schema(schema)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                _operation(operation)
    return result


def _operation(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        if "schema" in parameter:
            parameter["schema"] = _schema(parameter["schema"])
    bodies = [operation.get("requestBody", {}), *operation.get("responses", {}).values()]
    for body in bodies:
        for media in body.get("content", {}).values():
            if "schema" in media:
                media["schema"] = _schema(media["schema"])
        for header in body.get("headers", {}).values():
            if "schema" in header:
                header["schema"] = _schema(header["schema"])


def _schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    schema = {k: v for k, v in schema.items() if k not in ("$schema", "$id", "contentMediaType")}
    for key in _NESTED_LISTS:
        if key in schema:
            options = [_schema(s) for s in schema[key]]
            kept = [s for s in options if s != {"type": "null"}]
            if len(kept) < len(options):
                schema["nullable"] = True
            if len(kept) == 1 and key != "allOf":
                del schema[key]
                schema = _merge(schema, kept[0])
            else:
                schema[key] = kept
    if isinstance(schema.get("type"), list):
        types = [t for t in schema["type"] if t != "null"]
        schema["nullable"] = schema.get("nullable", False) or len(types) < len(schema["type"])
        schema["type"] = types[0] if types else "string"
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if "examples" in schema:
        examples = schema.pop("examples")
        if isinstance(examples, list) and examples:
            schema["example"] = examples[0]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(bound), int | float) and not isinstance(schema.get(bound), bool):
            schema[flag] = schema.pop(bound)
            schema[bound] = True
    for key in ("items", "not"):
        if key in schema:
            schema[key] = _schema(schema[key])
    if "patternProperties" in schema:  # not in 3.0: keep the value schema, lose the key pattern
        patterns = list(schema.pop("patternProperties").values())
        if len(patterns) == 1 and "additionalProperties" not in schema:
            schema["additionalProperties"] = patterns[0]
    schema.pop("propertyNames", None)
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = _schema(schema["additionalProperties"])
    if "properties" in schema:
        schema["properties"] = {name: _schema(s) for name, s in schema["properties"].items()}
    return schema


def _merge(outer: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    """One schema from a wrapper and its only option; a $ref cannot have siblings in 3.0, so it goes in allOf."""
    if "$ref" in inner:
        return {**outer, "allOf": [inner]}
    return {**inner, **outer}

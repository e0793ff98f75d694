"""Per-layer entries of the API definition.

Layers come and go at runtime, so the generic ``/collections/{collectionId}/items``
operation is copied for each layer as it exists now, with that layer's real
properties in the feature schema and a note of its queryables: clients that
read the OpenAPI document (GDAL, QGIS) learn the exact fields.
"""

from __future__ import annotations

import copy
from typing import Any

from layers.model import LayerDefinition
from ogc.geojson import GEOJSON, geometry_schema, property_schemas

ITEMS_PATH = "/collections/{collection_id}/items"

#: The definitions OGC API – Features Part 1 gives for its query parameters (comma-separated lists).
STANDARD_PARAMETERS: dict[str, dict[str, Any]] = {
    "bbox": {
        "name": "bbox",
        "in": "query",
        "required": False,
        "description": "minx,miny,maxx,maxy (CRS84 unless bbox-crs says otherwise)",
        "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
        "style": "form",
        "explode": False,
    },
    "limit": {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Features per page",
        "schema": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 10},
        "style": "form",
        "explode": False,
    },
    "sortby": {
        "name": "sortby",
        "in": "query",
        "required": False,
        "description": "Sortables, comma-separated, each ascending or '-' first for descending; NULLs sort last "
        "ascending and first descending; the feature id breaks ties",
        "schema": {"type": "array", "items": {"type": "string", "pattern": "^[+-]?[^,]+$"}},
        "style": "form",
        "explode": False,
    },
    "datetime": {
        "name": "datetime",
        "in": "query",
        "required": False,
        "description": "An instant or an interval start/end ('..' for open)",
        "schema": {"type": "string"},
        "style": "form",
        "explode": False,
    },
}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


#: The query parameters of /items. The handler reads them from the query string itself (FastAPI's
#: per-parameter validation cost more than the database's answer), so they are declared here.
ITEMS_QUERY_PARAMETERS: list[dict[str, Any]] = [
    STANDARD_PARAMETERS["limit"],
    STANDARD_PARAMETERS["bbox"],
    STANDARD_PARAMETERS["datetime"],
    _query("properties", "Comma-separated properties to return."),
    STANDARD_PARAMETERS["sortby"],
    _query("cursor", "Where the page starts; from a next link."),
    _query("crs", "CRS of the answer's coordinates (a URI)."),
    _query("bbox-crs", "CRS of bbox (a URI)."),
    _query("filter", "A CQL2 filter."),
    _query(
        "filter-lang", "cql2-text (the default) or cql2-json.", {"type": "string", "enum": ["cql2-text", "cql2-json"]}
    ),
    _query("filter-crs", "CRS of the filter's geometries (a URI)."),
    _query(
        "f",
        "Output format: json (GeoJSON), csv or html.",
        {"type": "string", "enum": ["json", "geojson", "csv", "html"]},
    ),
]


def with_collections(document: dict[str, Any], layers: list[LayerDefinition]) -> dict[str, Any]:
    """``document`` plus one items path and one feature schema per layer."""
    result = copy.deepcopy(document)
    template = result.get("paths", {}).get(ITEMS_PATH, {}).get("get")
    if template is None:
        return result
    template["parameters"] = [STANDARD_PARAMETERS.get(p.get("name"), p) for p in template.get("parameters", [])]
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for layer in layers:
        name = f"{layer.id}_feature"
        schemas[name] = _feature_schema(layer)
        operation = copy.deepcopy(template)
        operation["summary"] = f"{layer.title}: features"
        operation["operationId"] = f"get_{layer.id}_items"
        queryables = ", ".join(f.name for f in layer.fields) or "none"
        operation["description"] = f"{layer.description or layer.title}\n\nQueryable properties: {queryables}."
        operation["parameters"] = [
            _sortby(layer) if p.get("name") == "sortby" else p
            for p in operation.get("parameters", [])
            if p.get("name") != "collection_id"
        ]
        operation["responses"]["200"] = {
            "description": "A page of features",
            "content": {
                GEOJSON: {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": ["FeatureCollection"]},
                            "features": {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                        },
                    }
                }
            },
        }
        result["paths"][f"/collections/{layer.id}/items"] = {"get": operation}
    return result


def _sortby(layer: LayerDefinition) -> dict[str, Any]:
    """The generic sortby parameter with this layer's sortables spelled out."""
    parameter = copy.deepcopy(STANDARD_PARAMETERS["sortby"])
    names = [f.name for f in layer.fields]
    parameter["schema"]["items"] = {"type": "string", "enum": [*names, *(f"-{n}" for n in names)]}
    return parameter


def _feature_schema(layer: LayerDefinition) -> dict[str, Any]:
    properties = {
        name: {**schema, "nullable": not (layer.field(name) and layer.field(name).required)}  # type: ignore[union-attr]
        for name, schema in property_schemas(layer).items()
    }
    return {
        "type": "object",
        "title": layer.title,
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": {"type": "integer"},
            "geometry": {"type": "object", "description": geometry_schema(layer)["format"]},
            "properties": {"type": "object", "properties": properties},
        },
    }

"""GeoJSON and JSON Schema documents for features and layers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import shapely

from layers.features import Feature
from layers.model import FieldType, LayerDefinition
from ogc.crs import CRS84, reproject

GEOJSON = "application/geo+json"
CSV = "text/csv; charset=utf-8"
SCHEMA_JSON = "application/schema+json"

_FIELD_SCHEMAS: dict[FieldType, dict[str, str]] = {
    FieldType.STRING: {"type": "string"},
    FieldType.INTEGER: {"type": "integer"},
    FieldType.NUMBER: {"type": "number"},
    FieldType.BOOLEAN: {"type": "boolean"},
    FieldType.DATE: {"type": "string", "format": "date"},
    FieldType.DATETIME: {"type": "string", "format": "date-time"},
}


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def dumps(document: object) -> str:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def encode_features(features: Sequence[Feature], crs: str = CRS84) -> list[str]:
    """Each feature as GeoJSON text, coordinates in ``crs``; geometries are encoded in one vectorized call."""
    geometries = shapely.to_geojson(reproject([f.geometry for f in features], crs)) if features else []
    return [
        f'{{"type":"Feature","id":{f.id},"geometry":{geometry},"properties":{dumps(f.properties)}}}'
        for f, geometry in zip(features, geometries, strict=True)
    ]


def feature_collection(encoded: Sequence[str], members: dict[str, Any]) -> str:
    """A FeatureCollection around features already encoded as GeoJSON text."""
    head = dumps({"type": "FeatureCollection", **members})
    return head[:-1] + ',"features":[' + ",".join(encoded) + "]}"


def csv_rows(features: Sequence[Feature], names: Sequence[str], crs: str = CRS84) -> Iterator[str]:
    """The page as CSV for spreadsheets: id, the properties, and the geometry as WKT; UTF-8 with a BOM for Excel."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["id", *names, "geometry"])
    yield "\ufeff" + buffer.getvalue()
    for start in range(0, len(features), 1000):
        chunk = features[start : start + 1000]
        wkt = shapely.to_wkt(reproject([f.geometry for f in chunk], crs), rounding_precision=-1) if chunk else []
        buffer.seek(0)
        buffer.truncate()
        for feature, geometry in zip(chunk, wkt, strict=True):
            writer.writerow([feature.id, *(_cell(feature.properties.get(n)) for n in names), geometry])
        yield buffer.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else value


def property_schemas(layer: LayerDefinition, names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    schemas: dict[str, dict[str, Any]] = {}
    for field in layer.fields:
        if names is not None and field.name not in names:
            continue
        schema: dict[str, Any] = dict(_FIELD_SCHEMAS[field.type])
        if field.title:
            schema["title"] = field.title
        if field.description:
            schema["description"] = field.description
        if field.choices:
            schema["enum"] = list(field.choices)
        schemas[field.name] = schema
    return schemas


def geometry_schema(layer: LayerDefinition) -> dict[str, Any]:
    kind = layer.geometry_type.value.lower()
    return {"format": f"geometry-{'any' if kind == 'geometry' else kind}", "x-ogc-role": "primary-geometry"}

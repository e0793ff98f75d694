"""Export a layer to GeoJSON, GeoPackage or CSV, streamed.

Features flow from one database statement through Arrow batches into GDAL
(``pyogrio.write_arrow``), so memory stays flat for a million features. The
file is written beside its destination and renamed into place at the end: a
failed export never leaves half a file under the requested name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyogrio
import shapely

from layers.errors import InvalidInputError
from layers.features import Feature, FeatureQuery
from layers.model import GeometryType, LayerDefinition
from layers.store import Reader
from layers.store.tables import ARROW_TYPES

FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".csv": "CSV"}


def export_layer(store: Reader, layer_id: str, path: Path, query: FeatureQuery = FeatureQuery()) -> int:
    """Write the layer's features matching ``query`` to ``path``; return how many were written."""
    driver = FORMATS.get(path.suffix.lower())
    if driver is None:
        raise InvalidInputError(f"{path.name}: cannot export to '{path.suffix}'; use {', '.join(sorted(FORMATS))}")
    layer = store.get_layer(layer_id)
    schema = _schema(layer)
    counter = [0]

    def batches() -> Iterator[pa.RecordBatch]:
        for features in store.iter_batches(layer_id, query):
            counter[0] += len(features)
            yield _record_batch(schema, layer, features)

    reader = pa.RecordBatchReader.from_batches(schema, batches())
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    partial.unlink(missing_ok=True)
    options = _layer_options(driver, layer)
    try:
        pyogrio.write_arrow(
            reader,
            partial,
            layer=layer_id,
            driver=driver,
            geometry_name="geometry",
            geometry_type=_gdal_geometry_type(layer.geometry_type),
            crs="EPSG:4326",
            encoding="UTF-8" if driver == "CSV" else None,
            layer_options=options,
        )
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return counter[0]


def _schema(layer: LayerDefinition) -> pa.Schema:
    geometry = pa.field("geometry", pa.binary(), metadata={"ARROW:extension:name": "geoarrow.wkb"})
    return pa.schema([*(pa.field(f.name, ARROW_TYPES[f.type]) for f in layer.fields), geometry])


def _record_batch(schema: pa.Schema, layer: LayerDefinition, features: list[Feature]) -> pa.RecordBatch:
    columns = [
        pa.array([f.properties[field.name] for f in features], type=ARROW_TYPES[field.type]) for field in layer.fields
    ]
    wkb = shapely.to_wkb([f.geometry for f in features], output_dimension=2)
    return pa.RecordBatch.from_arrays([*columns, pa.array(wkb, type=pa.binary())], schema=schema)


def _layer_options(driver: str, layer: LayerDefinition) -> dict[str, str] | None:
    if driver == "CSV":
        # Points as lon/lat columns (what spreadsheets and our importer read); other shapes as WKT.
        as_xy = layer.geometry_type is GeometryType.POINT
        return {"GEOMETRY": "AS_XY" if as_xy else "AS_WKT", "CREATE_CSVT": "NO"}
    if driver == "GeoJSON":
        return {"RFC7946": "YES", "WRITE_NAME": "NO"}
    return None


def _gdal_geometry_type(geometry_type: GeometryType) -> str:
    return "Unknown" if geometry_type is GeometryType.GEOMETRY else geometry_type.value

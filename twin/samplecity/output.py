"""Writing layers as GeoPackages and ``layers.json``.

Columns are coerced from the declared field types, not from whatever numpy
produced, so a GeoPackage always matches its definition (int64 integers,
UTC datetimes, nullable where the definition allows it). The GeoPackage
"last change" stamp is pinned to the reference date so that two runs with
the same seed write byte-identical files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

logger = logging.getLogger(__name__)

GPKG_TIMESTAMP = "2026-10-31T17:00:00.000Z"  # the reference date, 2026-11-01T00:00+07:00, in UTC


@dataclass(frozen=True)
class LayerData:
    """Generated features of one layer: columns by field name, lon/lat geometries.

    Datetime columns hold epoch seconds (float, NaN where missing).
    """

    layer_id: str
    columns: Mapping[str, Any]
    geometry: np.ndarray

    def __len__(self) -> int:
        return len(self.geometry)


def to_geodataframe(definition: Mapping[str, Any], data: LayerData) -> gpd.GeoDataFrame:
    fields = definition["fields"]
    names = [f["name"] for f in fields]
    if list(data.columns) != names:
        raise ValueError(f"{data.layer_id}: columns {list(data.columns)} do not match fields {names}")
    columns = {f["name"]: _coerce(f, data.columns[f["name"]], len(data)) for f in fields}
    return gpd.GeoDataFrame(columns, geometry=gpd.GeoSeries(data.geometry, crs="EPSG:4326"))


def _coerce(field: Mapping[str, Any], values: Any, length: int) -> pd.Series:
    kind = field["type"]
    if kind == "datetime":
        series = pd.to_datetime(pd.Series(np.asarray(values, dtype=float)), unit="s", utc=True)
        series = series.dt.as_unit("s")
    elif kind == "integer":
        series = pd.Series(np.asarray(values, dtype=np.int64))
    elif kind == "number":
        series = pd.Series(np.asarray(values, dtype=np.float64))
    elif kind == "boolean":
        series = pd.Series(np.asarray(values, dtype=bool))
    else:
        series = pd.Series(np.asarray(values, dtype=object)).astype("str")
    if len(series) != length:
        raise ValueError(f"field {field['name']}: {len(series)} values for {length} features")
    if field["required"] and series.isna().any():
        raise ValueError(f"field {field['name']} is required but has missing values")
    return series


def write_layer(definition: Mapping[str, Any], data: LayerData, out_dir: Path) -> Path:
    path = out_dir / f"{data.layer_id}.gpkg"
    if path.exists():
        path.unlink()
    frame = to_geodataframe(definition, data)
    previous = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": GPKG_TIMESTAMP})
    try:
        pyogrio.write_dataframe(
            frame,
            path,
            layer=data.layer_id,
            driver="GPKG",
            geometry_type=definition["geometry_type"],
        )
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": previous})
    logger.debug("wrote %d features to %s", len(frame), path)
    return path


def write_layers_json(definitions: Sequence[Mapping[str, Any]], out_dir: Path) -> Path:
    path = out_dir / "layers.json"
    text = json.dumps(list(definitions), ensure_ascii=False, indent=2)
    path.write_text(text + "\n", encoding="utf-8")
    return path

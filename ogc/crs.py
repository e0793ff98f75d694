"""OGC API – Features, Part 2: coordinate reference systems by reference.

Features are stored in CRS84 (lon/lat); a client may ask for them in another
CRS and give its ``bbox`` in one. Coordinates follow the axis order the CRS
defines: EPSG:4326 is latitude first, as OGC requires. pyproj does every
transformation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import shapely
from pyproj import CRS, Transformer

from layers.errors import InvalidInputError

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
_EPSG = "http://www.opengis.net/def/crs/EPSG/0/"

#: What the province uses: WGS84 both ways, Web Mercator, VN-2000 and its projections.
SUPPORTED = [
    CRS84,
    f"{_EPSG}4326",
    f"{_EPSG}3857",
    f"{_EPSG}4756",  # VN-2000 geographic
    f"{_EPSG}9217",  # VN-2000 / TM-3 108°15′ (Bình Định's cadastral maps)
    f"{_EPSG}3405",  # VN-2000 / UTM zone 48N
    f"{_EPSG}3406",  # VN-2000 / UTM zone 49N
]
CONFORMANCE = ["http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs"]


def parse_crs(text: str | None, parameter: str = "crs") -> str:
    """A supported CRS URI (``[EPSG:4326]``-style safe CURIEs accepted); CRS84 when absent."""
    if text is None:
        return CRS84
    uri = text.strip()
    if uri.startswith("[") and uri.endswith("]"):
        authority, _, code = uri[1:-1].partition(":")
        uri = CRS84 if (authority, code) == ("OGC", "CRS84") else f"{_EPSG}{code}" if authority == "EPSG" else uri
    if uri not in SUPPORTED:
        raise InvalidInputError(f"{parameter}: {text!r} is not offered; use one of {', '.join(SUPPORTED)}")
    return uri


@lru_cache(maxsize=32)
def _crs(uri: str) -> CRS:
    return CRS.from_user_input("OGC:CRS84" if uri == CRS84 else f"EPSG:{uri.rsplit('/', 1)[1]}")


@lru_cache(maxsize=32)
def _transformer(source: str, target: str) -> Transformer:
    return Transformer.from_crs(_crs(source), _crs(target))  # each CRS's own axis order


def northing_first(uri: str) -> bool:
    """True for a CRS whose first axis points north (EPSG:4326, EPSG:4756): latitude first."""
    return _crs(uri).axis_info[0].direction.lower() == "north"


def geometry_transform(target: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function for ``shapely.transform`` from stored CRS84 to ``target``; None when nothing changes."""
    if target == CRS84:
        return None
    transformer = _transformer(CRS84, target)

    def transform(coords: np.ndarray) -> np.ndarray:
        first, second = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([first, second])

    return transform


def reproject(geometries: list[shapely.Geometry], target: str) -> list[shapely.Geometry]:
    transform = geometry_transform(target)
    if transform is None:
        return geometries
    return list(shapely.transform(np.asarray(geometries, dtype=object), transform))


def bbox_to_crs84(bbox: tuple[float, float, float, float], source: str) -> tuple[float, float, float, float]:
    """A bbox given in ``source`` (its axis order) as a lon/lat box that contains it."""
    if source == CRS84:
        return bbox
    west, south, east, north = _transformer(source, CRS84).transform_bounds(*bbox, densify_pts=21)
    return west, south, east, north


def geometry_to_crs84(geometry: shapely.Geometry, source: str) -> shapely.Geometry:
    """A geometry given in ``source`` (its axis order) in CRS84; refused when it falls outside the CRS."""
    if source == CRS84:
        return geometry
    transformer = _transformer(source, CRS84)

    def transform(coords: np.ndarray) -> np.ndarray:
        first, second = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([first, second])

    result = shapely.transform(geometry, transform)
    if not np.isfinite(shapely.get_coordinates(result)).all():
        raise InvalidInputError(f"a geometry lies outside the area where {source} is defined")
    return result


def box_to_crs84(bbox: tuple[float, float, float, float], source: str) -> shapely.Geometry:
    """A box drawn in ``source`` as the polygon it is in CRS84 (its edges densified, as they bend)."""
    rectangle = shapely.box(*bbox)
    if source == CRS84:
        return rectangle
    xmin, ymin, xmax, ymax = bbox
    step = max(xmax - xmin, ymax - ymin) / 32 or 1.0
    return geometry_to_crs84(shapely.segmentize(rectangle, step), source)

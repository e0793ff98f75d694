"""Features and the questions asked of a layer, as plain values.

A ``FeatureQuery`` is what every read path (OGC items, tiles, the map's
"what is within 500 m", scenarios) hands to the store; the store turns it into
one SQL statement per backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from shapely.geometry.base import BaseGeometry

from layers.access import AreaMask
from layers.errors import InvalidInputError
from layers.model import LayerDefinition


@dataclass(frozen=True, slots=True)
class Feature:
    """One stored feature, or one version of it when read as of a past time."""

    id: int
    geometry: BaseGeometry
    properties: dict[str, Any]
    version: int
    valid_from: datetime
    valid_to: datetime | None = None
    distance_m: float | None = None


@dataclass(frozen=True, slots=True)
class FeatureInput:
    """A feature to write: geometry in EPSG:4326 and properties by field name."""

    geometry: BaseGeometry
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BBox:
    """A lon/lat rectangle in EPSG:4326; west > east crosses the antimeridian."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        if not (-180 <= self.west <= 180 and -180 <= self.east <= 180):
            raise InvalidInputError(f"bbox longitudes must lie in [-180, 180], got {self.west}, {self.east}")
        if not (-90 <= self.south <= self.north <= 90):
            raise InvalidInputError(
                f"bbox latitudes must satisfy -90 ≤ south ≤ north ≤ 90, got {self.south}, {self.north}"
            )

    def parts(self) -> list[tuple[float, float, float, float]]:
        """The rectangle as one or two non-wrapping (w, s, e, n) boxes."""
        if self.west <= self.east:
            return [(self.west, self.south, self.east, self.north)]
        return [(self.west, self.south, 180.0, self.north), (-180.0, self.south, self.east, self.north)]


class Op(StrEnum):
    EQ = "="
    NE = "<>"
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "like"
    IN = "in"
    IS_NULL = "is_null"
    NOT_NULL = "not_null"


@dataclass(frozen=True, slots=True)
class Condition:
    """``field op value``: a simple attribute predicate, values typed by the field."""

    field: str
    op: Op
    value: Any = None


#: Half the Earth's circumference: no two points on the ellipsoid lie farther apart.
MAX_DISTANCE_M = 20_037_509.0


@dataclass(frozen=True, slots=True)
class Near:
    """Features within ``metres`` of a lon/lat point, measured on the WGS84 ellipsoid."""

    lon: float
    lat: float
    metres: float

    def __post_init__(self) -> None:
        if not (-180 <= self.lon <= 180 and -90 <= self.lat <= 90):
            raise InvalidInputError(f"point ({self.lon}, {self.lat}) is not a lon/lat position")
        if not (0 <= self.metres <= MAX_DISTANCE_M):
            raise InvalidInputError(f"distance must lie in [0, {MAX_DISTANCE_M:,.0f}] m, got {self.metres}")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A closed interval; ``None`` on a side means open-ended (``..`` in OGC terms)."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class SortKey:
    """One key of a feature order: a declared field, ascending unless ``descending``.

    NULL ranks above every value on both backends: last when ascending, first
    when descending. The feature id always breaks ties, ascending.
    """

    field: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class FeatureQuery:
    """What to read from one layer. Every part is optional and they combine with AND."""

    bbox: BBox | None = None
    near: Near | None = None
    contains: tuple[float, float] | None = None
    where: Sequence[Condition] = ()
    time: TimeRange | None = None
    as_of: datetime | None = None
    properties: Sequence[str] | None = None
    limit: int | None = None
    #: Keyset paging: rows after the one with this id (and, with ``sort``, these sort-key values).
    after_id: int | None = None
    order_by_distance: bool = False
    sort: Sequence[SortKey] = ()
    #: The values of the ``sort`` keys of the row ``after_id`` names (None values are NULLs).
    after_values: Sequence[Any] | None = None
    #: A CQL2 filter in its standard JSON form (``{"op": ..., "args": [...]}``).
    filter: Mapping[str, Any] | None = None
    #: Only features whose geometry meets this area: a reader's scope (set by the store, from a ``Scope``).
    mask: AreaMask | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise InvalidInputError("limit must not be negative")
        if self.order_by_distance and self.near is None:
            raise InvalidInputError("ordering by distance needs a point to measure from")
        if self.sort and self.order_by_distance:
            raise InvalidInputError("a query is ordered either by distance or by its sort keys")
        if self.after_values is not None and (self.after_id is None or len(self.after_values) != len(self.sort)):
            raise InvalidInputError("a keyset cursor needs an id and one value per sort key")


@dataclass(frozen=True, slots=True)
class FeaturePage:
    """One page of a keyset-paged answer, read in one transaction with the layer's definition.

    Exactly one of ``features`` (decoded) and ``encoded`` (GeoJSON Feature text
    made by the database) is set. ``next_after`` is the keyset of the page's
    last row — its sort-key values, then its id — when more rows follow.
    """

    layer: LayerDefinition
    ids: list[int]
    features: list[Feature] | None
    encoded: list[str] | None
    next_after: tuple[Any, ...] | None
    matched: int | None

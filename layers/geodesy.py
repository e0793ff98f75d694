"""Conservative lon/lat search windows for metric distances.

Both backends measure distances exactly on the WGS84 ellipsoid, but an exact
distance cannot use a spatial index. A lon/lat rectangle that is sure to
contain every point within the distance lets the index prune first.
"""

from __future__ import annotations

import math

from pyproj import Geod

from layers.features import BBox

_GEOD = Geod(ellps="WGS84")
#: Beyond these, a lon/lat degree is too far from a constant length for ``degree_bands``.
_BANDS_MAX_METRES = 50_000.0
_BANDS_MAX_LATITUDE = 80.0
#: Slack for what a local linear scale misses at up to 50 km (≈ (d/R)², well under 0.1 %).
_SCALE_SLACK = 0.01

# Metres per degree, chosen on the safe side: a degree of latitude is shortest at
# the equator (110,574 m), and a degree of longitude on the WGS84 ellipsoid is
# never shorter than on the sphere of the equatorial radius (111,319.49 m x cos φ).
_METRES_PER_DEGREE_LAT_MIN = 110_574.0
_METRES_PER_DEGREE_LON_EQUATOR = 111_319.49
_MARGIN = 1.01


def search_window(lon: float, lat: float, metres: float) -> BBox:
    """A rectangle holding every point within ``metres`` of (lon, lat)."""
    dlat = metres * _MARGIN / _METRES_PER_DEGREE_LAT_MIN + 1e-9
    south, north = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
    widest = max(abs(south), abs(north))
    if widest >= 89.999:
        return BBox(-180.0, south, 180.0, north)
    dlon = metres * _MARGIN / (_METRES_PER_DEGREE_LON_EQUATOR * math.cos(math.radians(widest))) + 1e-9
    if dlon >= 180.0:
        return BBox(-180.0, south, 180.0, north)
    west, east = lon - dlon, lon + dlon
    if west < -180.0:
        west += 360.0
    if east > 180.0:
        east -= 360.0
    return BBox(west, south, east, north)


def degree_bands(lon: float, lat: float, metres: float) -> tuple[float, float] | None:
    """Radii in degrees around (lon, lat): within ``inner`` is surely within ``metres``, beyond ``outer`` surely not.

    A planar distance in degrees costs a fraction of an ellipsoidal one, so the
    backends decide most features with it and measure exactly only the thin
    ring between the two radii. Near the poles or over long distances a degree
    has no usable constant length; then there are no bands (None).
    """
    if metres > _BANDS_MAX_METRES or abs(lat) > _BANDS_MAX_LATITUDE or metres <= 0:
        return None
    window = search_window(lon, lat, metres)
    if window.west > window.east:
        return None  # across the antimeridian a planar distance in degrees jumps by 360
    latitudes = [window.south, lat, window.north]
    if window.south < 0 < window.north:
        latitudes.append(0.0)  # a degree of longitude is longest at the equator
    step = 1e-4
    scales = []
    for phi in latitudes:
        scales.append(_GEOD.inv(lon, phi, lon + step, phi)[2] / step)  # metres per degree east
        scales.append(_GEOD.inv(lon, phi - step / 2, lon, phi + step / 2)[2] / step)  # … and north
    inner = metres / (max(scales) * (1 + _SCALE_SLACK))
    outer = metres / (min(scales) * (1 - _SCALE_SLACK))
    return inner, outer

"""Conservative lon/lat search windows for metric distances.

Both backends measure distances exactly on the WGS84 ellipsoid, but an exact
distance cannot use a spatial index. A lon/lat rectangle that is sure to
contain every point within the distance lets the index prune first.
"""

from __future__ import annotations

import math

from layers.features import BBox

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

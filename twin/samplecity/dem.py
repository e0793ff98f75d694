"""A digital elevation model of the sample city, as a Cloud-Optimized GeoTIFF.

Deterministic (seeded), about 30 m per pixel (one arc-second), EPSG:4326,
float32 metres. The water/land line is the sample city's own (``land``,
``lagoon`` and ``sea_outline`` of ``data/samples/geography.geojson``), so the
DEM's coastline is exactly where the vector layers put it:

* the sea and the Thị Nại lagoon are shallow water below 0 m (a few metres in
  the lagoon, down to about -12 m in the bay), rising to 0 m at the shore;
* land starts near 0 m at the shore and rises slowly over the plains of the
  city and the Hà Thanh / Kôn delta;
* the drawn hill areas become massifs (núi Vũng Chua – Ghềnh Ráng about 500 m
  west of the city, núi Bà on the Phương Mai peninsula about 300 m), and the
  land beyond the drawn map to the west and south-west rises into hills of
  several hundred metres; rivers keep their valleys.

Everything is a smooth function of distances (scipy's Euclidean distance
transform on a metric grid) plus gently smoothed seeded noise; nothing is
survey data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.io import MemoryFile
from rasterio.transform import Affine, from_origin
from rio_cogeo.cogeo import cog_translate
from rio_cogeo.profiles import cog_profiles
from scipy import ndimage

from layers.rasters import RasterCatalog, RasterDefinition, RasterKind, RasterLayer
from twin.samplecity.inputs import Geography

logger = logging.getLogger(__name__)

#: West, south, east, north: the city, its hills to the west and the bay.
DEM_BOUNDS = (108.95, 13.60, 109.40, 14.00)
#: One arc-second: about 30.8 m north-south, 29.9 m east-west at 13.8°N.
ARC_SECOND = 1.0 / 3600.0
NODATA = -9999.0
DEM_FILE = "dem.tif"
DEM_ID = "dem"
DEM_TITLE = "Mô hình số độ cao Quy Nhơn"

_M_PER_DEG_LAT = 110_574.0
_M_PER_DEG_LON_EQUATOR = 111_320.0

#: Peak heights of the drawn hill areas, by name; an unknown hill gets the default.
#: (Above the ~500 m and ~300 m wanted: the noise that roughens the relief lowers it by about a sixth.)
HILL_HEIGHTS_M = {"núi Vũng Chua – Ghềnh Ráng": 600.0, "núi Phương Mai": 360.0}
DEFAULT_HILL_M = 200.0


@dataclass(frozen=True)
class Massif:
    """A rounded hill beyond the drawn map: height at the centre, radius where it has fallen to 1/e."""

    lon: float
    lat: float
    height_m: float
    radius_m: float


#: Hills beyond the drawn map (which stops at 109.13°E and 13.655°N): illustrative, not surveyed.
OUTER_MASSIFS = (
    Massif(109.02, 13.66, 450.0, 6500.0),  # south-west, towards Vân Canh (they overlap: heights add up)
    Massif(109.08, 13.71, 300.0, 4000.0),
    Massif(108.99, 13.76, 420.0, 5500.0),  # west
    Massif(109.05, 13.62, 380.0, 5000.0),
    Massif(109.18, 13.63, 330.0, 3500.0),  # the coast south of Quy Hòa
)


@dataclass(frozen=True)
class DemGrid:
    transform: Affine
    width: int
    height: int
    dx_m: float
    dy_m: float

    @classmethod
    def over(cls, bounds: tuple[float, float, float, float], pixel_deg: float) -> DemGrid:
        west, south, east, north = bounds
        width, height = round((east - west) / pixel_deg), round((north - south) / pixel_deg)
        mid_lat = np.radians((south + north) / 2)
        return cls(
            transform=from_origin(west, north, pixel_deg, pixel_deg),
            width=width,
            height=height,
            dx_m=pixel_deg * _M_PER_DEG_LON_EQUATOR * float(np.cos(mid_lat)),
            dy_m=pixel_deg * _M_PER_DEG_LAT,
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    def burn(self, geoms: list[shapely.Geometry], all_touched: bool = False) -> np.ndarray:
        """True where the geometries cover a pixel's centre (or touch it)."""
        shapes = [(g, 1) for g in geoms if not g.is_empty]
        if not shapes:
            return np.zeros(self.shape, dtype=bool)
        burnt = rasterize(shapes, out_shape=self.shape, transform=self.transform, all_touched=all_touched)
        return np.asarray(burnt, dtype=bool)

    def distance_m(self, outside: np.ndarray) -> np.ndarray:
        """Metres from each pixel where ``outside`` is true to the nearest pixel where it is false."""
        return np.asarray(ndimage.distance_transform_edt(outside, sampling=(self.dy_m, self.dx_m)))

    def window(self, geom: shapely.Geometry, margin_m: float) -> tuple[slice, slice]:
        """Rows and columns of the geometry's bounding box grown by a margin, clipped to the grid."""
        west, south, east, north = geom.bounds
        inverse = ~self.transform
        col0, row0 = inverse * (west, north)
        col1, row1 = inverse * (east, south)
        grow_c, grow_r = margin_m / self.dx_m, margin_m / self.dy_m
        rows = slice(max(0, int(row0 - grow_r)), min(self.height, int(row1 + grow_r) + 1))
        cols = slice(max(0, int(col0 - grow_c)), min(self.width, int(col1 + grow_c) + 1))
        return rows, cols

    def lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        cols = np.arange(self.width) + 0.5
        rows = np.arange(self.height) + 0.5
        lon = self.transform.c + cols * self.transform.a
        lat = self.transform.f + rows * self.transform.e
        return np.meshgrid(lon, lat)


def build_dem(
    geo: Geography, seed: int, *, bounds: tuple[float, float, float, float] = DEM_BOUNDS, pixel_deg: float = ARC_SECOND
) -> tuple[np.ndarray, DemGrid]:
    """Elevations in metres (float32, north-up) and the grid they lie on."""
    grid = DemGrid.over(bounds, pixel_deg)
    lagoon = shapely.difference(geo.lagoon.polygon, geo.land)
    sea = shapely.difference(shapely.difference(geo.sea_outline, geo.land), lagoon)
    is_sea, is_lagoon = grid.burn([sea]), grid.burn([lagoon])
    water = is_sea | is_lagoon
    inland_m = grid.distance_m(~water)  # on land: metres to the shore
    offshore_m = grid.distance_m(water)  # in water: metres to land

    rng = np.random.default_rng([seed, 11])
    relief = _hills(geo, grid) + _outer_massifs(grid, rng)  # sums, not maxima: a maximum leaves a crease
    relief *= _valleys(geo, grid)
    relief *= 0.6 + 0.5 * _noise(rng, grid.shape, sigma_px=60.0 * ARC_SECOND / pixel_deg)
    relief *= 0.85 + 0.25 * _noise(rng, grid.shape, sigma_px=15.0 * ARC_SECOND / pixel_deg)
    relief += (0.5 + 0.04 * relief) * _noise(rng, grid.shape, sigma_px=6.0 * ARC_SECOND / pixel_deg, centred=True)
    plain = 0.6 + 7.0 * (1.0 - np.exp(-inland_m / 3000.0))
    shore_taper = 1.0 - np.exp(-inland_m / 150.0)
    land = plain + np.maximum(relief, 0.0) * shore_taper

    sea_depth = 0.5 + 11.5 * (1.0 - np.exp(-offshore_m / 3000.0))
    lagoon_depth = 0.3 + 2.2 * (1.0 - np.exp(-offshore_m / 500.0))
    dem = np.where(water, -np.where(is_lagoon, lagoon_depth, sea_depth), land)
    dem = ndimage.gaussian_filter(dem, sigma=2.0 * ARC_SECOND / pixel_deg + 0.5)
    # Smoothing must not move the shoreline: land stays above 0 m and water below.
    dem = np.where(water, np.minimum(dem, -0.1), np.maximum(dem, 0.1))
    return dem.astype("float32"), grid


def _hills(geo: Geography, grid: DemGrid) -> np.ndarray:
    """Each drawn hill area rises from its foot (a little outside the outline) to its peak height inside."""
    relief = np.zeros(grid.shape)
    margin_m = 4000.0  # beyond the foot: the window holds every pixel a hill raises
    for hill in geo.hills:
        rows, cols = grid.window(hill.polygon, margin_m)
        inside = grid.burn([hill.polygon])[rows, cols]
        if not inside.any():
            continue
        depth_in = grid.distance_m(inside)
        depth_out = grid.distance_m(~inside)
        # Smoothed, so the creases of the distance field (the outline's skeleton) do not show as ridges.
        signed = ndimage.gaussian_filter(np.where(inside, depth_in, -depth_out), sigma=400.0 / grid.dx_m)
        foot_m = 1500.0  # hills have long feet; the outline is where streets stop, not where slopes start
        core_m = max(float(signed.max()), 1.0)
        profile = np.clip((signed + foot_m) / (core_m + foot_m), 0.0, 1.0)
        peak = HILL_HEIGHTS_M.get(hill.name, DEFAULT_HILL_M)
        relief[rows, cols] += peak * profile**2 * (3 - 2 * profile)
    return relief


def _outer_massifs(grid: DemGrid, rng: np.random.Generator) -> np.ndarray:
    """Elongated rounded ridges, each turned its own (seeded) way, so they do not read as circles."""
    lon, lat = grid.lonlat()
    relief = np.zeros(grid.shape)
    for massif in OUTER_MASSIFS:
        dx = (lon - massif.lon) * grid.dx_m / grid.transform.a
        dy = (lat - massif.lat) * grid.dy_m / -grid.transform.e
        angle, aspect = rng.uniform(0, np.pi), rng.uniform(1.3, 2.0)
        along = (dx * np.cos(angle) + dy * np.sin(angle)) / aspect
        across = (-dx * np.sin(angle) + dy * np.cos(angle)) * aspect**0.5
        relief += massif.height_m * np.exp(-(along**2 + across**2) / massif.radius_m**2)
    return relief


def _valleys(geo: Geography, grid: DemGrid) -> np.ndarray:
    """A factor from 0 on a river to 1 a kilometre or so away; rivers run on past the drawn map to the west."""
    lines = [_extended_upstream(river.line, 0.06) for river in geo.rivers]
    on_river = grid.burn(lines, all_touched=True)
    if not on_river.any():
        return np.ones(grid.shape)
    distance = grid.distance_m(~on_river)
    return 1.0 - 0.85 * np.exp(-((distance / 1200.0) ** 2))


def _extended_upstream(line: shapely.Geometry, degrees: float) -> shapely.Geometry:
    """The river with its first leg prolonged upstream, so its valley does not end at the map's edge."""
    coords = np.asarray(line.coords)
    direction = coords[0] - coords[1]
    norm = float(np.hypot(*direction)) or 1.0
    source = coords[0] + direction / norm * degrees
    return shapely.LineString(np.vstack([source, coords]))


def _noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float, centred: bool = False) -> np.ndarray:
    """Smooth random field, scaled to 0..1 (or -1..1 when centred)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=sigma_px, mode="reflect")
    low, high = float(field.min()), float(field.max())
    unit = (field - low) / (high - low) if high > low else np.zeros(shape)
    return 2 * unit - 1 if centred else unit


def write_dem(
    path: Path,
    geo: Geography,
    seed: int,
    *,
    bounds: tuple[float, float, float, float] = DEM_BOUNDS,
    pixel_deg: float = ARC_SECOND,
) -> Path:
    """Write the DEM as a DEFLATE-compressed COG with averaged overviews; the same seed gives the same file."""
    dem, grid = build_dem(geo, seed, bounds=bounds, pixel_deg=pixel_deg)
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "float32",
        "crs": "EPSG:4326",
        "transform": grid.transform,
        "nodata": NODATA,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    with MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            dataset.write(dem, 1)
            dataset.set_band_description(1, "elevation")
            dataset.units = ("metre",)
            dataset.update_tags(AREA_OR_POINT="Area")
        with memory.open() as source:
            cog_translate(
                source,
                str(partial),
                {**cog_profiles.get("deflate"), "predictor": 3},
                overview_resampling="average",
                in_memory=True,
                quiet=True,
            )
    partial.replace(path)
    with rasterio.open(path) as written:
        logger.info("DEM %s: %d×%d px, %.1f to %.1f m", path.name, written.width, written.height, dem.min(), dem.max())
    return path


def register_sample_dem(catalog: RasterCatalog, out_dir: Path, geo: Geography, seed: int) -> RasterLayer:
    """Write the DEM into the samples folder and register it as raster layer ``dem``, replacing an earlier one."""
    path = write_dem(Path(out_dir) / DEM_FILE, geo, seed)
    definition = RasterDefinition(
        id=DEM_ID,
        title=DEM_TITLE,
        kind=RasterKind.DEM,
        source=str(path),
        description=(
            "Mô hình số độ cao (DEM) minh hoạ, 1 giây cung (~30 m), mét so với mực nước biển; "
            "không phải số liệu đo đạc."
        ),
        minzoom=8,
    )
    return catalog.register(definition, replace=True)

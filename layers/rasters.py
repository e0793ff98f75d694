"""Raster layers: Cloud-Optimized GeoTIFFs registered in the catalog.

A raster stays a file (or a URL): tiles are read from it window by window, so
the catalog row only says where it is, what registration found in it (CRS,
bounds, zoom range, value range) and how to draw it by default. Registration
opens the file with rasterio and refuses what it cannot serve; a GeoTIFF that
is not cloud-optimized is rewritten as a COG under the catalog's folder. The
row is written last, in one transaction, so a failed registration leaves the
catalog as it was (and removes any file it wrote).

Nothing here knows about HTTP; ``tiles.raster`` serves these layers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import rasterio
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from rasterio.errors import RasterioError
from rio_cogeo.cogeo import cog_translate, cog_validate
from rio_cogeo.profiles import cog_profiles
from rio_tiler.colormap import cmap
from rio_tiler.errors import RioTilerError
from rio_tiler.io import Reader
from sqlalchemy.engine import Connection, Engine

from layers.errors import ConflictError, InvalidInputError, NotFoundError
from layers.model import Identifier
from layers.store.backend import WRITE_OPTION
from layers.store.tables import RasterRecord

log = logging.getLogger(__name__)

_records = RasterRecord.__table__  # type: ignore[attr-defined]

#: Schemes rasterio reads over the network (GDAL's /vsicurl/ and /vsis3/).
REMOTE_SCHEMES = ("http://", "https://", "s3://")
#: Zoom levels a client may ask for; deeper than any survey raster Twin will hold.
MAX_ZOOM = 24
#: Longest side of the decimated read that gives a raster's value range at registration.
_STATS_SIZE = 1024

Interval = tuple[float, float]
Bounds = tuple[float, float, float, float]


class RasterKind(StrEnum):
    """What a raster holds; it picks the default drawing and says whether it can be terrain."""

    DEM = "dem"
    ORTHOPHOTO = "orthophoto"
    FLOOD_DEPTH = "flood_depth"
    GENERIC = "generic"


#: Default colormap (a rio-tiler name) per kind, for one-band rasters.
_DEFAULT_COLORMAP = {
    RasterKind.DEM: "terrain",
    RasterKind.FLOOD_DEPTH: "blues",
    RasterKind.GENERIC: "viridis",
}


def colormap_names() -> list[str]:
    return sorted(cmap.list())


class RasterDefinition(BaseModel):
    """What an operator says about a raster when registering it."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    title: Annotated[str, Field(min_length=1, max_length=200, description="Label shown to people (Vietnamese).")]
    kind: RasterKind = RasterKind.GENERIC
    source: Annotated[str, Field(min_length=1, description="Path or http(s)/s3 URL of the GeoTIFF.")]
    description: str | None = None
    nodata: float | None = Field(default=None, description="Value that means 'no data'; default: the file's own.")
    rescale: Interval | None = Field(default=None, description="Values drawn from the first to the last colour.")
    colormap: str | None = Field(default=None, description="rio-tiler colormap name for one-band rasters.")
    minzoom: Annotated[int, Field(ge=0, le=MAX_ZOOM)] | None = None
    maxzoom: Annotated[int, Field(ge=0, le=MAX_ZOOM)] | None = None

    @model_validator(mode="after")
    def _check(self) -> RasterDefinition:
        if self.colormap is not None and self.colormap not in cmap.list():
            raise ValueError(f"unknown colormap '{self.colormap}' (rio-tiler names, e.g. terrain, viridis, blues)")
        if self.rescale is not None and not self.rescale[0] < self.rescale[1]:
            raise ValueError("rescale must be two increasing numbers (low, high)")
        if self.minzoom is not None and self.maxzoom is not None and self.minzoom > self.maxzoom:
            raise ValueError("minzoom must not exceed maxzoom")
        if self.nodata is not None and not math.isfinite(self.nodata):
            raise ValueError("nodata must be a finite number")
        return self


class RasterLayer(RasterDefinition):
    """A registered raster: the definition with what registration read from the file.

    ``source`` is the COG actually served (the converted copy when the given
    file was not cloud-optimized); ``original`` is what the operator gave.
    """

    original: str
    converted: bool = False
    crs: str
    bounds: Bounds = Field(description="West, south, east, north in WGS84 degrees.")
    minzoom: Annotated[int, Field(ge=0, le=MAX_ZOOM)]
    maxzoom: Annotated[int, Field(ge=0, le=MAX_ZOOM)]
    width: int
    height: int
    band_count: int
    dtype: str
    value_range: Interval | None = None
    registered_at: datetime

    @property
    def draw_rescale(self) -> Interval | None:
        """The layer's rescale hint, else its value range (byte imagery is drawn as it is)."""
        if self.rescale is not None:
            return self.rescale
        if self.dtype == "uint8" or self.value_range is None:
            return None
        low, high = self.value_range
        if self.kind is RasterKind.FLOOD_DEPTH:
            low = 0.0
        return (low, high) if low < high else (low, low + 1.0)

    @property
    def draw_colormap(self) -> str | None:
        if self.colormap is not None:
            return self.colormap
        return _DEFAULT_COLORMAP.get(self.kind) if self.band_count == 1 else None

    @property
    def fingerprint(self) -> str:
        """Changes whenever the layer or its file does; tile ETags are built on it."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True) + _file_stamp(self.source)
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()

    def reader(self) -> Reader:
        """A rio-tiler reader of the COG (open it in a ``with``); tiles are in WebMercatorQuad."""
        return Reader(self.source)

    @property
    def read_options(self) -> dict[str, Any]:
        """Options for rio-tiler's ``tile()``: the nodata hint when the operator overrode the file's."""
        return {"nodata": self.nodata} if self.nodata is not None else {}


def _file_stamp(source: str) -> str:
    if source.startswith(REMOTE_SCHEMES):
        return ""
    try:
        stat = Path(source).stat()
    except OSError:
        return "missing"
    return f"{stat.st_mtime_ns}:{stat.st_size}"


class RasterCatalog:
    """Raster layers by id, read from and written to the catalog table in each call's own transaction.

    The table is tiny and every call reads it afresh, so all worker processes
    agree on it without a cache to invalidate.
    """

    def __init__(self, engine: Engine, cog_dir: Path) -> None:
        self._engine = engine
        self._cog_dir = Path(cog_dir)

    @property
    def cog_dir(self) -> Path:
        """Where rasters converted at registration are written."""
        return self._cog_dir

    # --- reads ---------------------------------------------------------------

    def list_rasters(self) -> list[RasterLayer]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(_records.c.definition).order_by(_records.c.id)).scalars()
            return [RasterLayer.model_validate(row) for row in rows]

    def get(self, raster_id: str) -> RasterLayer:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(_records.c.definition).where(_records.c.id == raster_id)).scalar()
        if row is None:
            raise NotFoundError(f"raster layer '{raster_id}' does not exist", raster=raster_id)
        return RasterLayer.model_validate(row)

    # --- changes -------------------------------------------------------------

    def register(self, definition: RasterDefinition, *, replace: bool = False) -> RasterLayer:
        """Check the file, make it a COG if needed, then add the layer (or replace one with the same id)."""
        old = self._find(definition.id)
        if old is not None and not replace:
            raise ConflictError(f"raster layer '{definition.id}' already exists", raster=definition.id)
        source = _resolve_source(definition.source)
        _check_readable(source)
        converted = None if _is_cog(source) else self._convert(definition, source)
        try:
            layer = describe(definition, converted or source, original=source, converted=converted is not None)
            self._write(layer, replace=replace)
        except BaseException:
            if converted is not None:
                Path(converted).unlink(missing_ok=True)
            raise
        if old is not None and old.converted and old.source != layer.source:
            Path(old.source).unlink(missing_ok=True)
        log.info("raster layer %s registered from %s%s", layer.id, source, " (converted)" if converted else "")
        return layer

    def remove(self, raster_id: str) -> RasterLayer:
        """Remove the layer; a COG that registration converted goes with it, the operator's own file stays."""
        with self._write_connection() as conn:
            row = conn.execute(sa.select(_records.c.definition).where(_records.c.id == raster_id)).scalar()
            if row is None:
                raise NotFoundError(f"raster layer '{raster_id}' does not exist", raster=raster_id)
            conn.execute(sa.delete(_records).where(_records.c.id == raster_id))
        layer = RasterLayer.model_validate(row)
        if layer.converted:
            Path(layer.source).unlink(missing_ok=True)
        return layer

    def _find(self, raster_id: str) -> RasterLayer | None:
        try:
            return self.get(raster_id)
        except NotFoundError:
            return None

    def _write(self, layer: RasterLayer, *, replace: bool) -> None:
        document = layer.model_dump(mode="json")
        now = layer.registered_at
        with self._write_connection() as conn:
            exists = conn.execute(sa.select(_records.c.id).where(_records.c.id == layer.id)).scalar() is not None
            if exists and not replace:
                raise ConflictError(f"raster layer '{layer.id}' already exists", raster=layer.id)
            if exists:
                conn.execute(
                    sa.update(_records).where(_records.c.id == layer.id).values(definition=document, updated_at=now)
                )
            else:
                conn.execute(
                    sa.insert(_records).values(id=layer.id, definition=document, created_at=now, updated_at=now)
                )

    @contextmanager
    def _write_connection(self) -> Iterator[Connection]:
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn, conn.begin():
            yield conn

    def _convert(self, definition: RasterDefinition, source: str) -> str:
        """Rewrite the raster as a COG next to the catalog; written under a temporary name, then renamed."""
        self._cog_dir.mkdir(parents=True, exist_ok=True)
        target = self._cog_dir / f"{definition.id}-{uuid.uuid4().hex[:8]}.tif"
        partial = target.with_suffix(".part")
        write_cog_from(
            source, partial, continuous=definition.kind is not RasterKind.ORTHOPHOTO, nodata=definition.nodata
        )
        partial.replace(target)
        return str(target)


def write_cog_from(source: str | Path, target: Path, *, continuous: bool, nodata: float | None = None) -> None:
    """Write ``source`` as a DEFLATE-compressed COG with internal overviews (rio-cogeo)."""
    try:
        with rasterio.open(source) as src:
            floating = np.dtype(src.dtypes[0]).kind == "f"
        profile = {**cog_profiles.get("deflate"), "predictor": 3 if floating else 2}
        cog_translate(
            str(source),
            str(target),
            profile,
            nodata=nodata,
            overview_resampling="average" if continuous else "nearest",
            in_memory=False,
            quiet=True,
        )
    except (RasterioError, RioTilerError, ValueError, OSError) as exc:
        Path(target).unlink(missing_ok=True)
        raise InvalidInputError(f"cannot convert '{_name(source)}' to a Cloud-Optimized GeoTIFF: {exc}") from exc


def describe(definition: RasterDefinition, source: str, *, original: str, converted: bool) -> RasterLayer:
    """Read what serving needs from the COG: CRS, WGS84 bounds, native zooms, value range."""
    try:
        with Reader(source) as cog:
            dataset = cog.dataset
            if dataset.crs is None:
                raise InvalidInputError(f"'{_name(original)}' has no coordinate reference system")
            bounds = tuple(float(v) for v in cog.get_geographic_bounds(cog.tms.rasterio_geographic_crs))
            value_range = _value_range(dataset, definition.nodata)
            facts: dict[str, Any] = {
                "crs": dataset.crs.to_string(),
                "width": dataset.width,
                "height": dataset.height,
                "band_count": dataset.count,
                "dtype": dataset.dtypes[0],
                "minzoom": max(0, min(MAX_ZOOM, cog.minzoom)),
                "maxzoom": max(0, min(MAX_ZOOM, cog.maxzoom)),
            }
    except (RasterioError, RioTilerError) as exc:
        raise InvalidInputError(f"cannot read '{_name(original)}' as a raster: {exc}") from exc
    hints = definition.model_dump(exclude_none=True)
    try:
        return RasterLayer.model_validate(
            {
                **facts,
                **hints,
                "source": source,
                "original": original,
                "converted": converted,
                "bounds": bounds,
                "value_range": value_range,
                "registered_at": datetime.now(UTC),
            }
        )
    except ValidationError as exc:
        raise InvalidInputError(f"raster layer '{definition.id}': {exc.errors()[0]['msg']}") from exc


def _value_range(dataset: Any, nodata: float | None) -> Interval | None:
    """Min and max of band 1 from a decimated read (the smallest overview GDAL has at that size)."""
    scale = max(1.0, max(dataset.width, dataset.height) / _STATS_SIZE)
    shape = (max(1, round(dataset.height / scale)), max(1, round(dataset.width / scale)))
    band = dataset.read(1, out_shape=shape, masked=True)
    values = band.compressed().astype("float64")
    if nodata is not None:
        values = values[values != nodata]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return (float(values.min()), float(values.max()))


def _resolve_source(source: str) -> str:
    if source.startswith(REMOTE_SCHEMES):
        return source
    path = Path(source).expanduser()
    if not path.is_file():
        raise InvalidInputError(f"raster file '{path.name}' does not exist or is not a file")
    return str(path.resolve())


def _check_readable(source: str) -> None:
    try:
        with rasterio.open(source) as dataset:
            if dataset.crs is None:
                raise InvalidInputError(f"'{_name(source)}' has no coordinate reference system: cannot place it")
            if dataset.count < 1:
                raise InvalidInputError(f"'{_name(source)}' has no raster band")
    except RasterioError as exc:
        raise InvalidInputError(f"'{_name(source)}' is not a raster file rasterio can read") from exc


def _is_cog(source: str) -> bool:
    """A tiled GeoTIFF with internal overviews (rio-cogeo's check, its warnings counted as failures)."""
    try:
        valid, _errors, _warnings = cog_validate(source, strict=True, quiet=True)
    except (RasterioError, KeyError, ValueError, TypeError):
        return False
    return bool(valid)


def _name(source: str | Path) -> str:
    """A file's name without its folders: messages go to people and must not leak server paths."""
    text = str(source)
    return text if text.startswith(REMOTE_SCHEMES) else Path(text).name

"""Import a GIS file into a layer, as one transaction.

The file is read in Arrow batches, reprojected to EPSG:4326 with pyproj,
checked against the layer (geometry type and validity, field types, required
values, allowed choices) and streamed into the store inside a single
transaction. The first bad feature stops the import with a message naming it,
and the store is left exactly as it was.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue

import numpy as np
import pyarrow as pa
import shapely
from pydantic import ValidationError
from pyproj import CRS, Transformer

from layers.errors import InvalidInputError, NotFoundError
from layers.io.sources import ReadOptions, SourceInfo, inspect_source, read_batches
from layers.model import FieldDefinition, GeometryType, LayerDefinition, LayerKind, field_name_from
from layers.store import LoadMode, Reader
from layers.validation import RowBatch, check_geometries, validate_columns

_WGS84 = CRS.from_epsg(4326)
#: How far (degrees) a feature may lie outside its CRS's area of use before we call the CRS wrong:
#: zones are often used beyond their edges (Binh Dinh data in UTM 48N, EPSG:3405), metres read as degrees never are.
_AREA_SLACK = 3.0


#: Features an import left out that its report lists by number (the count is always whole).
_LISTED_SKIPS = 100


@dataclass(frozen=True)
class SkippedFeature:
    """A feature an import with ``skip_invalid`` left out: its number in the file, and why."""

    feature: int
    reason: str


@dataclass(frozen=True)
class ImportReport:
    layer_id: str
    created: bool
    inserted: int
    archived: int
    source_crs: str
    seconds: float
    #: Features left out for a geometry that could not be stored (``skip_invalid``), and the first of them.
    skipped: int = 0
    skipped_features: tuple[SkippedFeature, ...] = ()


def crs_name(crs: CRS) -> str:
    authority = crs.to_authority()
    return f"{authority[0]}:{authority[1]}" if authority else crs.to_string()


def column_names(info: SourceInfo) -> dict[str, str]:
    """Source column → field name: the column's own spelling when it is a plain identifier (``NAME``),
    else a readable one ("Tên đường" → "ten_duong"); unique whatever the case."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for source in info.fields:
        name = base = field_name_from(source)
        n = 2
        while name.lower() in taken:
            name, n = f"{base}_{n}", n + 1
        names[source] = name
        taken.add(name.lower())
    return names


def definition_from_source(
    info: SourceInfo,
    layer_id: str,
    *,
    title: str | None = None,
    kind: LayerKind = LayerKind.GENERIC,
    repair: bool = False,
) -> LayerDefinition:
    """A layer definition that fits the file, for importing into a new layer.

    When invalid geometries are to be repaired, polygons and lines get a
    multi-part layer: a repaired bow-tie is two polygons.
    """
    geometry_type = info.geometry_type
    if repair and geometry_type in (GeometryType.POLYGON, GeometryType.LINESTRING):
        geometry_type = GeometryType("Multi" + geometry_type.value)
    fields = [
        FieldDefinition(name=name, type=info.fields[source], title=source if source != name else None)
        for source, name in column_names(info).items()
    ]
    try:
        return LayerDefinition(
            id=layer_id,
            title=title or info.layer_name,
            kind=kind,
            geometry_type=geometry_type,
            fields=fields,
            source_crs=crs_name(info.crs),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        raise InvalidInputError(
            f"{info.path.name}: cannot make a layer of it: {f'{where}: ' if where else ''}"
            f"{error['msg'].removeprefix('Value error, ')}",
            layer=layer_id,
        ) from None


def import_file(
    store: Reader,
    path: Path,
    layer_id: str,
    *,
    options: ReadOptions = ReadOptions(),
    mode: LoadMode = LoadMode.APPEND,
    create: bool = True,
    title: str | None = None,
    kind: LayerKind = LayerKind.GENERIC,
    repair: bool = False,
    skip_invalid: bool = False,
    definition: LayerDefinition | None = None,
    progress: Callable[[int], None] | None = None,
    on_inspected: Callable[[SourceInfo], None] | None = None,
) -> ImportReport:
    """Import ``path`` into layer ``layer_id``.

    A new layer is defined by ``definition`` or, without one, from the file's
    own columns. With a ``definition`` and an existing layer that differs,
    ``replace`` mode redefines the layer (see ``LayerStore.load``).

    A feature whose geometry cannot be stored (missing, of another type, invalid and not repaired,
    unreadable) stops the import, unless ``skip_invalid``: then it is left out, and counted and
    listed in the report.
    """
    started = time.perf_counter()
    info = inspect_source(path, options)
    if on_inspected is not None:
        on_inspected(info)
    new_definition = definition
    inferred = False
    if definition is None:
        try:
            definition = store.get_layer(layer_id)
        except NotFoundError:
            if not create:
                raise
            definition = new_definition = definition_from_source(info, layer_id, title=title, kind=kind, repair=repair)
            inferred = True
    mapping = _map_columns(info, definition)
    skipped: list[SkippedFeature] = []
    batches = _row_batches(
        info, options, definition, mapping, repair=repair, typed=inferred, skipped=skipped if skip_invalid else None
    )
    result = store.load(layer_id, _prefetched(batches), mode=mode, definition=new_definition, progress=progress)
    return ImportReport(
        layer_id=layer_id,
        created=result.created,
        inserted=result.inserted,
        archived=result.archived,
        source_crs=crs_name(info.crs),
        seconds=time.perf_counter() - started,
        skipped=len(skipped),
        skipped_features=tuple(skipped[:_LISTED_SKIPS]),
    )


def _map_columns(info: SourceInfo, definition: LayerDefinition) -> dict[str, str]:
    """Source column → the layer's field, as the layer spells it (a file's ``NAME`` fills a field ``name``)."""
    mapping = column_names(info)
    unknown = [source for source, name in mapping.items() if definition.field(name) is None]
    if unknown:
        known = ", ".join(f.name for f in definition.fields) or "none"
        raise InvalidInputError(
            f"{info.path.name}: column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
            f"{'are' if len(unknown) > 1 else 'is'} not a field of layer '{definition.id}' (its fields: {known}); "
            "add the field to the layer first",
            layer=definition.id,
        )
    return {source: definition.field(name).name for source, name in mapping.items()}  # type: ignore[union-attr]


def _row_batches(
    info: SourceInfo,
    options: ReadOptions,
    definition: LayerDefinition,
    mapping: dict[str, str],
    *,
    repair: bool,
    typed: bool,
    skipped: list[SkippedFeature] | None,
) -> Iterator[RowBatch]:
    """Validated batches in file order; features that cannot be stored raise, or go to ``skipped``."""
    reproject = _reprojector(info)
    first_row = 1
    for batch in read_batches(info.path, options, typed=typed):
        try:
            wkb = batch.column("wkb_geometry").to_numpy(zero_copy_only=False)
            geoms, unreadable = _geometries_from_wkb(wkb, first_row, repair=repair)
            geoms = reproject(geoms, first_row)
            geoms, problems = check_geometries(definition, geoms, first_row=first_row, repair=repair)
            problems = dict(sorted({**problems, **unreadable}.items()))
            if problems and skipped is None:
                row, reason = next(iter(problems.items()))
                fixable = not repair and reason.startswith("invalid geometry")
                hint = f"; fix it in the source{', import with repair,' if fixable else ''} or import with "
                hint += "skip-invalid to leave such features out"
                raise InvalidInputError(f"feature {row}: {reason}{hint}", row=row)
            columns: dict[str, pa.Array] = {
                mapping[name]: batch.column(name) for name in batch.schema.names if name in mapping
            }
            values = validate_columns(definition, columns, first_row=first_row)
            if problems:
                assert skipped is not None
                skipped.extend(SkippedFeature(row, reason) for row, reason in problems.items())
                keep = np.ones(len(geoms), dtype=bool)
                keep[np.fromiter(problems, dtype=np.int64) - first_row] = False
                geoms = geoms[keep]
                values = {
                    name: [v for v, kept in zip(column, keep, strict=True) if kept] for name, column in values.items()
                }
        except InvalidInputError as exc:
            raise InvalidInputError(f"{info.path.name}: {exc.detail}", **exc.context) from exc
        if len(geoms):
            # Stored along a Hilbert curve: feature ids follow the map, and a spatial query reads few pages.
            yield RowBatch(geoms, values, first_row).in_spatial_order()
        first_row += batch.num_rows


#: ISO WKB type codes of curved geometries (+1000, +2000, +3000 with Z, M, ZM), which GEOS does not read.
_CURVED = {8: "CircularString", 9: "CompoundCurve", 10: "CurvePolygon", 11: "MultiCurve", 12: "MultiSurface"}


def _geometries_from_wkb(wkb: np.ndarray, first_row: int, *, repair: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Geometries from WKB, and the features whose WKB makes none, with the reason in words.

    GEOS refuses a ring of fewer than 4 points (a real OSM extract converted by GDAL has one with 2);
    with ``repair``, shapely closes what it can. Curved geometries are named, with the way to convert them.
    """
    try:
        return shapely.from_wkb(wkb), {}
    except (shapely.errors.GEOSException, NotImplementedError):
        pass  # look at each feature of this batch
    geoms = np.empty(len(wkb), dtype=object)
    problems: dict[int, str] = {}
    for i, data in enumerate(wkb):
        try:
            geoms[i] = shapely.from_wkb(data)
            continue
        except NotImplementedError:
            code = _wkb_type(data) % 1000
            problems[first_row + i] = (
                f"geometry is a {_CURVED.get(code, f'WKB type {code}')}, a curved type Twin does not store "
                "(ogr2ogr -nlt CONVERT_TO_LINEAR straightens it)"
            )
        except shapely.errors.GEOSException as exc:
            fixed = shapely.from_wkb(data, on_invalid="fix") if repair else None
            if fixed is not None:
                geoms[i] = fixed
                continue
            problems[first_row + i] = f"invalid geometry: {_wkb_reason(str(exc))}"
        geoms[i] = None
    return geoms, problems


def _wkb_type(data: bytes) -> int:
    return int.from_bytes(data[1:5], "little" if data[:1] == b"\x01" else "big") & 0x0FFFFFFF


def _wkb_reason(message: str) -> str:
    """GEOS's message in words: "Invalid number of points in LinearRing found 2 - must be 0 or >= 4"."""
    found = re.search(r"LinearRing found (\d+)", message)
    if found:
        return f"a ring with {found.group(1)} points"
    return message.removeprefix("IllegalArgumentException: ").removeprefix("ParseException: ")


def _prefetched(batches: Iterator[RowBatch], depth: int = 2) -> Iterator[RowBatch]:
    """Read and validate the next batches in a thread while the database stores this one.

    GDAL, shapely and Arrow release the GIL, so the two overlap on two cores.
    An error in the reader is raised here, in the loading thread, where it rolls
    the transaction back.
    """
    done = object()
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                queue.put(batch)
            queue.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)

    reader = threading.Thread(target=produce, name="import-reader", daemon=True)
    reader.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while reader.is_alive():  # unblock a producer waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            reader.join(timeout=0.05)


def _reprojector(info: SourceInfo) -> Callable[[np.ndarray, int], np.ndarray]:
    """Reproject to lon/lat, and refuse features far outside where the source CRS is used."""
    if info.crs.equals(_WGS84, ignore_axis_order=True):
        return lambda geoms, _first_row: geoms
    transformer = Transformer.from_crs(info.crs, _WGS84, always_xy=True)
    area = info.crs.area_of_use

    def transform(coords: np.ndarray) -> np.ndarray:
        lon, lat = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([lon, lat])

    def reproject(geoms: np.ndarray, first_row: int) -> np.ndarray:
        present = ~shapely.is_missing(geoms)
        out = geoms.copy()
        out[present] = shapely.transform(geoms[present], transform)
        if area is not None:
            bounds = shapely.bounds(out)
            outside = present & ~(
                (bounds[:, 0] >= area.west - _AREA_SLACK)
                & (bounds[:, 2] <= area.east + _AREA_SLACK)
                & (bounds[:, 1] >= area.south - _AREA_SLACK)
                & (bounds[:, 3] <= area.north + _AREA_SLACK)
            )
            if outside.any():
                i = int(np.argmax(outside))
                raise InvalidInputError(
                    f"{info.path.name}: feature {first_row + i} lands at ({bounds[i, 0]:.5g}, {bounds[i, 1]:.5g}) "
                    f"in lon/lat, outside where {crs_name(info.crs)} is used ({area.name}); "
                    "is the source CRS right?",
                    row=first_row + i,
                )
        return out

    return reproject

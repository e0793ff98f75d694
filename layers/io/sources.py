"""Reading GIS files with pyogrio: what a file holds, and its features in Arrow batches.

Supported: GeoJSON, GeoPackage, zipped (or plain) Shapefile, CSV with lon/lat
(or x/y, or WKT) columns — a UTF-8 byte-order mark is fine — and KML. GDAL does
the reading; this module only chooses the options and turns GDAL's messages
into ones that name the file.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError

from layers.errors import InvalidInputError
from layers.model import FieldType, GeometryType

#: Column names GDAL's CSV driver tries, in order, for the coordinates of a point.
LON_NAMES = "lon,longitude,lng,long,x,kinh_do,kinhdo"
LAT_NAMES = "lat,latitude,y,vi_do,vido"
WKT_NAMES = "wkt,geometry,geom,the_geom"

_SUFFIX_DRIVERS = {
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".zip": "ESRI Shapefile",
    ".csv": "CSV",
    ".kml": "LIBKML",
    ".kmz": "LIBKML",
    ".fgb": "FlatGeobuf",
}

#: KML's per-placemark display settings, which GDAL reports as columns; they are not data.
_KML_STANDARD_FIELDS = {
    "timestamp",
    "begin",
    "end",
    "altitudeMode",
    "tessellate",
    "extrude",
    "visibility",
    "drawOrder",
    "icon",
    "snippet",
}


@dataclass(frozen=True)
class ReadOptions:
    """How to read a source file; every option has a safe default."""

    crs: str | None = None
    encoding: str | None = None
    source_layer: str | None = None
    lon_field: str | None = None
    lat_field: str | None = None
    batch_size: int = 50_000


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    driver: str
    layer_name: str
    crs: CRS
    count: int
    fields: dict[str, FieldType]
    geometry_type: GeometryType


def _gdal_options(path: Path, options: ReadOptions, *, typed: bool) -> dict[str, Any]:
    if path.suffix.lower() != ".csv":
        return {}
    return {
        "X_POSSIBLE_NAMES": options.lon_field or LON_NAMES,
        "Y_POSSIBLE_NAMES": options.lat_field or LAT_NAMES,
        "GEOM_POSSIBLE_NAMES": WKT_NAMES,
        "KEEP_GEOM_COLUMNS": "NO",
        # Untyped reads keep "0123" as text; the layer's declared types decide.
        "AUTODETECT_TYPE": "YES" if typed else "NO",
    }


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InvalidInputError(f"{path}: no such file")
    if path.suffix.lower() not in _SUFFIX_DRIVERS:
        known = ", ".join(sorted(_SUFFIX_DRIVERS))
        raise InvalidInputError(f"{path.name}: unknown file type '{path.suffix}'; Twin reads {known}")


def inspect_source(path: Path, options: ReadOptions = ReadOptions()) -> SourceInfo:
    """What the file holds, read from its header (and a count of its features)."""
    _check_readable(path)
    if options.encoding is not None:
        try:
            codecs.lookup(options.encoding)
        except LookupError:
            raise InvalidInputError(
                f"encoding: {options.encoding[:40]!r} is not a text encoding Python knows (e.g. cp1258, latin-1)"
            ) from None
    try:
        info = pyogrio.read_info(
            path,
            layer=options.source_layer,
            encoding=options.encoding,
            force_feature_count=True,
            **_gdal_options(path, options, typed=True),
        )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInputError(f"{path.name}: cannot read the file ({_gdal_reason(exc, path)})") from exc
    if not info.get("geometry_type"):
        raise InvalidInputError(
            f"{path.name}: no geometry found; a CSV needs lon/lat (or x/y, or WKT) columns "
            f"— name them with lon_field/lat_field"
        )
    if _needs_decoding(options):
        schema = pa.schema([pa.field(str(n), _arrow_type(str(t))) for n, t in zip(info["fields"], info["dtypes"])])
    else:
        with _read_arrow(path, options, typed=True, max_features=0) as (_, reader):
            schema = reader.schema
    geometry_column = _geometry_column(schema)
    ignored = _KML_STANDARD_FIELDS if info["driver"] == "LIBKML" else set()
    fields = {f.name: _field_type(f.type) for f in schema if f.name != geometry_column and f.name not in ignored}
    return SourceInfo(
        path=path,
        driver=info["driver"],
        layer_name=info["layer_name"],
        crs=source_crs(path, info.get("crs"), options.crs),
        count=max(int(info.get("features") or 0), 0),
        fields=fields,
        geometry_type=_geometry_type(info["geometry_type"], info["driver"]),
    )


def source_crs(path: Path, declared: str | None, override: str | None) -> CRS:
    """The CRS to reproject from: the one asked for, else the file's, else WGS84 for formats that imply it."""
    text = override or declared
    if text is None:
        if path.suffix.lower() in (".csv", ".geojson", ".json", ".kml", ".kmz"):
            text = "EPSG:4326"
        else:
            raise InvalidInputError(f"{path.name}: the file declares no CRS; say which it is (e.g. EPSG:9217)")
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise InvalidInputError(f"{path.name}: unknown CRS {text!r}") from exc


@contextmanager
def _read_arrow(
    path: Path, options: ReadOptions, *, typed: bool, max_features: int | None = None
) -> Iterator[tuple[dict[str, Any], pa.RecordBatchReader]]:
    try:
        with pyogrio.raw.open_arrow(
            path,
            layer=options.source_layer,
            encoding=options.encoding,
            batch_size=options.batch_size,
            max_features=max_features,
            use_pyarrow=True,
            **_gdal_options(path, options, typed=typed),
        ) as (meta, reader):
            yield meta, reader
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
        raise InvalidInputError(f"{path.name}: cannot read the file ({_gdal_reason(exc, path)})") from exc


def _needs_decoding(options: ReadOptions) -> bool:
    """pyogrio's Arrow reader takes only UTF-8; other encodings go through its decoding reader."""
    return options.encoding is not None and options.encoding.replace("-", "").lower() not in ("utf8", "utf_8")


def _arrow_type(numpy_dtype: str) -> pa.DataType:
    if numpy_dtype == "object":
        return pa.string()
    if numpy_dtype.startswith("datetime64"):
        return pa.timestamp("ms")
    return pa.from_numpy_dtype(numpy_dtype)


def _read_decoded(path: Path, options: ReadOptions, *, typed: bool) -> Iterator[pa.RecordBatch]:
    """Batches from a file in a legacy encoding (cp1258, latin-1…), decoded by pyogrio."""
    skip = 0
    while True:
        try:
            meta, _, wkb, values = pyogrio.raw.read(
                path,
                layer=options.source_layer,
                encoding=options.encoding,
                skip_features=skip,
                max_features=options.batch_size,
                **_gdal_options(path, options, typed=typed),
            )
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, UnicodeDecodeError) as exc:
            raise InvalidInputError(_read_error(path, exc)) from exc
        if len(wkb) == 0:
            return
        arrays = [pa.array(v, from_pandas=True) for v in values]
        yield pa.RecordBatch.from_arrays(
            [*arrays, pa.array(wkb, type=pa.binary())], names=[*map(str, meta["fields"]), "wkb_geometry"]
        )
        skip += len(wkb)


def read_batches(path: Path, options: ReadOptions, *, typed: bool) -> Iterator[pa.RecordBatch]:
    """The file's features as Arrow batches; the geometry column is named ``wkb_geometry``."""
    if _needs_decoding(options):
        yield from _read_decoded(path, options, typed=typed)
        return
    with _read_arrow(path, options, typed=typed) as (_, reader):
        geometry_column = _geometry_column(reader.schema)
        first_row = 1
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (pa.ArrowInvalid, UnicodeDecodeError, OSError) as exc:
                raise InvalidInputError(_read_error(path, exc)) from exc
            _check_text(path, batch, first_row, options.encoding)
            first_row += batch.num_rows
            if geometry_column != "wkb_geometry":
                names = ["wkb_geometry" if n == geometry_column else n for n in batch.schema.names]
                batch = batch.rename_columns(names)
            yield batch


def _check_text(path: Path, batch: pa.RecordBatch, first_row: int, encoding: str | None) -> None:
    """GDAL passes bytes through when a file is not UTF-8; find the first bad value and say so."""
    try:
        batch.validate(full=True)
        return
    except pa.ArrowInvalid:
        pass
    for field in batch.schema:
        if not (pa.types.is_string(field.type) or pa.types.is_large_string(field.type)):
            continue
        for i, raw in enumerate(batch.column(field.name).cast(pa.binary()).to_pylist()):
            try:
                None if raw is None else raw.decode("utf-8")
            except UnicodeDecodeError:
                hint = "check --encoding" if encoding else "give the file's encoding, e.g. cp1258 or latin-1"
                raise InvalidInputError(
                    f"{path.name}: feature {first_row + i}: field '{field.name}' is not valid UTF-8 text "
                    f"({raw!r}); {hint}",
                    row=first_row + i,
                ) from None
    raise InvalidInputError(f"{path.name}: the file's data is malformed")


def _read_error(path: Path, exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or "utf" in text.lower():
        return f"{path.name}: text is not valid UTF-8 ({text.splitlines()[0]}); give the file's encoding, e.g. cp1258"
    return f"{path.name}: cannot read the file ({_gdal_reason(exc, path)})"


def _geometry_column(schema: pa.Schema) -> str:
    for field in schema:
        if (field.metadata or {}).get(b"ARROW:extension:name") == b"geoarrow.wkb":
            return str(field.name)
    return "wkb_geometry"


def _field_type(kind: pa.DataType) -> FieldType:
    if pa.types.is_boolean(kind):
        return FieldType.BOOLEAN
    if pa.types.is_integer(kind):
        return FieldType.INTEGER
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return FieldType.NUMBER
    if pa.types.is_date(kind):
        return FieldType.DATE
    if pa.types.is_timestamp(kind):
        return FieldType.DATETIME
    return FieldType.STRING


def _geometry_type(gdal_type: str, driver: str) -> GeometryType:
    base = gdal_type.replace(" Z", "").replace(" M", "").replace("25D", "").strip()
    try:
        found = GeometryType(base)
    except ValueError:
        return GeometryType.GEOMETRY
    # A Shapefile says "Polygon" but may hold multipolygons; a layer of the multi type takes both.
    if driver == "ESRI Shapefile" and found in (GeometryType.POLYGON, GeometryType.LINESTRING):
        return GeometryType("Multi" + found.value)
    return found


def _gdal_reason(exc: Exception, path: Path) -> str:
    """GDAL's message about ``path`` with the file's name for its path: where the server keeps an
    upload is none of the client's business. GDAL's advice on driver prefixes goes too."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    text = text.split("; It might help to specify the correct driver", 1)[0]
    for spelling in (str(path), str(path.resolve())):
        text = text.replace(spelling, path.name)
    return text.split(": ", 1)[-1] if text.startswith("/") else text

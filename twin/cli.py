"""The ``twin`` command: serve, load the sample city, import and export files, manage layers.

Every command reads its configuration from the environment (``TWIN_*``, see
``twin serve --help``) and talks to the same store the server uses, so a layer
imported here shows up in a running server on its next request.
"""

from __future__ import annotations

import functools
import getpass
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from layers.access import LayerAccess, Role, Scope
from layers.errors import TwinError
from layers.features import BBox, FeatureQuery
from layers.io.exporter import export_layer
from layers.io.importer import ImportReport, import_file
from layers.io.sources import ReadOptions, SourceInfo
from layers.model import LayerDefinition, LayerKind, LayerPatch
from layers.rasters import RasterCatalog, RasterDefinition, RasterKind
from layers.signal import SharedCounter
from layers.store import LayerStore, LoadMode, Reader, ScopedReader
from twin.auth import scope_of_key_named
from twin.logconfig import configure_logging
from twin.settings import TwinSettings

app = typer.Typer(
    help="Twin — an open geospatial digital-twin server for provincial operations centres.\n\n"
    "Configuration comes from the environment: TWIN_DATA_DIR (default ./var) holds the embedded "
    "SQLite+SpatiaLite database; TWIN_DATABASE_URL=postgresql://… uses PostGIS instead.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
layers_app = typer.Typer(
    help="List, describe, create, alter and drop layers, and say who may use them.", no_args_is_help=True
)
app.add_typer(layers_app, name="layers")
tiles_app = typer.Typer(help="Vector tiles: export layers to an offline PMTiles archive.", no_args_is_help=True)
app.add_typer(tiles_app, name="tiles")
rasters_app = typer.Typer(
    help="Register, list and remove raster layers (GeoTIFF: DEM, orthophoto…).", no_args_is_help=True
)
app.add_typer(rasters_app, name="rasters")
keys_app = typer.Typer(
    help="API keys: make (shown once, stored hashed), list and revoke them; each has roles and areas.",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _friendly(command: F) -> F:
    """Show domain errors as one clear line and exit 1, not as a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TwinError as exc:
            console.print(f"[red]error:[/red] {escape(exc.detail)}", highlight=False)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None

    return run  # type: ignore[return-value]


def _cli_scope() -> Scope:
    """Who acts from the command line: the system's own rights, named for the audit trail."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return Scope(f"cli:{user}", frozenset({Role.ADMIN.value}))


def _as(store: LayerStore, key_name: str | None) -> Reader:
    """The store as the holder of key ``key_name`` sees it (``--as``), or all of it."""
    if key_name is None:
        return ScopedReader(store, _cli_scope())
    return ScopedReader(store, scope_of_key_named(store, key_name))


@contextmanager
def _open_store() -> Iterator[LayerStore]:
    settings = TwinSettings()
    configure_logging("WARNING", settings.log_format)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = LayerStore.open(settings.store_url, SharedCounter(settings.write_counter_path))
    try:
        yield store
    finally:
        store.close()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on [default: TWIN_HOST or 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on [default: TWIN_PORT or 8000].")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes; they share the store.")] = 1,
) -> None:
    """Run the HTTP server (OpenAPI docs at /docs, health at /healthz and /readyz)."""
    import uvicorn

    settings = TwinSettings()
    configure_logging(settings.log_level, settings.log_format)
    uvicorn.run(
        "twin.main:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
    )


@app.command()
@_friendly
def samples(
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same city.")] = 2025,
    scale: Annotated[float, typer.Option(min=0.001, max=10, help="Multiplier of feature counts.")] = 1.0,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            metavar="TIME",
            help="The sample's clock, Quy Nhơn time (UTC+7), as 2026-11-01, 2026-11-01T08:30 or "
            "2026-11-01T08:30:00: readings, vessel positions and citizen reports lead up to it [default: now].",
        ),
    ] = None,
) -> None:
    """Generate the Quy Nhơn sample city into TWIN_DATA_DIR/samples and load it, replacing earlier samples."""
    from twin.samplecity import generate_city
    from twin.samplecity.clock import current_minute, parse_as_of
    from twin.samplecity.dem import register_sample_dem
    from twin.samplecity.inputs import load_inputs

    settings = TwinSettings()
    out_dir = settings.data_dir / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        reference = current_minute() if as_of is None else parse_as_of(as_of)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--as-of") from None
    with console.status("generating the sample city…"):
        generated = generate_city(out_dir, seed=seed, scale=scale, reference=reference)
    with _open_store() as store:
        for sample in generated:
            definition = LayerDefinition.model_validate(sample.definition)
            report = _import_with_progress(
                store, sample.path, definition.id, mode=LoadMode.REPLACE, definition=definition
            )
            _print_report(report, definition.title)
        with console.status("generating the elevation model…"):
            dem = register_sample_dem(_raster_catalog(store), out_dir, load_inputs().geography, seed)
        typer.echo(f"{dem.id} ({dem.title}): raster {dem.width}×{dem.height} registered")


@app.command("import")
@_friendly
def import_command(
    file: Annotated[Path, typer.Argument(help="GeoJSON, GeoPackage, zipped Shapefile, CSV (lon/lat) or KML.")],
    layer: Annotated[str, typer.Option("--layer", "-l", help="Layer id to import into.")],
    mode: Annotated[LoadMode, typer.Option(help="append adds features; replace swaps the layer's content.")] = (
        LoadMode.APPEND
    ),
    crs: Annotated[
        str | None, typer.Option(help="Source CRS if the file has none or a wrong one, e.g. EPSG:9217.")
    ] = None,
    encoding: Annotated[str | None, typer.Option(help="Text encoding of the file, e.g. cp1258.")] = None,
    source_layer: Annotated[str | None, typer.Option(help="Layer inside the file (GeoPackage, KML).")] = None,
    lon_field: Annotated[str | None, typer.Option(help="CSV column holding longitude (or x).")] = None,
    lat_field: Annotated[str | None, typer.Option(help="CSV column holding latitude (or y).")] = None,
    repair: Annotated[
        bool, typer.Option(help="Repair invalid geometries (make_valid) instead of refusing the file.")
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            help="Leave out the features whose geometry cannot be stored (missing, of another type, "
            "unreadable, invalid and not repaired), and list them, instead of refusing the file."
        ),
    ] = False,
    title: Annotated[str | None, typer.Option(help="Title of a layer created by this import.")] = None,
    kind: Annotated[LayerKind, typer.Option(help="Kind of a layer created by this import.")] = LayerKind.GENERIC,
    create: Annotated[bool, typer.Option(help="Create the layer from the file's columns if it does not exist.")] = True,
) -> None:
    """Import a file into a layer, reprojecting to WGS84; all features land, or none do."""
    options = ReadOptions(
        crs=crs, encoding=encoding, source_layer=source_layer, lon_field=lon_field, lat_field=lat_field
    )
    with _open_store() as store:
        report = _import_with_progress(
            _as(store, None),
            file,
            layer,
            mode=mode,
            options=options,
            repair=repair,
            skip_invalid=skip_invalid,
            title=title,
            kind=kind,
            create=create,
        )
    _print_report(report)


def _import_with_progress(store: Reader, path: Path, layer_id: str, **kwargs: Any) -> ImportReport:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"{path.name} → {layer_id}", total=None)

        def inspected(info: SourceInfo) -> None:
            progress.update(task, total=info.count or None)

        return import_file(
            store,
            path,
            layer_id,
            on_inspected=inspected,
            progress=lambda n: progress.advance(task, n),
            **kwargs,
        )


def _print_report(report: ImportReport, label: str | None = None) -> None:
    action = "created and loaded" if report.created else "loaded"
    replaced = f", {report.archived:,} replaced (kept in history)" if report.archived else ""
    name = f"{report.layer_id} ({label})" if label else report.layer_id
    typer.echo(
        f"{name}: {report.inserted:,} features {action}{replaced} from {report.source_crs} in {report.seconds:.1f} s"
    )
    if report.skipped:
        typer.echo(f"{report.skipped:,} features left out for their geometry:")
        for skip in report.skipped_features:
            typer.echo(f"  feature {skip.feature}: {skip.reason}")
        if report.skipped > len(report.skipped_features):
            typer.echo(f"  … and {report.skipped - len(report.skipped_features):,} more")


@app.command("export")
@_friendly
def export_command(
    layer: Annotated[str, typer.Argument(help="Layer id.")],
    file: Annotated[Path, typer.Argument(help="Output file: .geojson, .gpkg or .csv (points as lon/lat columns).")],
    bbox: Annotated[str | None, typer.Option(help="Only features meeting west,south,east,north (lon/lat).")] = None,
    as_key: Annotated[
        str | None,
        typer.Option(
            "--as", metavar="KEYNAME", help="Export what the holder of this key may read (its areas, fields)."
        ),
    ] = None,
) -> None:
    """Export a layer (or the part inside a bbox) to a file, in WGS84."""
    query = FeatureQuery(bbox=_parse_bbox(bbox)) if bbox else FeatureQuery()
    with _open_store() as store:
        count = export_layer(_as(store, as_key), layer, file, query)
    typer.echo(f"{layer}: {count:,} features written to {file}")


@tiles_app.command("export")
@_friendly
def export_tiles(
    file: Annotated[Path, typer.Argument(help="Output archive, ending in .pmtiles.")],
    layers: Annotated[
        str | None, typer.Option(help="Comma-separated layer ids, one MVT layer each [default: every layer].")
    ] = None,
    minzoom: Annotated[int, typer.Option(help="Lowest zoom written.")] = 10,
    maxzoom: Annotated[int, typer.Option(help="Highest zoom written (clients overzoom past it).")] = 16,
    bbox: Annotated[str | None, typer.Option(help="Only tiles meeting west,south,east,north (lon/lat).")] = None,
    as_key: Annotated[
        str | None,
        typer.Option(
            "--as", metavar="KEYNAME", help="Write what the holder of this key may read (its layers, areas, fields)."
        ),
    ] = None,
) -> None:
    """Write the layers' vector tiles for some zooms into one PMTiles file (for offline maps or a CDN).

    The tiles are those the server sends: same features, aggregation and properties.
    """
    from tiles.archive import export_pmtiles

    area = _parse_bbox(bbox) if bbox else None
    with _open_store() as opened:
        store = _as(opened, as_key)
        ids = [i.strip() for i in layers.split(",") if i.strip()] if layers else [d.id for d in store.list_layers()]
        with console.status("writing tiles…") as status:

            def progress(done: int, total: int) -> None:
                if done % 50 == 0 or done == total:
                    status.update(f"writing tiles… {done:,} of {total:,}")

            box = (area.west, area.south, area.east, area.north) if area else None
            report = export_pmtiles(store, ids, file, minzoom, maxzoom, box, progress)
    typer.echo(
        f"{file}: {report.tiles:,} tiles of {', '.join(ids)}, zooms {minzoom}–{maxzoom} "
        f"({report.empty:,} empty left out), {report.bytes / 1e6:.1f} MB"
    )


def _parse_bbox(text: str) -> BBox:
    try:
        west, south, east, north = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter("bbox must be four numbers: west,south,east,north") from None
    return BBox(west, south, east, north)


@layers_app.command("list")
@_friendly
def list_layers() -> None:
    """List the layers with their kind, geometry and feature count."""
    with _open_store() as store:
        table = Table("id", "title", "kind", "geometry", "features")
        for layer in store.list_layers():
            table.add_row(layer.id, layer.title, layer.kind, layer.geometry_type, f"{store.count(layer.id):,}")
    Console().print(table)


@layers_app.command("show")
@_friendly
def show_layer(layer: Annotated[str, typer.Argument(help="Layer id.")]) -> None:
    """Print a layer's definition as JSON (the format `layers create` reads)."""
    with _open_store() as store:
        typer.echo(json.dumps(store.get_layer(layer).model_dump(mode="json"), ensure_ascii=False, indent=2))


@layers_app.command("create")
@_friendly
def create_layer(definition: Annotated[Path, typer.Argument(help="JSON file with the layer definition.")]) -> None:
    """Create an empty layer from a JSON definition."""
    layer = LayerDefinition.model_validate_json(definition.read_text(encoding="utf-8"))
    with _open_store() as store:
        store.create_layer(layer, _cli_scope())
    typer.echo(f"{layer.id}: created")


@layers_app.command("alter")
@_friendly
def alter_layer(
    layer: Annotated[str, typer.Argument(help="Layer id.")],
    patch: Annotated[Path, typer.Argument(help='JSON change, e.g. {"title": "…", "add_fields": [...]}.')],
) -> None:
    """Change a layer's title, style or time fields; add, rename or drop fields."""
    change = LayerPatch.model_validate_json(patch.read_text(encoding="utf-8"))
    with _open_store() as store:
        store.alter_layer(layer, change, _cli_scope())
    typer.echo(f"{layer}: altered")


@layers_app.command("drop")
@_friendly
def drop_layer(
    layer: Annotated[str, typer.Argument(help="Layer id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Drop a layer with all its features and history."""
    if not yes:
        typer.confirm(f"Drop layer '{layer}' with all its features and history?", abort=True)
    with _open_store() as store:
        store.drop_layer(layer, _cli_scope())
    typer.echo(f"{layer}: dropped")


@layers_app.command("access")
@_friendly
def layer_access(
    layer: Annotated[str, typer.Argument(help="Layer id.")],
    public: Annotated[
        bool | None, typer.Option("--public/--not-public", help="Readable by anyone, signed in or not.")
    ] = None,
    read: Annotated[list[str] | None, typer.Option("--read", help="A role that reads it (repeat the option).")] = None,
    write: Annotated[list[str] | None, typer.Option("--write", help="A role that changes its features.")] = None,
    admin: Annotated[
        list[str] | None, typer.Option("--admin", help="A role that alters it and imports into it.")
    ] = None,
    sensitive: Annotated[
        list[str] | None, typer.Option("--sensitive", help="A role that reads its sensitive fields.")
    ] = None,
) -> None:
    """Show or change who may read, write and administer a layer (options given replace their list)."""
    with _open_store() as store:
        current = store.get_layer(layer).access
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("public", public),
                ("read", read),
                ("write", write),
                ("admin", admin),
                ("sensitive", sensitive),
            )
            if v is not None
        }
        access = current
        if changes:
            access = LayerAccess.model_validate({**current.model_dump(), **changes})
            store.alter_layer(layer, LayerPatch(access=access), _cli_scope())
    typer.echo(json.dumps({"layer": layer, **access.model_dump(mode="json")}, ensure_ascii=False))


@keys_app.command("add")
@_friendly
def add_key(
    name: Annotated[str, typer.Argument(help="A name for the key: who or what holds it (unique).")],
    role: Annotated[list[str], typer.Option("--role", help="admin, province, ward_officer, gis_client… (repeat).")],
    area: Annotated[
        list[str] | None,
        typer.Option("--area", help="An administrative area (id, code or name in an admin_area layer); repeat."),
    ] = None,
    expires: Annotated[
        str | None, typer.Option(metavar="DATE", help="When it stops working: 2027-06-30 or 2027-06-30T17:00+07:00.")
    ] = None,
) -> None:
    """Make an API key. The key is the last line printed, shown this once: the store keeps only its hash."""
    expires_at = _parse_expiry(expires) if expires else None
    with _open_store() as store:
        key, secret = store.add_key(name, role, area or [], expires_at, _cli_scope())
    areas = f", areas {', '.join(key.areas)}" if key.areas else ""
    until = f", until {key.expires_at.isoformat()}" if key.expires_at else ""
    typer.echo(f"{key.name}: roles {', '.join(key.roles)}{areas}{until}. The key (shown once):")
    typer.echo(secret)


def _parse_expiry(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (2027-06-30) or a time", param_hint="--expires") from None
    if value.tzinfo is None:  # a bare date or time: Quy Nhơn time, as people there mean it
        value = value.replace(tzinfo=timezone(timedelta(hours=7)))
    return value


@keys_app.command("list")
@_friendly
def list_keys() -> None:
    """List the keys: name, first characters, roles, areas, state (never the keys)."""
    with _open_store() as store:
        keys = store.list_keys(_cli_scope())
    table = Table("name", "key", "roles", "areas", "expires", "state")
    for key in keys:
        expiry = key.expires_at.isoformat(timespec="minutes") if key.expires_at else ""
        table.add_row(key.name, key.prefix + "…", ", ".join(key.roles), ", ".join(key.areas), expiry, key.state())
    Console().print(table)


@keys_app.command("revoke")
@_friendly
def revoke_key(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke a key: it stops working on every server within TWIN_AUTH_CACHE_S seconds."""
    with _open_store() as store:
        key = store.revoke_key(name, _cli_scope())
    typer.echo(f"{key.name}: revoked")


@app.command("backup")
@_friendly
def backup_command(
    file: Annotated[Path, typer.Argument(help="The backup file to write (replaced when complete).")],
) -> None:
    """Back up the whole store while it serves: layers, features, history, rasters' catalog, keys, audit.

    SQLite: its online backup API; PostGIS: pg_dump (custom format). Raster files are in
    TWIN_DATA_DIR/rasters: back them up with the folder."""
    from layers.store.backup import backup

    with _open_store() as store:
        size = backup(store, file)
    typer.echo(f"{file}: {size / 1e6:,.1f} MB backed up")


@app.command("restore")
@_friendly
def restore_command(
    file: Annotated[Path, typer.Argument(help="A backup made by `twin backup` on the same kind of store.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Put the store back as the backup holds it, in one transaction (running servers see it at once)."""
    from layers.store.backup import restore

    if not yes:
        typer.confirm(f"Replace everything in the store with {file}?", abort=True)
    with _open_store() as store:
        restore(store, file)
        layers = store.list_layers()
    typer.echo(f"{file}: restored, {len(layers):,} layers")


@app.command("audit")
@_friendly
def audit_command(
    layer: Annotated[str | None, typer.Option(help="Only entries about this layer.")] = None,
    principal: Annotated[str | None, typer.Option(help="Only entries by this principal (key:NAME, oidc:SUB…).")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action (feature.update, signin, key.add…).")] = None,
    refused: Annotated[bool, typer.Option(help="Only refused sign-ins and actions.")] = False,
    since: Annotated[str | None, typer.Option(metavar="TIME", help="Only entries from this time on.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most entries shown.")] = 100,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write the entries to this CSV file.")] = None,
) -> None:
    """Show the audit trail: every write, import, layer and key change, and refused sign-ins."""
    from layers.store.principals import AuditQuery, write_audit_csv

    query = AuditQuery(
        principal=principal,
        action=action,
        outcome="refused" if refused else None,
        layer_id=layer,
        since=_parse_expiry(since) if since else None,
        limit=limit,
    )
    with _open_store() as store:
        entries = store.audit(query, _cli_scope())
    if csv_file is not None:
        with csv_file.open("w", newline="", encoding="utf-8") as out:
            write_audit_csv(entries, out)
        typer.echo(f"{len(entries):,} entries written to {csv_file}")
        return
    table = Table("at", "principal", "action", "outcome", "layer", "feature", "versions", "client", "detail")
    for e in entries:
        versions = (
            "" if e.version_before is None and e.version_after is None else f"{e.version_before}→{e.version_after}"
        )
        table.add_row(
            e.at.isoformat(timespec="seconds") if e.at else "",
            escape(e.principal),
            e.action,
            e.outcome,
            e.layer_id or "",
            "" if e.feature_id is None else str(e.feature_id),
            versions,
            e.client or "",
            escape(e.detail or ""),
        )
    Console().print(table)


def _raster_catalog(store: LayerStore) -> RasterCatalog:
    return RasterCatalog(store.engine, TwinSettings().data_dir / "rasters")


@rasters_app.command("add")
@_friendly
def add_raster(
    source: Annotated[
        str, typer.Argument(help="GeoTIFF path or http(s)/s3 URL; not a COG → converted into TWIN_DATA_DIR/rasters.")
    ],
    raster_id: Annotated[str, typer.Option("--id", help="Raster layer id (a-z, 0-9, _).")],
    title: Annotated[str, typer.Option(help="Title shown to people, e.g. 'Ảnh hàng không 2024'.")],
    kind: Annotated[RasterKind, typer.Option(help="What the raster holds; dem also serves terrain tiles.")] = (
        RasterKind.GENERIC
    ),
    nodata: Annotated[float | None, typer.Option(help="Value meaning 'no data' [default: the file's].")] = None,
    rescale: Annotated[str | None, typer.Option(help="low,high: values drawn from first to last colour.")] = None,
    colormap: Annotated[str | None, typer.Option(help="rio-tiler colormap name, e.g. terrain, blues.")] = None,
    minzoom: Annotated[int | None, typer.Option(help="Lowest zoom served [default: from the file].")] = None,
    maxzoom: Annotated[int | None, typer.Option(help="Highest zoom served [default: from the file].")] = None,
    description: Annotated[str | None, typer.Option(help="A longer description.")] = None,
    replace: Annotated[bool, typer.Option(help="Replace a raster layer with the same id.")] = False,
) -> None:
    """Register a GeoTIFF as a raster layer; the file is checked first, the catalog changes only if it passes."""
    definition = RasterDefinition(
        id=raster_id,
        title=title,
        kind=kind,
        source=source,
        nodata=nodata,
        rescale=_parse_interval(rescale) if rescale else None,
        colormap=colormap,
        minzoom=minzoom,
        maxzoom=maxzoom,
        description=description,
    )
    with _open_store() as store:
        layer = _raster_catalog(store).register(definition, replace=replace)
    converted = " (converted to a Cloud-Optimized GeoTIFF)" if layer.converted else ""
    typer.echo(f"{layer.id}: registered{converted}, zoom {layer.minzoom}–{layer.maxzoom}, bounds {layer.bounds}")


def _parse_interval(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise typer.BadParameter("rescale must be two numbers: low,high") from None
    return (low, high)


@rasters_app.command("list")
@_friendly
def list_rasters() -> None:
    """List the raster layers with their kind, size and zoom range."""
    with _open_store() as store:
        layers = _raster_catalog(store).list_rasters()
    table = Table("id", "title", "kind", "size", "zoom", "values")
    for layer in layers:
        values = f"{layer.value_range[0]:g} – {layer.value_range[1]:g}" if layer.value_range else ""
        size = f"{layer.width}×{layer.height}×{layer.band_count}"
        table.add_row(layer.id, layer.title, layer.kind, size, f"{layer.minzoom}–{layer.maxzoom}", values)
    Console().print(table)


@rasters_app.command("remove")
@_friendly
def remove_raster(
    raster_id: Annotated[str, typer.Argument(help="Raster layer id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a raster layer (a COG Twin converted goes too; your own file stays)."""
    if not yes:
        typer.confirm(f"Remove raster layer '{raster_id}'?", abort=True)
    with _open_store() as store:
        _raster_catalog(store).remove(raster_id)
    typer.echo(f"{raster_id}: removed")


def main() -> None:
    logging.captureWarnings(True)
    app()

"""The ``twin`` command: serve, load the sample city, import and export files, manage layers.

Every command reads its configuration from the environment (``TWIN_*``, see
``twin serve --help``) and talks to the same store the server uses, so a layer
imported here shows up in a running server on its next request.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from layers.errors import TwinError
from layers.features import BBox, FeatureQuery
from layers.io.exporter import export_layer
from layers.io.importer import ImportReport, import_file
from layers.io.sources import ReadOptions, SourceInfo
from layers.model import LayerDefinition, LayerKind, LayerPatch
from layers.signal import SharedCounter
from layers.store import LayerStore, LoadMode
from twin.logconfig import configure_logging
from twin.settings import TwinSettings

app = typer.Typer(
    help="Twin — an open geospatial digital-twin server for provincial operations centres.\n\n"
    "Configuration comes from the environment: TWIN_DATA_DIR (default ./var) holds the embedded "
    "SQLite+SpatiaLite database; TWIN_DATABASE_URL=postgresql://… uses PostGIS instead.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
layers_app = typer.Typer(help="List, describe, create, alter and drop layers.", no_args_is_help=True)
app.add_typer(layers_app, name="layers")
console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _friendly(command: F) -> F:
    """Show domain errors as one clear line and exit 1, not as a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TwinError as exc:
            console.print(f"[red]error:[/red] {exc.detail}", highlight=False)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None

    return run  # type: ignore[return-value]


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
) -> None:
    """Generate the Quy Nhơn sample city into TWIN_DATA_DIR/samples and load it, replacing earlier samples."""
    from twin.samplecity import generate_city

    settings = TwinSettings()
    out_dir = settings.data_dir / "samples"
    out_dir.mkdir(parents=True, exist_ok=True)
    with console.status("generating the sample city…"):
        generated = generate_city(out_dir, seed=seed, scale=scale)
    with _open_store() as store:
        for sample in generated:
            definition = LayerDefinition.model_validate(sample.definition)
            report = _import_with_progress(
                store, sample.path, definition.id, mode=LoadMode.REPLACE, definition=definition
            )
            _print_report(report, definition.title)


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
    repair: Annotated[bool, typer.Option(help="Repair invalid geometries instead of refusing the file.")] = False,
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
            store, file, layer, mode=mode, options=options, repair=repair, title=title, kind=kind, create=create
        )
    _print_report(report)


def _import_with_progress(store: LayerStore, path: Path, layer_id: str, **kwargs: Any) -> ImportReport:
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


@app.command("export")
@_friendly
def export_command(
    layer: Annotated[str, typer.Argument(help="Layer id.")],
    file: Annotated[Path, typer.Argument(help="Output file: .geojson, .gpkg or .csv (points as lon/lat columns).")],
    bbox: Annotated[str | None, typer.Option(help="Only features meeting west,south,east,north (lon/lat).")] = None,
) -> None:
    """Export a layer (or the part inside a bbox) to a file, in WGS84."""
    query = FeatureQuery(bbox=_parse_bbox(bbox)) if bbox else FeatureQuery()
    with _open_store() as store:
        count = export_layer(store, layer, file, query)
    typer.echo(f"{layer}: {count:,} features written to {file}")


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
        store.create_layer(layer)
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
        store.alter_layer(layer, change)
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
        store.drop_layer(layer)
    typer.echo(f"{layer}: dropped")


def main() -> None:
    logging.captureWarnings(True)
    app()

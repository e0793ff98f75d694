"""Backups of a whole store, taken while it serves, and restores that bring it back exactly.

SQLite: the online backup API copies the database page by page from one consistent snapshot
(writers wait only for the page being copied), into a file beside the target that is renamed into
place once complete. PostgreSQL: ``pg_dump`` in its custom format, one snapshot, and ``pg_restore
--clean --single-transaction`` (all or nothing) — both from Debian's ``postgresql-client``. A backup
holds everything in the store: layer definitions (with who may use them), features, history, the
change log, the rasters' catalog, the API keys (hashed) and the audit trail.

A restore puts an older state back, so the version counters would go back too, and a tile cached
at version 7 after the backup could pass for version 7 of the restored store. So the restore moves
the catalog version and every layer's data version past what they were before it: every cache
(every worker, every machine) sees a change and checks its tiles again. Raster files live in
``TWIN_DATA_DIR/rasters``, not in the store: back them up with the data folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa

from layers.errors import InvalidInputError, UnavailableError
from layers.store import changes
from layers.store.store import LayerStore
from layers.store.tables import CatalogVersion, LayerDataVersion

_catalog = CatalogVersion.__table__  # type: ignore[attr-defined]
_data = LayerDataVersion.__table__  # type: ignore[attr-defined]
#: The first bytes of each kind of backup, to refuse a file that is neither (or the other backend's).
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"
#: What a PostgreSQL backup holds: Twin's own tables (the catalog, keys, audit, rasters' catalog, the
#: schema version) and each layer's current and history tables; not the PostGIS extension around them.
TWIN_TABLES = ("twin_*", "l_*", "h_*", "alembic_version")


def backup(store: LayerStore, path: Path) -> int:
    """Write the whole store to ``path`` (replaced only once the backup is complete); its size in bytes."""
    path = path.resolve()
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        if store.backend.name == "spatialite":
            _sqlite_backup(store, partial)
        else:
            tables = [f"--table={pattern}" for pattern in TWIN_TABLES]
            _pg(["pg_dump", "--format=custom", "--no-owner", "--no-privileges", *tables, f"--file={partial}"], store)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path.stat().st_size


def restore(store: LayerStore, path: Path) -> None:
    """Put the store back as ``path`` holds it, in one transaction; the versions move past the current ones."""
    if not path.is_file():
        raise InvalidInputError(f"{path.name}: no such backup file")
    with path.open("rb") as file:
        head = file.read(16)
    spatialite = store.backend.name == "spatialite"
    expected, kind = (SQLITE_MAGIC, "an SQLite database") if spatialite else (PG_DUMP_MAGIC, "a pg_dump archive")
    if not head.startswith(expected):
        raise InvalidInputError(f"{path.name} is not {kind}: a {store.backend.name} store restores its own backups")
    before = store.all_data_versions()
    if spatialite:
        _sqlite_restore(store, path)
    else:
        _pg_restore(store, path)
    store.engine.dispose()  # connections opened before may hold the old schema in their caches
    with store.engine.begin() as conn:
        restored = changes.read_versions(conn, conn.execute(sa.select(_catalog.c.version)).scalar() or 0, None)
        catalog = max(before.catalog, restored.catalog) + 1
        if conn.execute(sa.update(_catalog).values(version=catalog)).rowcount == 0:
            conn.execute(sa.insert(_catalog).values(id=1, version=catalog))
        for layer in sorted(set(before.layers) | set(restored.layers)):
            past = max(before.layers.get(layer, 0), restored.layers.get(layer, 0))
            conn.execute(sa.delete(_data).where(_data.c.layer_id == layer))
            conn.execute(sa.insert(_data).values(layer_id=layer, version=past))
            changes.record_change(conn, layer, None)  # past + 1, anywhere: every cached tile is checked again
    if store.writes is not None:
        store.writes.bump()


def _sqlite_backup(store: LayerStore, target: Path) -> None:
    sqlite = store.engine.dialect.dbapi  # the driver's own module: backup() takes its connections only
    raw = store.engine.raw_connection()
    try:
        destination = sqlite.connect(str(target))  # type: ignore[union-attr]
        try:
            raw.driver_connection.backup(destination)  # type: ignore[union-attr]
        finally:
            destination.close()
    finally:
        raw.close()


def _sqlite_restore(store: LayerStore, backup_file: Path) -> None:
    """The backup copied over the live database by SQLite itself: all pages in one step, which is one
    write transaction (other writers wait for it, readers see the old or the new store, never a mix)."""
    sqlite = store.engine.dialect.dbapi
    source = sqlite.connect(f"file:{backup_file}?mode=ro", uri=True)  # type: ignore[union-attr]
    raw = store.engine.raw_connection()
    try:
        source.backup(raw.driver_connection, pages=-1)
    except sqlite.Error as exc:  # type: ignore[union-attr]
        raise UnavailableError(f"the restore failed and changed nothing: {exc}") from exc
    finally:
        raw.close()
        source.close()


def _pg_restore(store: LayerStore, archive: Path) -> None:
    """The archive as an SQL script (``pg_restore -f``), run by ``psql`` in one transaction after dropping
    every table of Twin's, those made since the backup too: all of it lands, or nothing changes."""
    with store.engine.connect() as conn:
        now = [
            n
            for n in sa.inspect(conn).get_table_names()
            if n.startswith(("twin_", "l_", "h_")) or n == "alembic_version"
        ]
    with tempfile.TemporaryDirectory(prefix="twin-restore-") as folder:
        script = Path(folder) / "restore.sql"
        _pg(["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", f"--file={script}", str(archive)])
        wrapper = Path(folder) / "all.sql"
        drops = "".join(f'DROP TABLE IF EXISTS "{name}" CASCADE;\n' for name in now)
        wrapper.write_text(f"{drops}\\i {script}\n", encoding="utf-8")
        _pg(
            ["psql", "--quiet", "--no-psqlrc", "--single-transaction", "-v", "ON_ERROR_STOP=1", f"--file={wrapper}"],
            store,
        )


def _pg(command: list[str], store: LayerStore | None = None) -> None:
    tool = shutil.which(command[0])
    if tool is None:
        raise UnavailableError(f"{command[0]} is not installed (apt-get install postgresql-client)")
    url = "" if store is None else store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    args = [tool, *command[1:], *([f"--dbname={url}"] if url else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=24 * 3600)
    if done.returncode != 0:
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit status {done.returncode}"
        raise UnavailableError(f"{command[0]} failed, nothing changed: {message.replace(url, '…') if url else message}")

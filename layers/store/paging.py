"""One page of a keyset-paged answer, read inside the caller's transaction.

An items request needs the layer's definition, the page and, on a first page,
a count: all of them come from one transaction (one snapshot, one round of
BEGIN/COMMIT), which is what ``LayerStore.page`` opens around ``read_page``.
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.engine import Connection

from layers.features import FeaturePage, FeatureQuery
from layers.store.backend import SpatialBackend
from layers.store.statements import count_select, feature_select, features_from_rows, geojson_select, selected_names
from layers.store.tables import LayerTables


def read_page(
    conn: Connection,
    backend: SpatialBackend,
    tables: LayerTables,
    query: FeatureQuery,
    *,
    geojson: bool = False,
    count_cap: int | None = None,
) -> FeaturePage:
    """``query.limit`` rows at most, and the keyset of the next page when more follow.

    One row beyond the page is read to learn whether another page follows.
    With ``geojson``, the database encodes the features where the backend can.
    With ``count_cap``, a first page also says how many rows match, if that is
    at most ``count_cap`` (the count stops early; it never scans a big layer).
    """
    if query.limit is None:
        raise ValueError("a page needs a limit")
    page_size = query.limit
    probe = replace(query, limit=page_size + 1)
    stmt = geojson_select(backend, tables, probe) if geojson else None
    features = encoded = None
    if stmt is not None:
        rows = conn.execute(stmt).all()
        encoded = [row[1] for row in rows[:page_size]]
    else:
        rows = conn.execute(feature_select(backend, tables, probe)).all()
        features = features_from_rows(rows[:page_size], selected_names(tables.definition, query))
    more = len(rows) > page_size
    ids = [row[0] for row in rows[:page_size]]
    next_after = None
    if more and page_size > 0:
        last = rows[page_size - 1]
        keys = len(query.sort)
        next_after = (*(tuple(last[len(last) - keys :]) if keys else ()), last[0])
    matched = None
    if query.after_id is None and count_cap is not None:
        if not more:
            matched = len(ids)
        else:
            found = int(conn.execute(count_select(backend, tables, query, count_cap)).scalar_one())
            matched = found if found <= count_cap else None
    return FeaturePage(tables.definition, ids, features, encoded, next_after, matched)

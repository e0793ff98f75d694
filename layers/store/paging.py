"""One page of a keyset-paged answer, read inside the caller's transaction.

An items request needs the layer's definition, the page and, on a first page,
a count: all of them come from one transaction (one snapshot, one round of
BEGIN/COMMIT), which is what ``LayerStore.page`` opens around ``read_page``;
the page and its count are one statement.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from sqlalchemy.engine import Connection

from layers.features import FeaturePage, FeatureQuery
from layers.store.backend import SpatialBackend
from layers.store.prepared import prepared_page
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
    known_count: tuple[int | None] | None = None,
) -> FeaturePage:
    """``query.limit`` rows at most, and the keyset of the next page when more follow.

    One row beyond the page is read to learn whether another page follows.
    With ``geojson``, the database encodes the features where the backend can.
    With ``count_cap``, a first page also says how many rows match, if that is
    at most ``count_cap`` (the count stops early; it never scans a big layer).
    ``known_count`` is that count when the caller already knows it (``MatchCounts``): (None,) for
    "more than ``count_cap``"; the database then only reads the page.
    """
    if query.limit is None:
        raise ValueError("a page needs a limit")
    page_size = query.limit
    probe = replace(query, limit=page_size + 1)
    counted = query.after_id is None and count_cap is not None and known_count is None
    prepared = prepared_page(backend, tables, probe, geojson=geojson, count_cap=count_cap if counted else None)
    if prepared is not None:
        rows = conn.execute(prepared.statement, prepared.params).all()
        decode = prepared.decode
    else:
        stmt = geojson_select(backend, tables, probe) if geojson else None
        decode = stmt is None
        if stmt is None:
            stmt = feature_select(backend, tables, probe)
        if counted:
            # The capped count rides along as one more column: no second statement, no second round trip.
            count = count_select(backend, tables, query, count_cap).scalar_subquery()
            stmt = stmt.add_columns(count.label("_matched"))
        rows = conn.execute(stmt).all()
    page = rows[:page_size]
    features = features_from_rows(page, selected_names(tables.definition, query)) if decode else None
    encoded = None if decode else [row[1] for row in page]
    more = len(rows) > page_size
    end = -1 if counted else None  # the trailing columns: sort-key values, then the count
    next_after = None
    if more and page:
        keys = len(query.sort)
        values = tuple(page[-1][:end][-keys:]) if keys else ()
        next_after = (*values, page[-1][0])
    matched = None
    if counted:
        found = int(rows[0][-1]) if rows else 0
        matched = len(page) if not more else found if found <= (count_cap or 0) else None
    elif known_count is not None and query.after_id is None:
        matched = len(page) if not more else known_count[0]
    return FeaturePage(tables.definition, [row[0] for row in page], features, encoded, next_after, matched)


class MatchCounts:
    """First-page counts of the queries narrowed to an area mask, by layer data version.

    Under a mask the capped count is most of a first page's cost (2,001 matches found through the
    spatial index, where an unscoped count reads the first 2,001 rows), and every officer of one ward
    asks the same first pages. A count is kept for the query's filtering parts (not its page size,
    properties or order) at the data version it was read at, so a write makes it stale at once. At
    most ``capacity`` are kept; a full cache is emptied (counts are cheap to read again).
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[int, int | None]] = {}

    @staticmethod
    def key(layer_id: str, query: FeatureQuery, cap: int) -> tuple[Any, ...] | None:
        """What the count depends on, or None for a query this cache leaves alone."""
        if query.mask is None or query.as_of is not None:
            return None
        conditions = tuple((c.field, c.op, repr(c.value)) for c in query.where)
        filters = json.dumps(query.filter, sort_keys=True, default=str) if query.filter is not None else None
        return (layer_id, query.mask.key, cap, query.bbox, query.near, query.contains, query.time, conditions, filters)

    def get(self, key: tuple[Any, ...], version: int) -> tuple[int | None] | None:
        with self._lock:
            entry = self._entries.get(key)
        return (entry[1],) if entry is not None and entry[0] == version else None

    def put(self, key: tuple[Any, ...], version: int, matched: int | None) -> None:
        with self._lock:
            if len(self._entries) >= self.capacity:
                self._entries.clear()
            self._entries[key] = (version, matched)

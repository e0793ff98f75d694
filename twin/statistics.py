"""Counts computed by the server: how many features of a layer hold each value of a field.

``GET /collections/{id}/counts?groupBy=ward&filter=status IN ('new','in_progress')`` answers
the operations centre's KPI panels (open reports per ward, sensors over threshold
per ward…) with one GROUP BY in the database, so a wall screen never downloads
thousands of features to count them. It takes the same ``filter``, ``bbox`` and
``datetime`` as ``/items``.
"""

# No ``from __future__ import annotations``: FastAPI reads the handler's annotations at runtime.

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from layers.errors import InvalidInputError
from layers.features import FeatureQuery
from layers.filter_limits import FilterLimits
from layers.store import Reader
from ogc.params import DEFAULT_FILTER_LIMITS, parse_bbox, parse_datetime, parse_filter

PARAMETERS = frozenset({"groupBy", "filter", "filter-lang", "filter-crs", "bbox", "datetime"})


class StatisticsAPI:
    """The counting routes over a layer store."""

    def __init__(
        self,
        get_store: Callable[..., Reader | Awaitable[Reader]],
        filter_limits: FilterLimits = DEFAULT_FILTER_LIMITS,
    ) -> None:
        self.router = APIRouter(tags=["Statistics"])
        store_dep = Annotated[Reader, Depends(get_store)]

        @self.router.get("/collections/{collectionId}/counts", summary="Feature counts per value of a field")
        def counts(
            request: Request,
            collectionId: str,
            store: store_dep,
            group_by: Annotated[str, Query(alias="groupBy", description="The field whose values are counted.")],
            filter: Annotated[str | None, Query(description="A CQL2 filter, as for /items.")] = None,
            filter_lang: Annotated[
                str | None, Query(alias="filter-lang", description="cql2-text (default) or cql2-json.")
            ] = None,
            filter_crs: Annotated[str | None, Query(alias="filter-crs", description="CRS of the filter.")] = None,
            bbox: Annotated[str | None, Query(description="west,south,east,north in CRS84.")] = None,
            datetime_: Annotated[
                str | None, Query(alias="datetime", description="An instant or interval on the time field.")
            ] = None,
        ) -> dict[str, Any]:
            unknown = sorted(set(request.query_params) - PARAMETERS)
            if unknown:
                raise InvalidInputError(f"unknown query parameter(s) {', '.join(unknown)}")
            layer = store.get_layer(collectionId)
            query = FeatureQuery(
                bbox=parse_bbox(bbox),
                time=parse_datetime(datetime_, layer),
                filter=parse_filter(filter, filter_lang, filter_crs, filter_limits),
            )
            found = store.count_by(layer.id, group_by, query)
            rows = sorted(found.items(), key=lambda item: (-item[1], "" if item[0] is None else str(item[0])))
            return {
                "collection": layer.id,
                "groupBy": group_by,
                "counts": [{"value": _json_value(value), "count": n} for value, n in rows],
                "total": sum(found.values()),
            }


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value

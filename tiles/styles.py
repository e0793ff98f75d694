"""TileJSON 3.0 and MapLibre style documents, built from the layers' definitions and style hints."""

from __future__ import annotations

from typing import Any

from layers.model import FieldType, GeometryType, LayerDefinition, LayerKind
from layers.vectortiles import COUNT_PROPERTY

MVT = "application/vnd.mapbox-vector-tile"
#: Beyond this zoom, clients draw from the parent tile (MapLibre "overzooms"): deeper tiles add nothing.
SOURCE_MAX_ZOOM = 16
_FIELD_TYPES = {
    FieldType.STRING: "String",
    FieldType.INTEGER: "Number",
    FieldType.NUMBER: "Number",
    FieldType.BOOLEAN: "Boolean",
    FieldType.DATE: "String",
    FieldType.DATETIME: "String",
}
_POINTS = {GeometryType.POINT, GeometryType.MULTIPOINT}
_LINES = {GeometryType.LINESTRING, GeometryType.MULTILINESTRING}
_POLYGONS = {GeometryType.POLYGON, GeometryType.MULTIPOLYGON}
#: Layers drawn first come first in the style: areas under lines under points.
_KIND_ORDER = [
    LayerKind.ADMIN_AREA,
    LayerKind.PARCEL,
    LayerKind.INFRASTRUCTURE,
    LayerKind.GENERIC,
    LayerKind.ADDRESS_POINT,
    LayerKind.INCIDENT,
    LayerKind.SENSOR,
    LayerKind.CAMERA,
    LayerKind.VESSEL,
]


def vector_layer(layer: LayerDefinition) -> dict[str, Any]:
    """The layer as TileJSON's ``vector_layers`` entry."""
    fields = {f.name: _FIELD_TYPES[f.type] for f in layer.fields}
    return {
        "id": layer.id,
        "description": layer.title,
        "minzoom": layer.style.min_zoom,
        "maxzoom": min(layer.style.max_zoom, SOURCE_MAX_ZOOM),
        "fields": {**fields, COUNT_PROPERTY: "Number"},
    }


def tilejson(
    name: str,
    tiles_url: str,
    layers: list[LayerDefinition],
    bounds: tuple[float, float, float, float] | None,
    description: str | None = None,
) -> dict[str, Any]:
    minzoom = min(layer.style.min_zoom for layer in layers)
    maxzoom = min(max(layer.style.max_zoom for layer in layers), SOURCE_MAX_ZOOM)
    west, south, east, north = bounds or (-180.0, -85.0511287798066, 180.0, 85.0511287798066)
    document: dict[str, Any] = {
        "tilejson": "3.0.0",
        "name": name,
        "scheme": "xyz",
        "tiles": [tiles_url],
        "minzoom": minzoom,
        "maxzoom": maxzoom,
        "bounds": [west, south, east, north],
        "center": [(west + east) / 2, (south + north) / 2, max(minzoom, min(13, maxzoom))],
        "vector_layers": [vector_layer(layer) for layer in layers],
    }
    if description:
        document["description"] = description
    return document


def style_layers(layer: LayerDefinition) -> list[dict[str, Any]]:
    """MapLibre style layers for one Twin layer, from its style hints.

    Aggregated cells (``_count``) are drawn as circles sized by count in every
    layer kind; features themselves by geometry type; a polygon layer with an
    ``extrude_field`` is drawn in 3D.
    """
    hints = layer.style
    fill = hints.fill_color or hints.color
    common: dict[str, Any] = {
        "source": layer.id,
        "source-layer": layer.id,
        "minzoom": hints.min_zoom,
        "maxzoom": hints.max_zoom + 1,
        "metadata": {"twin:layer": layer.id, "twin:kind": layer.kind.value, "twin:title": layer.title},
    }
    single = ["!", ["has", COUNT_PROPERTY]]
    styles: list[dict[str, Any]] = [
        {
            **common,
            "id": f"{layer.id}-count",
            "type": "circle",
            "filter": ["has", COUNT_PROPERTY],
            "paint": {
                "circle-color": fill,
                "circle-opacity": hints.opacity,
                "circle-radius": ["interpolate", ["linear"], ["get", COUNT_PROPERTY], 1, 3, 100, 8, 10000, 22],
                "circle-stroke-color": "#ffffff",
                "circle-stroke-width": 0.5,
            },
        }
    ]
    geometry = layer.geometry_type
    if geometry in _POLYGONS or geometry is GeometryType.GEOMETRY:
        polygon = ["all", single, ["==", ["geometry-type"], "Polygon"]]
        if hints.extrude_field:
            styles.append(
                {
                    **common,
                    "id": f"{layer.id}-extrusion",
                    "type": "fill-extrusion",
                    "filter": polygon,
                    "paint": {
                        "fill-extrusion-color": fill,
                        "fill-extrusion-opacity": hints.opacity,
                        "fill-extrusion-height": ["coalesce", ["to-number", ["get", hints.extrude_field]], 0],
                    },
                }
            )
        else:
            styles.append(
                {
                    **common,
                    "id": f"{layer.id}-fill",
                    "type": "fill",
                    "filter": polygon,
                    "paint": {"fill-color": fill, "fill-opacity": hints.opacity * 0.5},
                }
            )
    if geometry in _POLYGONS or geometry in _LINES or geometry is GeometryType.GEOMETRY:
        styles.append(
            {
                **common,
                "id": f"{layer.id}-line",
                "type": "line",
                "filter": ["all", single, ["!=", ["geometry-type"], "Point"]],
                "paint": {"line-color": hints.color, "line-width": hints.line_width, "line-opacity": hints.opacity},
            }
        )
    if geometry in _POINTS or geometry is GeometryType.GEOMETRY:
        styles.append(
            {
                **common,
                "id": f"{layer.id}-circle",
                "type": "circle",
                "filter": ["all", single, ["==", ["geometry-type"], "Point"]],
                "paint": {
                    "circle-color": fill,
                    "circle-opacity": hints.opacity,
                    "circle-radius": hints.radius,
                    "circle-stroke-color": "#ffffff",
                    "circle-stroke-width": 0.5,
                },
            }
        )
    return styles


def style_document(
    base: str, name: str, layers: list[LayerDefinition], center: tuple[float, float] | None
) -> dict[str, Any]:
    """A complete MapLibre style: one vector source per layer, drawn in a sensible order over a sea background."""
    ordered = sorted(layers, key=lambda layer: (_KIND_ORDER.index(layer.kind), layer.id))
    sources = {
        layer.id: {
            "type": "vector",
            "url": f"{base}/collections/{layer.id}/tiles/WebMercatorQuad/tilejson.json",
            "attribution": "Twin",
        }
        for layer in ordered
    }
    background = {"id": "background", "type": "background", "paint": {"background-color": "#dbe8f0"}}
    document: dict[str, Any] = {
        "version": 8,
        "name": name,
        "metadata": {"twin:layers": [layer.id for layer in ordered]},
        "sources": sources,
        "layers": [background, *(style for layer in ordered for style in style_layers(layer))],
        "zoom": 12,
    }
    if center is not None:
        document["center"] = list(center)
    return document

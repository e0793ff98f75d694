"""Twin in a Jupyter notebook: layers drawn with pydeck in their server style, read into geopandas.

``TwinMap(url).add("parcels").add("incidents", filter="status='new'")`` draws
layers the way the map client does, because every colour, width, radius and
extrusion comes from the server's own MapLibre style (``/styles/default``,
built from the layers' style hints), not from numbers repeated here.

An unfiltered layer is drawn from the layer's vector tiles
(``/collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}``), so a 60,000-parcel
layer costs the browser what a map costs. Twin's tiles take no ``filter`` or
``bbox`` (only ``properties``), so a layer added with either is read through
OGC API – Features instead (``/items``, following ``next`` links, at most
``max_features``) and drawn as a ``GeoJsonLayer`` holding those features: what
is drawn is exactly what the filter selects, never a tile the filter was not
applied to.

Tiles are fetched and decoded in the page by a small MVT reader of Twin's own
(``_TILE_READER`` below, inlined in the page and given to deck.gl's ``MVTLayer``
as its ``fetch``): the ``MVTLayer`` in pydeck's bundle decodes tiles only in a
loaders.gl worker whose script it loads from a CDN (unpkg), which a page
without network cannot do. The layer itself (placing, clipping to the tile,
picking) is deck.gl's.

``to_html()`` writes a page that needs no network but Twin's own server:
pydeck's deck.gl bundle is inlined (pydeck's ``offline=True``) and the
template's CDN tags (Mapbox GL, Bootstrap, Font Awesome, MapLibre and
widget CSS, which only a Mapbox/MapLibre basemap or deck widgets use) are
removed; there is no basemap, the sea is the page's background as in Twin's
style, and the layers (wards as land) are the map. A page shown from another
origin than Twin's (a notebook server's) needs Twin to answer CORS for its
tiles.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pyproj
import shapely
import shapely.geometry

try:
    import pydeck as pdk
    from pydeck.io.html import deck_to_html
except ImportError as error:  # pragma: no cover - the optional extra is missing
    raise ImportError("twin.notebook draws maps with pydeck: pip install 'twin[notebook]'") from error

API_KEY_HEADER = "X-API-Key"
GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: Twin's TileJSON stops here; deck.gl draws deeper zooms from these tiles (as MapLibre overzooms).
TILE_MAX_ZOOM = 16
#: A filtered layer is held in the page as GeoJSON: this many features at most, unless told otherwise.
MAX_FEATURES = 20_000
_RGBA = list[int]

#: The MVT reader the page uses (deck.gl's ``MVTLayer`` calls ``twinTileFetch(...)``'s function per tile): a
#: protobuf walk of the Mapbox Vector Tile 2.1 message, geometry commands to lon/lat, rings classified by
#: winding as the specification says. Empty tiles (204) and tiles outside a layer's zooms (404) draw nothing.
_TILE_READER = """
window.TwinDeck = (function () {
  var text = new TextDecoder("utf-8");
  function Reader(buffer) { this.bytes = new Uint8Array(buffer); this.view = new DataView(buffer); this.at = 0; }
  Reader.prototype.varint = function () {
    var value = 0, scale = 1, byte;
    do { byte = this.bytes[this.at++]; value += (byte & 0x7f) * scale; scale *= 128; } while (byte >= 0x80);
    return value;
  };
  Reader.prototype.end = function () { var length = this.varint(); return this.at + length; };
  Reader.prototype.skip = function (wire) {
    if (wire === 0) this.varint(); else if (wire === 1) this.at += 8;
    else if (wire === 2) this.at = this.end(); else if (wire === 5) this.at += 4;
  };
  Reader.prototype.string = function () {
    var end = this.end(), s = text.decode(this.bytes.subarray(this.at, end));
    this.at = end;
    return s;
  };
  Reader.prototype.packed = function () {
    var end = this.end(), out = [];
    while (this.at < end) out.push(this.varint());
    return out;
  };
  Reader.prototype.each = function (end, read) {
    while (this.at < end) { var tag = this.varint(); if (!read(tag >> 3, tag & 7)) this.skip(tag & 7); }
  };
  function value(r) {
    var end = r.end(), out = null;
    r.each(end, function (field) {
      if (field === 1) out = r.string();
      else if (field === 2) { out = r.view.getFloat32(r.at, true); r.at += 4; }
      else if (field === 3) { out = r.view.getFloat64(r.at, true); r.at += 8; }
      else if (field === 4) { out = r.varint(); if (out >= 9223372036854775808) out -= 18446744073709551616; }
      else if (field === 5) out = r.varint();
      else if (field === 6) { var z = r.varint(); out = z % 2 === 1 ? -(z + 1) / 2 : z / 2; }
      else if (field === 7) out = r.varint() !== 0;
      else return false;
      return true;
    });
    return out;
  }
  function paths(commands) {
    var x = 0, y = 0, i = 0, out = [], current = null;
    while (i < commands.length) {
      var command = commands[i] & 7, count = commands[i++] >> 3;
      if (command === 1 || command === 2) {
        for (; count > 0; count--) {
          var dx = commands[i++], dy = commands[i++];
          x += (dx >>> 1) ^ -(dx & 1); y += (dy >>> 1) ^ -(dy & 1);
          if (command === 1) { current = []; out.push(current); }
          current.push([x, y]);
        }
      } else if (command === 7 && current && current.length) current.push(current[0].slice());
    }
    return out;
  }
  function area(ring) {
    var sum = 0;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      sum += (ring[i][0] - ring[j][0]) * (ring[i][1] + ring[j][1]);
    }
    return sum;
  }
  function geometry(type, parts, project) {
    parts = parts.map(function (part) { return part.map(project); });
    if (type === 1) {
      var points = [].concat.apply([], parts);
      return points.length === 1 ? {type: "Point", coordinates: points[0]} : {type: "MultiPoint", coordinates: points};
    }
    if (type === 2) {
      if (parts.length === 1) return {type: "LineString", coordinates: parts[0]};
      return {type: "MultiLineString", coordinates: parts};
    }
    var polygons = [], outer;
    parts.forEach(function (ring, n) {
      var a = area(ring); if (a === 0) return;
      if (outer === undefined) outer = a < 0;
      if ((a < 0) === outer) polygons.push([ring]); else if (polygons.length) polygons[polygons.length - 1].push(ring);
    });
    if (polygons.length === 1) return {type: "Polygon", coordinates: polygons[0]};
    return {type: "MultiPolygon", coordinates: polygons};
  }
  function decode(buffer, index) {
    var r = new Reader(buffer), features = [];
    r.each(r.bytes.length, function (field) {
      if (field !== 3) return false;
      var end = r.end(), keys = [], values = [], extent = 4096, raw = [];
      r.each(end, function (f) {
        if (f === 3) keys.push(r.string());
        else if (f === 4) values.push(value(r));
        else if (f === 5) extent = r.varint();
        else if (f === 2) {
          var stop = r.end(), feature = {id: null, tags: [], type: 0, commands: []};
          r.each(stop, function (g) {
            if (g === 1) feature.id = r.varint();
            else if (g === 2) feature.tags = r.packed();
            else if (g === 3) feature.type = r.varint();
            else if (g === 4) feature.commands = r.packed();
            else return false;
            return true;
          });
          raw.push(feature);
        } else return false;
        return true;
      });
      var n = index ? Math.pow(2, index.z) : 1;
      var project = index ? function (p) {
        var X = (index.x + p[0] / extent) / n, Y = (index.y + p[1] / extent) / n;
        return [X * 360 - 180, Math.atan(Math.sinh(Math.PI * (1 - 2 * Y))) * 180 / Math.PI];
      } : function (p) { return [p[0] / extent, p[1] / extent]; };
      raw.forEach(function (f) {
        var properties = {};
        for (var i = 0; i + 1 < f.tags.length; i += 2) properties[keys[f.tags[i]]] = values[f.tags[i + 1]];
        var shape = geometry(f.type, paths(f.commands), project);
        features.push({type: "Feature", id: f.id, properties: properties, geometry: shape});
      });
      return true;
    });
    return features;
  }
  window.twinTilesDrawn = 0;
  return {
    // deck.gl's MVTLayer asks its ``fetch`` prop for each tile, with the coordinates it wants: tile-local
    // (0–1, which it places and clips to the tile itself) or, on a globe, lon/lat from the tile's index.
    twinTileFetch: function (options) {
      return function (url, context) {
        var mvt = (context.loadOptions && context.loadOptions.mvt) || {};
        return fetch(url, {headers: options.headers || {}, signal: context.signal}).then(function (response) {
          if (response.status !== 200) return [];
          return response.arrayBuffer().then(function (buffer) {
            window.twinTilesDrawn += 1;
            return decode(buffer, mvt.coordinates === "local" ? null : mvt.tileIndex);
          });
        });
      };
    },
    decode: decode
  };
})();
"""
#: The CDN tags of pydeck's page template that a page without a basemap does not need.
_CDN_TAG = re.compile(r"<(?:script|link)\b[^>]*\b(?:src|href)=[\"']?https?://[^>]*>(?:\s*</script>)?", re.IGNORECASE)


def _rgba(colour: str, opacity: float = 1.0) -> _RGBA:
    """``#rrggbb`` and an opacity as deck.gl's [r, g, b, a] (0–255)."""
    value = colour.lstrip("#")
    return [int(value[i : i + 2], 16) for i in (0, 2, 4)] + [round(255 * max(0.0, min(1.0, opacity)))]


@dataclass(frozen=True, slots=True)
class LayerStyle:
    """What the server's MapLibre style says about drawing one layer, in deck.gl's terms."""

    layer: str
    fill: _RGBA | None = None
    line: _RGBA | None = None
    line_width: float = 1.0
    point: _RGBA | None = None
    radius: float = 4.0
    extrude_field: str | None = None
    min_zoom: int = 0
    max_zoom: int = 24

    @classmethod
    def from_style(cls, document: dict[str, Any], layer_id: str) -> LayerStyle:
        """Read from the style layers whose ``twin:layer`` metadata names the layer (see ``tiles.styles``)."""
        found: dict[str, Any] = {"layer": layer_id}
        zooms: list[tuple[int, int]] = []
        for entry in document.get("layers", []):
            if entry.get("metadata", {}).get("twin:layer") != layer_id or entry["id"].endswith("-count"):
                continue
            paint = entry.get("paint", {})
            zooms.append((int(entry.get("minzoom", 0)), int(entry.get("maxzoom", 25)) - 1))
            kind = entry["type"]
            if kind == "fill-extrusion":
                found["fill"] = _rgba(paint["fill-extrusion-color"], paint.get("fill-extrusion-opacity", 1.0))
                found["extrude_field"] = _extrude_field(paint.get("fill-extrusion-height"))
            elif kind == "fill":
                found["fill"] = _rgba(paint["fill-color"], paint.get("fill-opacity", 1.0))
            elif kind == "line":
                found["line"] = _rgba(paint["line-color"], paint.get("line-opacity", 1.0))
                found["line_width"] = float(paint.get("line-width", 1.0))
            elif kind == "circle":
                found["point"] = _rgba(paint["circle-color"], paint.get("circle-opacity", 1.0))
                found["radius"] = float(paint.get("circle-radius", 4.0))
        if not zooms:
            raise KeyError(f"the server's style does not draw a layer '{layer_id}'")
        found["min_zoom"] = min(z for z, _ in zooms)
        found["max_zoom"] = max(z for _, z in zooms)
        return cls(**found)

    def deck_props(self) -> dict[str, Any]:
        """The accessors and flags a GeoJsonLayer or MVTLayer takes (points sized in pixels, as MapLibre's)."""
        fill = self.fill or self.point or [0, 0, 0, 0]  # a point layer's circles are filled with its colour
        props: dict[str, Any] = {
            "filled": self.fill is not None or self.point is not None,
            "stroked": self.line is not None or self.point is not None,
            "get_fill_color": fill,
            "get_line_color": self.line or [255, 255, 255, 255],
            "get_line_width": self.line_width if self.line is not None else 0.5,
            "line_width_units": pdk.types.String("pixels"),
            # Twin's dense tiles send counts per grid cell as points with ``_count``: drawn bigger, as its style does.
            "get_point_radius": f"properties._count ? (properties._count > 100 ? 12 : 6) : {self.radius}",
            "point_radius_units": pdk.types.String("pixels"),
        }
        if self.extrude_field:
            props["extruded"] = True
            props["get_elevation"] = f"properties.{self.extrude_field} || 0"
        return props


def _extrude_field(expression: Any) -> str | None:
    """The field of a ``["coalesce", ["to-number", ["get", FIELD]], 0]`` height, as ``tiles.styles`` writes it."""
    if isinstance(expression, list):
        if len(expression) == 2 and expression[0] == "get" and isinstance(expression[1], str):
            return expression[1]
        for part in expression[1:]:
            name = _extrude_field(part)
            if name is not None:
                return name
    return None


@dataclass(slots=True)
class _Added:
    layer: str
    filter: str | None
    bbox: tuple[float, float, float, float] | None
    properties: tuple[str, ...] | None
    extra: dict[str, Any] = field(default_factory=dict)


class TwinMap:
    """Layers of one Twin server on a pydeck map, and a reader of its layers into geopandas.

    ``api_key`` is sent as ``X-API-Key`` on every request, the browser's tile
    requests included: it is then written into the page, so share such a
    page only with whoever may hold the key.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        max_features: int = MAX_FEATURES,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.max_features = max_features
        self._http = client or httpx.Client(timeout=timeout)
        if api_key:
            self._http.headers[API_KEY_HEADER] = api_key
        self._layers: list[_Added] = []
        self._style: dict[str, Any] | None = None

    # --- reading -------------------------------------------------------------

    def style(self) -> dict[str, Any]:
        """The server's MapLibre style, read once per map."""
        if self._style is None:
            self._style = self._get_json(f"{self.url}/styles/default")
        return self._style

    def layer_style(self, layer_id: str) -> LayerStyle:
        return LayerStyle.from_style(self.style(), layer_id)

    def layers(self) -> list[str]:
        """The ids of the server's layers (its OGC API collections)."""
        return [c["id"] for c in self._get_json(f"{self.url}/collections")["collections"]]

    def features(
        self,
        layer_id: str,
        *,
        filter: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        properties: tuple[str, ...] | list[str] | None = None,
        crs: str | None = None,
        limit: int | None = None,
        page_size: int = 1000,
    ) -> tuple[list[dict[str, Any]], str]:
        """The layer's features through ``/items`` (following ``next`` links) and the ``Content-Crs`` they are in."""
        params: dict[str, str] = {"limit": str(min(page_size, limit) if limit else page_size)}
        if filter is not None:
            params["filter"] = filter
        if bbox is not None:
            params["bbox"] = ",".join(repr(float(v)) for v in bbox)
        if properties is not None:
            params["properties"] = ",".join(properties)
        if crs is not None:
            params["crs"] = crs
        found: list[dict[str, Any]] = []
        content_crs = crs or CRS84
        for page, page_crs in self._pages(f"{self.url}/collections/{quote(layer_id)}/items", params):
            content_crs = page_crs or content_crs
            found.extend(page["features"])
            if limit is not None and len(found) >= limit:
                return found[:limit], content_crs
        return found, content_crs

    def to_geodataframe(
        self,
        layer_id: str,
        *,
        filter: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        properties: tuple[str, ...] | list[str] | None = None,
        crs: str | None = None,
        limit: int | None = None,
    ) -> gpd.GeoDataFrame:
        """A layer (or what ``filter``/``bbox`` select of it) as a GeoDataFrame indexed by feature id.

        Columns are the layer's properties as ``/items`` gives them (date-times
        become pandas timestamps in UTC, per the layer's schema); the CRS is the
        answer's ``Content-Crs``. A CRS whose first axis is north (EPSG:4326)
        arrives latitude first, as OGC requires, and is swapped to x/y, which
        is what geopandas means by any CRS.
        """
        features, content_crs = self.features(layer_id, filter=filter, bbox=bbox, properties=properties, crs=crs)
        target = pyproj.CRS.from_user_input(_crs_name(content_crs))
        schema = self._get_json(f"{self.url}/collections/{quote(layer_id)}/schema")["properties"]
        names = [n for n in schema if n != "geometry" and (properties is None or n in properties)]
        geometries = [shapely.geometry.shape(f["geometry"]) if f.get("geometry") else None for f in features]
        if target.axis_info and target.axis_info[0].direction.lower() == "north":
            geometries = list(shapely.transform(np.asarray(geometries, dtype=object), lambda xy: xy[:, ::-1]))
        rows = [{n: f["properties"].get(n) for n in names} for f in features]
        frame = pd.DataFrame(rows, columns=names, index=pd.Index([f["id"] for f in features], name="id"))
        for name in names:
            if schema[name].get("format") == "date-time":
                frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geometries, index=frame.index), crs=target)

    # --- drawing -------------------------------------------------------------

    def add(
        self,
        layer_id: str,
        *,
        filter: str | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        properties: tuple[str, ...] | list[str] | None = None,
        **deck_props: Any,
    ) -> TwinMap:
        """Draw a layer; ``deck_props`` override what the server's style says (e.g. ``opacity=0.5``)."""
        self.layer_style(layer_id)  # an unknown layer fails here, not when the page is drawn
        chosen = tuple(properties) if properties is not None else None
        self._layers.append(_Added(layer_id, filter, bbox, chosen, deck_props))
        return self

    def deck_layers(self) -> list[pdk.Layer]:
        return [self._deck_layer(added) for added in self._layers]

    def deck(self, **deck_args: Any) -> pdk.Deck:
        """The pydeck ``Deck``: no basemap (Twin's layers are the map); ``deck_args`` go to ``pydeck.Deck``."""
        args: dict[str, Any] = {
            "initial_view_state": self.initial_view(),
            "map_provider": None,
            "map_style": None,
            "tooltip": True,
        }
        return pdk.Deck(layers=self.deck_layers(), **{**args, **deck_args})

    def initial_view(self) -> pdk.ViewState:
        """Centred on the drawn layers' extent, zoomed to fit it in ~800 px but no less than every layer's
        minimum zoom (a layer outside its zoom range would not be drawn at all); tilted when something is 3D."""
        boxes = [self._extent(a.layer) for a in self._layers]
        known = [b for b in boxes if b is not None]
        if not known:
            lon, lat = self.style().get("center", [0.0, 0.0])
            return pdk.ViewState(longitude=lon, latitude=lat, zoom=self.style().get("zoom", 12))
        west, south = min(b[0] for b in known), min(b[1] for b in known)
        east, north = max(b[2] for b in known), max(b[3] for b in known)
        span = max(east - west, (north - south) * 1.5, 1e-6)
        fitted = math.log2(800 * 360 / (512 * span))
        styles = [self.layer_style(a.layer) for a in self._layers]
        zoom = min(max(fitted, *(st.min_zoom for st in styles)), TILE_MAX_ZOOM)
        pitch = 45 if any(st.extrude_field for st in styles) else 0
        return pdk.ViewState(longitude=(west + east) / 2, latitude=(south + north) / 2, zoom=zoom, pitch=pitch)

    def to_html(self, path: str | None = None, *, offline: bool = True) -> str:
        """The map as a standalone HTML page (written to ``path`` too, when given).

        ``offline`` inlines deck.gl and drops pydeck's CDN tags, so the page
        fetches nothing but Twin's tiles; ``offline=False`` keeps pydeck's page,
        which loads deck.gl from its CDN.
        """
        html: str = deck_to_html(
            self.deck().to_json(),
            as_string=True,
            notebook_display=False,
            offline=offline,
            css_background_color=self._background(),
            tooltip=True,
            # The JSON converter's functions: the page's ``twinTileFetch`` is the tile reader's.
            configuration="{functions: {twinTileFetch: window.TwinDeck.twinTileFetch}}",
        )
        if offline:
            html = _CDN_TAG.sub("", html)
        # The tile reader runs after deck.gl's bundle and before the page builds its deck.
        head, tail = html.rsplit("<script>", 1)
        html = f"{head}<script>{_TILE_READER}</script>\n<script>{tail}"
        if path is not None:
            with open(path, "w", encoding="utf-8") as out:
                out.write(html)
        return html

    def _repr_html_(self) -> str:
        """Jupyter shows the page in an iframe (as pydeck does), so the map draws without a widget extension."""
        from html import escape

        return f'<iframe width="100%" height="520" frameborder="0" srcdoc="{escape(self.to_html())}"></iframe>'

    # --- internals -----------------------------------------------------------

    def _deck_layer(self, added: _Added) -> pdk.Layer:
        style = self.layer_style(added.layer)
        common: dict[str, Any] = {"id": added.layer, "pickable": True, **style.deck_props()}
        if added.filter is None and added.bbox is None:
            template = f"{self.url}/collections/{quote(added.layer)}/tiles/WebMercatorQuad/{{z}}/{{y}}/{{x}}"
            if added.properties is not None:
                template += "?properties=" + ",".join(added.properties)
            headers = {API_KEY_HEADER: self.api_key} if self.api_key else {}
            return pdk.Layer(
                "MVTLayer",
                data=template,
                fetch=pdk.types.Function("twinTileFetch", headers=headers),
                binary=False,
                min_zoom=style.min_zoom,
                max_zoom=min(style.max_zoom, TILE_MAX_ZOOM),
                **{**common, **added.extra},
            )
        features, _ = self.features(
            added.layer,
            filter=added.filter,
            bbox=added.bbox,
            properties=added.properties,
            limit=self.max_features,
        )
        collection = {"type": "FeatureCollection", "features": features}
        return pdk.Layer("GeoJsonLayer", data=collection, **{**common, **added.extra})

    def _extent(self, layer_id: str) -> tuple[float, float, float, float] | None:
        extent = self._get_json(f"{self.url}/collections/{quote(layer_id)}").get("extent", {})
        boxes = extent.get("spatial", {}).get("bbox") or [None]
        return tuple(boxes[0]) if boxes[0] else None

    def _background(self) -> str:
        for entry in self.style().get("layers", []):
            if entry.get("type") == "background":
                return str(entry.get("paint", {}).get("background-color", "#ffffff"))
        return "#ffffff"

    def _get_json(self, url: str, params: dict[str, str] | None = None) -> Any:
        response = self._http.get(url, params=params, headers={"Accept": "application/json"})
        _raise_for(response)
        return response.json()

    def _pages(self, url: str, params: dict[str, str]) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Each page of an items answer, following its ``next`` link (a keyset cursor) to the end."""
        next_url: str | None = url
        query: dict[str, str] | None = params
        while next_url is not None:
            response = self._http.get(next_url, params=query, headers={"Accept": GEOJSON})
            _raise_for(response)
            page = response.json()
            crs = response.headers.get("Content-Crs", "").strip("<> ") or None
            yield page, crs
            next_url = next((link["href"] for link in page.get("links", []) if link.get("rel") == "next"), None)
            query = None  # a next link carries every parameter


def _crs_name(uri: str) -> str:
    """An OGC CRS URI as pyproj names it: ``…/OGC/1.3/CRS84`` → ``OGC:CRS84``, ``…/EPSG/0/9217`` → ``EPSG:9217``."""
    parts = uri.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-3] in ("EPSG", "OGC"):
        return f"{parts[-3]}:{parts[-1]}"
    return uri


def _raise_for(response: httpx.Response) -> None:
    """An HTTP error with the server's problem text (its ``detail``), which says what was wrong."""
    if response.is_success:
        return
    try:
        detail = response.json().get("detail") or response.text
    except ValueError:
        detail = response.text
    raise TwinRequestError(f"{response.request.method} {response.request.url} → {response.status_code}: {detail}")


class TwinRequestError(RuntimeError):
    """The server refused a request; the message carries its reason."""

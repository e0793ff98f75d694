"""Raster and terrain tiles of the catalog's raster layers, read with rio-tiler.

``RasterTilesAPI`` is a small router factory in the titiler style: it receives
a dependency that yields the ``RasterCatalog`` and registers thin handlers.
Reading and resampling are rio-tiler's (``Reader.tile``); rendering and the
terrain encodings are titiler.core's (``render_image``, the ``Terrarium`` and
``TerrainRGB`` algorithms). The handlers are plain ``def``: rasterio blocks,
so FastAPI runs them in its threadpool, off the event loop.

A tile outside the raster's bounds or zoom range is a 404 problem. MapLibre
asks only for tiles inside a TileJSON's ``bounds`` and zooms, and treats a 404
tile as absent without an error (for ``raster-dem`` that is flat ground at 0 m:
sea level, the right answer beside a coastal DEM); an empty tile would cost a
read and an encode for nothing.
"""

# No ``from __future__ import annotations``: FastAPI must see the per-instance
# ``Annotated[..., Depends(...)]`` aliases the factory builds inside its methods.

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

import morecantile
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from rio_tiler.colormap import cmap
from rio_tiler.errors import RioTilerError, TileOutsideBounds
from rio_tiler.models import ImageData
from titiler.core.algorithm import TerrainRGB, Terrarium
from titiler.core.resources.enums import ImageType
from titiler.core.utils import render_image

from layers.errors import InvalidInputError, NotFoundError
from layers.rasters import RasterCatalog, RasterKind, RasterLayer
from tiles.cache import BytesLRU, etag_matches
from tiles.grid import TileAddress, parse_address, tile_matrix_set, tile_spec

IMAGE_FORMATS = {"png": ImageType.png, "webp": ImageType.webp, "jpeg": ImageType.jpeg, "jpg": ImageType.jpeg}
TILE_CACHE_CONTROL = "public, max-age=3600"
DOCUMENT_CACHE_CONTROL = "public, max-age=60"

CatalogDependency = Callable[..., RasterCatalog]


class TerrainEncoding(StrEnum):
    TERRARIUM = "terrarium"
    MAPBOX = "mapbox"


class Resampling(StrEnum):
    NEAREST = "nearest"
    BILINEAR = "bilinear"
    CUBIC = "cubic"


# --- response models ---------------------------------------------------------


class Link(BaseModel):
    href: str
    rel: str
    type: str | None = None
    title: str | None = None
    templated: bool | None = None


#: Lists, not tuples, in the response models: a tuple becomes ``prefixItems``, which OpenAPI 3.0 (``/api``) lacks.
Box = Annotated[list[float], Field(min_length=4, max_length=4, description="west, south, east, north (WGS84)")]
Pair = Annotated[list[float], Field(min_length=2, max_length=2)]


class TileJSON(BaseModel):
    """TileJSON 3.0.0 (https://github.com/mapbox/tilejson-spec/tree/master/3.0.0), plus MapLibre's terrain keys."""

    model_config = ConfigDict(extra="allow")

    tilejson: str = "3.0.0"
    name: str | None = None
    description: str | None = None
    attribution: str | None = None
    scheme: str = "xyz"
    tiles: list[str]
    minzoom: int
    maxzoom: int
    bounds: Box
    center: Annotated[list[float], Field(min_length=3, max_length=3, description="lon, lat, zoom")]
    encoding: TerrainEncoding | None = Field(default=None, description="Terrain tiles only: how heights are coded.")
    tileSize: int | None = Field(default=None, description="Terrain tiles only: pixels per tile side.")


class RasterSummary(BaseModel):
    """A raster layer as clients see it: where it is, its zooms, how it is drawn, and links to its tiles."""

    id: str
    title: str
    kind: RasterKind
    description: str | None = None
    bounds: Box
    minzoom: int
    maxzoom: int
    band_count: int
    dtype: str
    value_range: Pair | None = None
    rescale: Pair | None = None
    colormap: str | None = None
    links: list[Link]


class RasterList(BaseModel):
    rasters: list[RasterSummary]
    links: list[Link]


# --- query parameter groups --------------------------------------------------


@dataclass
class RenderParams:
    """How to draw a raster tile; each defaults to the layer's hints."""

    rescale: Annotated[str | None, Query(description="low,high: values drawn from first to last colour.")] = None
    colormap_name: Annotated[str | None, Query(description="rio-tiler colormap name, e.g. terrain, viridis.")] = None
    tilesize: Annotated[
        int, Query(ge=256, le=512, multiple_of=256, description="Tile width and height: 256 or 512.")
    ] = 256
    resampling: Annotated[Resampling, Query(description="How pixels are resampled.")] = Resampling.BILINEAR
    f: Annotated[Literal["png", "webp", "jpeg", "jpg"] | None, Query(description="Image format.")] = None

    def interval(self, layer: RasterLayer) -> tuple[float, float] | None:
        if self.rescale is None:
            return layer.draw_rescale
        try:
            low, high = (float(v) for v in self.rescale.split(","))
        except ValueError:
            raise InvalidInputError("rescale must be two numbers: low,high", parameter="rescale") from None
        if not low < high:
            raise InvalidInputError("rescale must be two increasing numbers: low,high", parameter="rescale")
        return (low, high)

    def colormap(self, layer: RasterLayer) -> str | None:
        name = self.colormap_name or layer.draw_colormap
        if name is not None and name not in cmap.list():
            raise InvalidInputError(f"unknown colormap '{name}'", parameter="colormap_name")
        return name


@dataclass
class TerrainParams:
    """How to encode a terrain tile; 512 px is MapLibre's default for raster-dem sources."""

    encoding: Annotated[
        TerrainEncoding, Query(description="terrarium (Mapzen) or mapbox (terrain-RGB, 0.1 m steps).")
    ] = TerrainEncoding.TERRARIUM
    tilesize: Annotated[
        int, Query(ge=256, le=512, multiple_of=256, description="Tile width and height: 256 or 512.")
    ] = 512


# --- the factory -------------------------------------------------------------


class RasterTilesAPI:
    """Routes under ``/rasters``: the list, one layer, its tiles and TileJSON, and terrain for DEMs."""

    def __init__(
        self, catalog: CatalogDependency, *, cache_control: str = TILE_CACHE_CONTROL, cache_bytes: int = 64 * 2**20
    ) -> None:
        self._catalog = catalog
        self._cache_control = cache_control
        # Rendered tiles by ETag, which names the raster's fingerprint, the tile and the query: a raster
        # registered again under the same id has a new fingerprint, so a kept image is never stale.
        self._images: BytesLRU[tuple[bytes, str]] = BytesLRU(cache_bytes, lambda image: len(image[0]))
        self.router = APIRouter(tags=["Raster tiles"])
        self._add_documents()
        self._add_tiles()
        self._add_terrain()

    # --- documents -----------------------------------------------------------

    def _add_documents(self) -> None:
        catalog = Annotated[RasterCatalog, Depends(self._catalog)]

        @self.router.get(
            "/rasters",
            summary="Raster layers (DEM, orthophotos, flood depth)",
            name="raster_list",
            response_model_exclude_none=True,
        )
        def list_rasters(request: Request, response: Response, rasters: catalog) -> RasterList:
            response.headers["Cache-Control"] = DOCUMENT_CACHE_CONTROL
            return RasterList(
                rasters=[_summary(request, layer) for layer in rasters.list_rasters()],
                links=[Link(href=str(request.url_for("raster_list")), rel="self", type="application/json")],
            )

        @self.router.get(
            "/rasters/{raster_id}",
            summary="One raster layer",
            name="raster_layer",
            response_model_exclude_none=True,
        )
        def raster(raster_id: str, request: Request, response: Response, rasters: catalog) -> RasterSummary:
            response.headers["Cache-Control"] = DOCUMENT_CACHE_CONTROL
            return _summary(request, rasters.get(raster_id))

        @self.router.get(
            "/rasters/{raster_id}/tiles/{tms}/tilejson.json",
            summary="TileJSON 3.0 of a raster layer's image tiles",
            name="raster_tilejson",
            response_model_exclude_none=True,
        )
        def tilejson(raster_id: str, tms: str, request: Request, response: Response, rasters: catalog) -> TileJSON:
            layer = rasters.get(raster_id)
            tile_matrix_set(tms)
            template = _template(request, "raster_tile", raster_id=raster_id, tms=tms)
            response.headers["Cache-Control"] = DOCUMENT_CACHE_CONTROL
            return _tilejson(layer, template)

        @self.router.get(
            "/rasters/{raster_id}/terrain/{tms}/tilejson.json",
            summary="TileJSON 3.0 of a DEM's terrain tiles, for a MapLibre raster-dem source",
            name="terrain_tilejson",
            response_model_exclude_none=True,
        )
        def terrain_tilejson(
            raster_id: str,
            tms: str,
            request: Request,
            response: Response,
            rasters: catalog,
            params: Annotated[TerrainParams, Depends()],
        ) -> TileJSON:
            layer = _dem(rasters.get(raster_id))
            tile_matrix_set(tms)
            template = _template(request, "terrain_tile", raster_id=raster_id, tms=tms)
            response.headers["Cache-Control"] = DOCUMENT_CACHE_CONTROL
            document = _tilejson(layer, template)
            return document.model_copy(update={"encoding": params.encoding, "tileSize": params.tilesize})

    # --- tiles ---------------------------------------------------------------

    def _add_tiles(self) -> None:
        catalog = Annotated[RasterCatalog, Depends(self._catalog)]
        render = Annotated[RenderParams, Depends()]
        responses: dict[int | str, dict[str, Any]] = {
            200: {"content": {"image/png": {}, "image/webp": {}, "image/jpeg": {}}, "description": "A tile image"}
        }

        def tile(
            raster_id: str,
            tms: str,
            z: str,
            x: str,
            y: str,
            fmt: str | None,
            request: Request,
            rasters: catalog,
            params: RenderParams,
        ) -> Response:
            layer = rasters.get(raster_id)
            address = _address(layer, tms, z, x, y)
            image_type = IMAGE_FORMATS.get(fmt or params.f or "png")
            if image_type is None:
                raise NotFoundError(f"tile format '{fmt}' is not served; use png, webp or jpeg", parameter="f")
            etag = _etag(layer, request, address)
            if _not_modified(request, etag):
                return self._cached(Response(status_code=304), etag)
            kept = self._images.get(etag)
            if kept is None:
                rescale, colormap = params.interval(layer), params.colormap(layer)
                image = _read(layer, address, params.tilesize, params.resampling, indexes=None)
                one_band = image.count == 1
                kept = render_image(
                    image,
                    colormap=cmap.get(colormap) if colormap and one_band else None,
                    output_format=image_type,
                    rescale=[rescale] * image.count if rescale else None,
                )
                self._images.put(etag, kept)
            content, media_type = kept
            return self._cached(Response(content, media_type=media_type), etag)

        @self.router.get(
            "/rasters/{raster_id}/tiles/{tms}/{z}/{x}/{y}",
            summary="A raster tile: PNG, or the format a suffix (.png, .webp, .jpeg) or f= names",
            response_class=Response,
            responses=responses,
            name="raster_tile",
        )
        def raster_tile(
            raster_id: str, tms: str, z: str, x: str, y: str, request: Request, rasters: catalog, params: render
        ) -> Response:
            row, _, fmt = y.partition(".")
            return tile(raster_id, tms, z, x, row, fmt or None, request, rasters, params)

    def _add_terrain(self) -> None:
        catalog = Annotated[RasterCatalog, Depends(self._catalog)]

        @self.router.get(
            "/rasters/{raster_id}/terrain/{tms}/{z}/{x}/{y}.png",
            summary="A terrain tile: heights encoded as RGB (Terrarium, or Mapbox terrain-RGB)",
            response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "An RGB-encoded height tile"}},
            name="terrain_tile",
        )
        def terrain_tile(
            raster_id: str,
            tms: str,
            z: str,
            x: str,
            y: str,
            request: Request,
            rasters: catalog,
            params: Annotated[TerrainParams, Depends()],
        ) -> Response:
            layer = _dem(rasters.get(raster_id))
            address = _address(layer, tms, z, x, y)
            etag = _etag(layer, request, address)
            if _not_modified(request, etag):
                return self._cached(Response(status_code=304), etag)
            kept = self._images.get(etag)
            if kept is None:
                heights = _read(layer, address, params.tilesize, Resampling.BILINEAR, indexes=1)
                # Holes (nodata, or outside the raster at its edge) are sea level: MapLibre has no "no height".
                encode = (
                    Terrarium(nodata_height=0.0)
                    if params.encoding is TerrainEncoding.TERRARIUM
                    else TerrainRGB(interval=0.1, baseval=-10000.0, nodata_height=0.0)
                )
                kept = render_image(encode(heights), output_format=ImageType.png, add_mask=False)
                self._images.put(etag, kept)
            content, media_type = kept
            return self._cached(Response(content, media_type=media_type), etag)

    def _cached(self, response: Response, etag: str) -> Response:
        response.headers["ETag"] = etag
        response.headers["Cache-Control"] = self._cache_control
        return response


# --- helpers -----------------------------------------------------------------


def _address(layer: RasterLayer, tms_id: str, z: str, x: str, y: str) -> TileAddress:
    """Path parts to a tile of the layer: not integers → 400; outside the grid, zooms or bounds → 404."""
    address = parse_address(tms_id, z, x, y)
    tile_spec(address)  # inside the grid
    zoom = address.z
    if not layer.minzoom <= zoom <= layer.maxzoom:
        raise NotFoundError(
            f"raster layer '{layer.id}' has tiles from zoom {layer.minzoom} to {layer.maxzoom}, not {zoom}",
            raster=layer.id,
        )
    tms = tile_matrix_set(tms_id)
    west, south, east, north = tms.bounds(morecantile.Tile(address.x, address.y, zoom))
    lw, ls, le, ln = layer.bounds
    if west >= le or east <= lw or south >= ln or north <= ls:
        raise NotFoundError(f"tile {address.key} is outside raster layer '{layer.id}'", raster=layer.id)
    return address


def _read(
    layer: RasterLayer, address: TileAddress, tilesize: int, resampling: Resampling, indexes: int | None
) -> ImageData:
    try:
        with layer.reader() as cog:
            return cog.tile(
                address.x,
                address.y,
                address.z,
                tilesize=tilesize,
                indexes=indexes,
                resampling_method=resampling.value,
                reproject_method=resampling.value,
                **layer.read_options,
            )
    except TileOutsideBounds as exc:
        raise NotFoundError(f"tile {address.z}/{address.x}/{address.y} is outside raster layer '{layer.id}'") from exc
    except (RioTilerError, OSError) as exc:
        # The message may name server paths: log it, answer with a request id only.
        raise RuntimeError(f"reading raster layer '{layer.id}' failed") from exc


def _dem(layer: RasterLayer) -> RasterLayer:
    if layer.kind is not RasterKind.DEM:
        raise NotFoundError(f"raster layer '{layer.id}' is a {layer.kind.value} raster, not a DEM: it has no terrain")
    return layer


def _etag(layer: RasterLayer, request: Request, address: TileAddress) -> str:
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    key = f"{layer.fingerprint}|{request.url.path}|{query}"
    return '"' + hashlib.blake2b(key.encode(), digest_size=12).hexdigest() + '"'


def _not_modified(request: Request, etag: str) -> bool:
    return etag_matches(request.headers.get("if-none-match"), etag)


def _template(request: Request, route: str, *, raster_id: str, tms: str, query: bool = True) -> str:
    """The tile URL template, with the TileJSON request's own query (rescale, encoding…) passed on."""
    row = "{y}.png" if route == "raster_tile" else "{y}"
    url = (
        str(request.url_for(route, raster_id=raster_id, tms=tms, z="{z}", x="{x}", y=row))
        .replace("%7B", "{")
        .replace("%7D", "}")
    )
    return f"{url}?{request.url.query}" if query and request.url.query else url


def _tilejson(layer: RasterLayer, template: str) -> TileJSON:
    west, south, east, north = layer.bounds
    return TileJSON(
        name=layer.title,
        description=layer.description,
        tiles=[template],
        minzoom=layer.minzoom,
        maxzoom=layer.maxzoom,
        bounds=[west, south, east, north],
        center=[(west + east) / 2, (south + north) / 2, max(layer.minzoom, min(layer.maxzoom, 12))],
    )


def _summary(request: Request, layer: RasterLayer) -> RasterSummary:
    def url(route: str, **params: str) -> str:
        return str(request.url_for(route, raster_id=layer.id, **params))

    links = [
        Link(href=url("raster_layer"), rel="self", type="application/json", title=layer.title),
        Link(
            href=url("raster_tilejson", tms="WebMercatorQuad"),
            rel="tiles",
            type="application/json",
            title="TileJSON of the image tiles",
        ),
        Link(
            href=_template(request, "raster_tile", raster_id=layer.id, tms="WebMercatorQuad", query=False),
            rel="item",
            type="image/png",
            title="Image tiles",
            templated=True,
        ),
    ]
    if layer.kind is RasterKind.DEM:
        links.append(
            Link(
                href=url("terrain_tilejson", tms="WebMercatorQuad"),
                rel="terrain",
                type="application/json",
                title="TileJSON of the terrain tiles (Terrarium), for a MapLibre raster-dem source",
            )
        )
    return RasterSummary(
        id=layer.id,
        title=layer.title,
        kind=layer.kind,
        description=layer.description,
        bounds=list(layer.bounds),
        minzoom=layer.minzoom,
        maxzoom=layer.maxzoom,
        band_count=layer.band_count,
        dtype=layer.dtype,
        value_range=list(layer.value_range) if layer.value_range else None,
        rescale=list(layer.draw_rescale) if layer.draw_rescale else None,
        colormap=layer.draw_colormap,
        links=links,
    )

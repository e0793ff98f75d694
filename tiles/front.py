"""Layer tiles answered before routing: the hot path of a map, kept as short as serving bytes from a dict.

A map asks for hundreds of tiles a minute, nearly all already cached. Going
through the framework (route matching over every OGC route, dependency
resolution, parameter parsing) costs several times what answering a cached tile
costs, and about a tenth of building a dense one. So this ASGI middleware
recognises a layer's vector-tile URL and answers it itself: from
``TileService.cached`` when it can (no database, no thread), else from
``TileService.tile`` in a worker thread. Anything else — an unusual parameter,
a tile whose build fails (a layer that does not exist, a zoom out of range, a
property the layer lacks) — goes on to the routes, which answer exactly as
they would have, errors included. Both read ``properties`` with
``property_list``, so a tile has one cache key whichever of them answers.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, unquote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from layers.store import Reader
from tiles.grid import TileAddress
from tiles.service import TileRequest, TileService, property_list
from tiles.styles import MVT

_LAYER_TILE = re.compile(r"^/collections/([^/]+)/tiles/(WebMercatorQuad)/([0-9]{1,2})/([0-9]{1,9})/([0-9]{1,9})$")


class TileFront:
    """Serves single-collection tiles straight from the ``TileService``; passes everything else on."""

    def __init__(
        self,
        app: ASGIApp,
        service: TileService,
        reader_of: Callable[[Request], Awaitable[Reader | None]],
    ) -> None:
        """``reader_of`` gives the store as the request's principal sees it (None before the store is
        open); a credential it refuses raises, and the route then answers the refusal."""
        self.app = app
        self.service = service
        self.reader_of = reader_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            match = _LAYER_TILE.match(scope["path"])
            if match is not None and await self._answer(scope, send, match):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, send: Send, match: re.Match[str]) -> bool:
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if any(name != "properties" for name, _ in query):
            return False  # let the route answer (or refuse) it
        try:
            store = await self.reader_of(Request(scope))
        except Exception:
            return False  # a credential refused: the route answers 401 as it does for every path
        if store is None:
            return False
        layer_id = unquote(match.group(1))
        wanted = property_list(dict(query).get("properties"))  # the last one, as the route takes it
        z, row, col = int(match.group(3)), int(match.group(4)), int(match.group(5))
        request = TileRequest(TileAddress(match.group(2), z, col, row), (layer_id,), wanted, store.scope.key)
        tile = self.service.cached(store, request)
        if tile is None:
            try:
                tile = await run_in_threadpool(self.service.tile, store, request)
            except Exception:
                return False  # the route tries again and answers with what is wrong
        asked = dict(scope["headers"])
        out = [(name.lower().encode(), value.encode()) for name, value in tile.headers().items()]
        if tile.matches(asked.get(b"if-none-match", b"").decode("latin-1")):
            await _respond(send, 304, out, b"")
            return True
        if not tile.raw:
            await _respond(send, 204, out, b"")
            return True
        body = tile.raw
        if b"gzip" in asked.get(b"accept-encoding", b""):
            zipped = tile.gzip
            body = zipped if zipped is not None else await run_in_threadpool(self.service.gzipped, request, tile)
            out.append((b"content-encoding", b"gzip"))
        out += [(b"content-type", MVT.encode()), (b"content-length", str(len(body)).encode())]
        await _respond(send, 200, out, body)
        return True


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

"""HTML pages of the OGC API, for people browsing it: plain tables and a small map preview.

The preview is an inline SVG of the page's geometries, drawn in lon/lat scaled
by cos(latitude): no script, no tiles, nothing fetched from elsewhere. Every
value is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import shapely
from shapely.geometry.base import BaseGeometry

from layers.features import Feature

HTML = "text/html; charset=utf-8"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
th{background:#f3f3f3}a{color:#08519c}svg{border:1px solid #ccc;background:#eef4f8}
"""


def page(title: str, body: str, links: Sequence[dict[str, str]] = ()) -> str:
    nav = " · ".join(
        f'<a href="{escape(link["href"])}">{escape(link.get("title") or link["rel"])}</a>'
        for link in links
        if link.get("type", "").startswith(("application/json", "application/geo+json"))
    )
    return (
        f'<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"{f'<p>JSON: {nav}</p>' if nav else ''}{body}</body></html>"
    )


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return escape(value.isoformat())
    return escape(str(value))


def _html_link(href: str) -> str:
    """The same link, asking for HTML (``f`` set once, whatever it was)."""
    parts = urlsplit(href)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "f"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("f", "html")])))


def landing(document: dict[str, Any]) -> str:
    items = "".join(
        f'<li><a href="{escape(_html_link(link["href"]))}">{escape(link.get("title") or link["rel"])}</a></li>'
        for link in document["links"]
        if link["rel"] in ("data", "conformance")
    )
    api = "".join(
        f'<li><a href="{escape(link["href"])}">{escape(link.get("title") or link["rel"])}</a></li>'
        for link in document["links"]
        if link["rel"] in ("service-desc", "service-doc")
    )
    return page(document["title"], f"<p>{escape(document['description'])}</p><ul>{items}{api}</ul>", document["links"])


def conformance(classes: Sequence[str]) -> str:
    return page("Conformance", "<ul>" + "".join(f"<li>{escape(c)}</li>" for c in classes) + "</ul>")


def collections(document: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr><td><a href="{escape(_html_link(c["links"][0]["href"]))}">{escape(c["title"])}</a></td>'
        f"<td>{escape(c['id'])}</td><td>{escape(c.get('twin:kind', ''))}</td></tr>"
        for c in document["collections"]
    )
    return page(
        "Collections", f"<table><tr><th>Layer</th><th>id</th><th>kind</th></tr>{rows}</table>", document["links"]
    )


def collection(document: dict[str, Any]) -> str:
    links = {link["rel"]: link["href"] for link in document["links"]}
    bbox = document.get("extent", {}).get("spatial", {}).get("bbox", [[]])[0]
    body = (
        f"<p>{escape(document.get('description', ''))}</p>"
        f'<p><a href="{escape(_html_link(links["items"]))}">Features</a></p>'
        f"<p>Extent: {escape(', '.join(f'{v:.5f}' for v in bbox))}</p>"
    )
    return page(document["title"], body, document["links"])


def features(title: str, found: Sequence[Feature], names: Sequence[str], links: Sequence[dict[str, str]]) -> str:
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{f.id}</td>" + "".join(f"<td>{_value(f.properties.get(n))}</td>" for n in names) + "</tr>"
        for f in found
    )
    pager = "".join(
        f'<a href="{escape(_html_link(link["href"]))}">{escape(link.get("title") or link["rel"])}</a> '
        for link in links
        if link["rel"] == "next"
    )
    body = f"{preview([f.geometry for f in found])}<table><tr><th>id</th>{head}</tr>{rows}</table><p>{pager}</p>"
    return page(title, body, links)


def preview(geometries: Sequence[BaseGeometry], width: int = 640, height: int = 360) -> str:
    """An SVG of the geometries, scaled to fit; east is right, north is up."""
    if not geometries:
        return ""
    west, south, east, north = shapely.total_bounds(list(geometries))
    stretch = math.cos(math.radians((south + north) / 2)) or 1.0
    span_x, span_y = max((east - west) * stretch, 1e-9), max(north - south, 1e-9)
    scale = 0.9 * min(width / span_x, height / span_y)

    def project(coords: Any) -> Any:
        coords = coords.copy()
        coords[:, 0] = (coords[:, 0] - west) * stretch * scale + width * 0.05
        coords[:, 1] = height - ((coords[:, 1] - south) * scale + height * 0.05)
        return coords

    shapes = []
    for geometry in shapely.transform(list(geometries), project):
        for part in shapely.get_parts(geometry):
            shapes.append(_svg(part))
    return f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(shapes)}</svg>'


def _svg(geometry: BaseGeometry) -> str:
    if geometry.geom_type == "Point":
        return f'<circle cx="{geometry.x:.1f}" cy="{geometry.y:.1f}" r="3" fill="#e6550d"/>'
    if geometry.geom_type == "LineString":
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in geometry.coords)
        return f'<polyline points="{points}" fill="none" stroke="#3182bd" stroke-width="1.5"/>'
    if geometry.geom_type == "Polygon":
        rings = [geometry.exterior, *geometry.interiors]
        path = " ".join("M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in ring.coords) + " Z" for ring in rings)
        return f'<path d="{path}" fill="#9ecae1" fill-opacity="0.6" stroke="#08519c" fill-rule="evenodd"/>'
    return ""

"""Links as OGC API documents carry them (OGC API – Common: ``href``, ``rel``, ``type``, ``title``)."""

from __future__ import annotations


def link(href: str, rel: str, media_type: str, title: str | None = None) -> dict[str, str]:
    """One link object; ``title`` only when there is one."""
    found = {"href": href, "rel": rel, "type": media_type}
    if title:
        found["title"] = title
    return found

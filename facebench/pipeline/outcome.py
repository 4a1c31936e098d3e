"""A cell with nothing to score: every pair (1:1), or every search (1:N), touches an item that
failed to acquire. Its metrics would describe no comparison at all (every pair a reject, every
search a miss), so such a cell is *failed* with a reason naming the failures, never "ok"; what it
found (the failures to acquire with their reasons, the settings) is kept in its details.
"""

from __future__ import annotations

from typing import Any


class NothingScored(Exception):
    """Raised by a pipeline when nothing could be scored; ``partial`` holds the record's
    ``details`` and ``dataset`` the cell found (the runner keeps them, without metrics)."""

    def __init__(self, message: str, partial: dict[str, Any]) -> None:
        super().__init__(message)
        self.partial = partial


def _first(entries: list[dict[str, Any]], key: str) -> str:
    if not entries:
        return ""
    e = entries[0]
    return f" (first: {key} {e.get(key)}: {e.get('reason') or 'no reason'})"


def failures(fta_images: list[dict[str, Any]], images: int,
             templates: dict[str, Any] | None) -> str:
    """One line on what failed to acquire: images, and templates when the items are pooled."""
    text = f"{len(fta_images)} of {images} images failed to acquire{_first(fta_images, 'image')}"
    if templates is not None:
        failed = templates.get("fta_templates_list") or []
        text += (f"; {len(failed)} of {templates.get('templates')} templates failed to "
                 f"acquire{_first(failed, 'template')}")
    return text


def nothing_scored(why: str, fta_images: list[dict[str, Any]], images: int,
                   details: dict[str, Any], dataset: dict[str, Any] | None = None
                   ) -> NothingScored:
    """The failure of a cell with nothing to score (``why``: e.g. "every one of the 210 pairs
    has a side that failed to acquire"): the message names what failed to acquire and the first
    reason; ``details`` (with ``templates`` when the items are pooled) and ``dataset`` are
    kept."""
    templates = details.get("templates")
    partial: dict[str, Any] = {"details": details}
    if dataset is not None:
        partial["dataset"] = dataset
    return NothingScored(
        f"nothing to score: {why}; {failures(fta_images, images, templates)}; the cell's "
        "details list every failure and its reason", partial)

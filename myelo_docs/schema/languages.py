"""The languages we have patient text for: one folder each under myelo_docs/content/
(and, for check-content, a hospital's own content folder). A leaf of the schema
stage, so the record, brand and JSON Schema can name the languages without
loading any text."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from myelo_docs.assets import content_dir


def language_folders(extra_dir: Path | None = None) -> dict[str, Path]:
    """Language code -> folder; a hospital's folder overrides ours."""
    folders = dict(_shipped(content_dir()))
    if extra_dir is not None:
        folders.update(_folders_in(extra_dir))  # a site's may change: read each time
    return folders


def _folders_in(root: Path) -> tuple[tuple[str, Path], ...]:
    """The language folders (with a labels.toml) in root."""
    if not root.is_dir():
        return ()
    return tuple((sub.name, sub) for sub in sorted(root.iterdir())
                 if (sub / "labels.toml").is_file())


_shipped = cache(_folders_in)  # ours ship with the package and do not change while it runs


def available_languages(extra_dir: Path | None = None) -> list[str]:
    return sorted(language_folders(extra_dir))

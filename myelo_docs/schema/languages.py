"""The languages we have patient text for: one folder each under myelo_docs/content/
(and, for check-content, a hospital's own content folder). A leaf of the schema
stage, so the record, brand and JSON Schema can name the languages without
loading any text."""

from __future__ import annotations

from pathlib import Path

from myelo_docs.assets import content_dir


def language_folders(extra_dir: Path | None = None) -> dict[str, Path]:
    """Language code -> folder; a hospital's folder overrides ours."""
    folders: dict[str, Path] = {}
    for root in (content_dir(), extra_dir):
        if root is None or not root.is_dir():
            continue
        for sub in sorted(root.iterdir()):
            if (sub / "labels.toml").is_file():
                folders[sub.name] = sub
    return folders


def available_languages(extra_dir: Path | None = None) -> list[str]:
    return sorted(language_folders(extra_dir))

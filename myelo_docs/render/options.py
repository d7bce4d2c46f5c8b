"""The settings a renderer is built from, kept apart from render.py so that
front ends can hold them without importing WeasyPrint (a slow start-up)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from myelo_docs.render.engine import Renderer


@dataclass(frozen=True)
class RenderSettings:
    """The CLI's --brand, --protocol, --font-dir and --paper; picklable, so each
    worker process (batch, HTTP) builds its own warm renderer from them."""

    brand: Path | None = None
    protocol: Path | None = None
    font_dir: Path | None = None
    paper: str | None = None

    def renderer(self) -> Renderer:
        from myelo_docs.render.engine import get_renderer

        return get_renderer(self.brand, self.protocol, self.font_dir, self.paper)

"""Where the bundled templates and fonts live.

In a checkout they are the top-level ``templates/`` and ``fonts/`` folders; an
installed wheel carries them as ``myelo_docs/_assets/``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def _asset_root() -> Path:
    installed = PACKAGE_DIR / "_assets"
    if (installed / "templates").is_dir():
        return installed
    checkout = PACKAGE_DIR.parent
    if (checkout / "templates").is_dir():
        return checkout
    raise RuntimeError("myelo-docs is installed without its templates/ and fonts/ folders")


def templates_dir() -> Path:
    return _asset_root() / "templates"


def fonts_dir() -> Path:
    return _asset_root() / "fonts"


def content_dir() -> Path:
    return PACKAGE_DIR / "content"


def builtin_brands_dir() -> Path:
    return PACKAGE_DIR / "brands"


def default_protocol_file() -> Path:
    return PACKAGE_DIR / "protocol" / "default.toml"

"""A WeasyPrint URL fetcher that serves only our own asset files.

Whatever a text field contains, rendering must never reach the network or
read a file outside the folders we name (templates, fonts, the brand logo).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from weasyprint.urls import URLFetcher, URLFetcherResponse

_MIME = {
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".css": "text/css",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".ttc": "font/collection",
    ".otc": "font/collection",
}


class RefusedURL(ValueError):
    pass


class LockedFetcher(URLFetcher):
    """Serves file: URLs inside the allowed folders or files; refuses all else."""

    def __init__(self, folders: list[Path], files: list[Path] | None = None):
        super().__init__(allowed_protocols={"file"}, allow_redirects=False)
        self._folders = [folder.resolve() for folder in folders]
        self._files = {path.resolve() for path in files or []}

    def allows(self, path: Path) -> bool:
        return path in self._files or any(path.is_relative_to(f) for f in self._folders)

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise RefusedURL("only bundled files may be loaded")
        path = Path(unquote(parts.path)).resolve()
        suffix = path.suffix.lower()
        if suffix not in _MIME or not self.allows(path) or not path.is_file():
            raise RefusedURL("only bundled files may be loaded")
        return URLFetcherResponse(
            url, path.read_bytes(), headers={"Content-Type": _MIME[suffix]}
        )

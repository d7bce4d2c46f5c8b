"""Which versions of everything made a PDF, kept in the PDF's metadata.

So a hospital can answer "which instructions did this patient get?" from the
file alone. Each part is a short SHA-256 of what was actually used: the
patient-text files of the language, every template file, the brand (its
settings and logo bytes), the protocol settings after defaults were merged,
and the fonts. No patient data goes in here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from myelo_docs.about import __version__
from myelo_docs.assets import templates_dir
from myelo_docs.content.loader import CONTENT_FILES, Content
from myelo_docs.render.fonts import FontSet
from myelo_docs.schema.brand import Brand
from myelo_docs.schema.protocol import Protocol

HASH_LENGTH = 12
# PDF Info dictionary keys, in the order `myelo-docs inspect` prints them.
KEYS = {
    "MyeloDocsKind": "document",
    "MyeloDocsType": "myelogram type",
    "MyeloDocsLanguage": "language",
    "MyeloDocsVersion": "made by myelo-docs",
    "MyeloDocsContent": "patient text (hash)",
    "MyeloDocsContentReviewed": "patient text last reviewed",
    "MyeloDocsContentOverrides": "site's text overrides (hash)",  # absent: none
    "MyeloDocsTemplates": "templates (hash)",
    "MyeloDocsBrand": "brand (hash)",
    "MyeloDocsProtocolVersion": "protocol version",
    "MyeloDocsProtocol": "protocol settings (hash)",
    "MyeloDocsFonts": "fonts (hash)",
    "MyeloDocsCode": "scannable code on every page",
    "MyeloDocsRenderPath": "rendered from",  # "template" (the fast path); absent: in full
}
CODE_FORMAT = "QR: MYELO|kind|page/total|MRN"


def short_hash(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        # length-prefixed, so ("ab", "c") and ("a", "bc") differ
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:HASH_LENGTH]


def _files(paths: Iterable[Path], root: Path) -> Iterable[bytes]:
    for path in sorted(paths):
        yield path.relative_to(root).as_posix().encode()
        yield path.read_bytes()


def content_hash(content: Content) -> str:
    folder = content.folder
    return short_hash(_files((folder / f"{name}.toml" for name in CONTENT_FILES), folder))


def templates_hash() -> str:
    root = templates_dir()
    return short_hash(_files((p for p in root.rglob("*") if p.is_file()), root))


def settings_bytes(model: Brand | Protocol) -> bytes:
    return json.dumps(model.model_dump(mode="json"), sort_keys=True).encode()


def brand_hash(brand: Brand) -> str:
    return short_hash([settings_bytes(brand), brand.logo_path.read_bytes()])


def protocol_hash(protocol: Protocol) -> str:
    return short_hash([settings_bytes(protocol)])


def fonts_hash(fonts: FontSet) -> str:
    files = sorted({path for face in fonts.faces for path in (face.regular, face.bold)})
    return short_hash(path.read_bytes() for path in files)


def renderer_provenance(brand: Brand, protocol: Protocol, fonts: FontSet) -> dict[str, str]:
    """The parts that are the same for every document of one renderer."""
    return {
        "MyeloDocsVersion": __version__,
        "MyeloDocsTemplates": templates_hash(),
        "MyeloDocsBrand": brand_hash(brand),
        "MyeloDocsProtocolVersion": protocol.version,
        "MyeloDocsProtocol": protocol_hash(protocol),
        "MyeloDocsFonts": fonts_hash(fonts),
    }


def overrides_hash(content: Content) -> str:
    """The site's text files applied over ours (their names and bytes)."""
    root = content.overrides_root
    assert root is not None
    return short_hash(_files(content.overrides, root))


def content_provenance(content: Content) -> dict[str, str]:
    values = {
        "MyeloDocsContent": content_hash(content),
        "MyeloDocsContentReviewed": content.last_reviewed.isoformat(),
    }
    if content.overrides:
        values["MyeloDocsContentOverrides"] = overrides_hash(content)
    return values


def add_info(pdf: object, values: dict[str, str]) -> None:
    """Put the values into a pydyf.PDF's Info dictionary before it is written."""
    import pydyf

    info = pdf.info  # type: ignore[attr-defined]
    for key, value in values.items():
        info[key] = pydyf.String(value)

"""myelo-docs: the handout and discharge packet a myelogram patient takes home."""

from myelo_docs.about import RELEASE_DATE as RELEASE_DATE
from myelo_docs.about import __version__ as __version__
from myelo_docs.render.engine import Document, Renderer, get_renderer, render_handout, render_packet
from myelo_docs.schema.errors import (
    ConfigError,
    MissingGlyphError,
    MyeloDocsError,
    OutputError,
    Problem,
    RecordError,
    SelfCheckError,
)
from myelo_docs.schema.json_schema import record_schema
from myelo_docs.schema.record import Medication, MyelogramType, PacketRecord, validate_record

__all__ = [
    "ConfigError",
    "Document",
    "Medication",
    "MissingGlyphError",
    "MyeloDocsError",
    "MyelogramType",
    "OutputError",
    "PacketRecord",
    "Problem",
    "RecordError",
    "Renderer",
    "SelfCheckError",
    "get_renderer",
    "record_schema",
    "render_handout",
    "render_packet",
    "validate_record",
]

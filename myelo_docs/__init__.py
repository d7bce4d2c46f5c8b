"""myelo-docs: the handout and discharge packet a myelogram patient takes home."""

__version__ = "0.1.0"
RELEASE_DATE = "2026-11-30"  # of this version (the FHIR CapabilityStatement says it)

from myelo_docs.render.engine import Document, Renderer, get_renderer, render_handout, render_packet  # noqa: E402
from myelo_docs.schema.errors import (  # noqa: E402
    ConfigError,
    MissingGlyphError,
    MyeloDocsError,
    OutputError,
    Problem,
    RecordError,
    SelfCheckError,
)
from myelo_docs.schema.json_schema import record_schema  # noqa: E402
from myelo_docs.schema.record import Medication, MyelogramType, PacketRecord, validate_record  # noqa: E402

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

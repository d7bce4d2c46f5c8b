"""The release: its version and date (a leaf module, so any stage can import it)."""

__version__ = "0.1.0"
RELEASE_DATE = "2026-11-30"  # of this version (the FHIR CapabilityStatement says it)

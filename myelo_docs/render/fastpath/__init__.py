"""Fast path: per-patient text drawn straight into a pre-rendered packet template."""

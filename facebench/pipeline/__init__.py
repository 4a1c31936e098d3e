"""Per-cell pipelines: verification (align → embed → score → metrics) and efficiency."""

"""facebench: benchmark face-recognition models for accuracy and cost in one run."""

__version__ = "0.1.0"

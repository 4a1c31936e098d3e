"""Verification datasets: pair lists with labels and folds over an image root."""

from facebench.datasets.pairs import DatasetError, PairSet, load_pairs

__all__ = ["DatasetError", "PairSet", "load_pairs"]

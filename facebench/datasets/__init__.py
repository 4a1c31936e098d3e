"""Datasets: spec models (:mod:`.specs`), pair sets and identity sets, and their loaders."""

from facebench.datasets.load import load_pairs, load_spec_identities
from facebench.datasets.pairs import DatasetError, PairSet

__all__ = ["DatasetError", "PairSet", "load_pairs", "load_spec_identities"]

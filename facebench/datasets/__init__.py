"""Datasets: spec models (:mod:`.specs`), pair sets and identity sets, and their loaders."""

from facebench.datasets.load import (
    load_pairs,
    load_search_set,
    load_spec_identities,
    load_spec_ijb,
)
from facebench.datasets.pairs import DatasetError, PairSet

__all__ = ["DatasetError", "PairSet", "load_pairs", "load_search_set", "load_spec_identities",
           "load_spec_ijb"]

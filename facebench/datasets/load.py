"""Turn a dataset spec (:mod:`facebench.datasets.specs`) into data: verification pairs of any
kind, or the identity-labelled images of an identity kind. Nothing in the package imports this
module back except its ``__init__``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from facebench.datasets.identity import (
    IdentitySet,
    draw_pairs,
    load_identity_file,
    load_identity_folder,
)
from facebench.datasets.insightface_bin import load_insightface_bin
from facebench.datasets.lfw import load_lfw_pairs
from facebench.datasets.pair_csv import load_pair_csv
from facebench.datasets.pairs import DatasetError, PairSet
from facebench.datasets.specs import AnyDataset, IdentityDataset
from facebench.paths import default_cache_dir


def load_spec_identities(spec: IdentityDataset) -> IdentitySet:
    """The identity-labelled images an ``identity_folder`` / ``identity_file`` spec declares."""
    if spec.kind == "identity_folder":
        return load_identity_folder(spec.images, spec.extensions, spec.min_images)
    if spec.kind == "identity_file":
        return load_identity_file(spec.identities, spec.images, spec.min_images)
    raise DatasetError(f"dataset kind {spec.kind!r} has no identity labels; use "
                       "identity_folder or identity_file")


def _drawn_pairs(spec: IdentityDataset, cache: Path) -> PairSet:
    """Verification pairs drawn from an identity spec; the CSV goes to ``pairs_out`` or to the
    cache under a key of the identities and the draw's settings."""
    ids = load_spec_identities(spec)
    out = spec.pairs_out
    if out is None:
        key = hashlib.sha256(
            f"{ids.checksum}:{spec.min_images}:{spec.n_genuine}:{spec.n_impostor}:{spec.folds}:"
            f"{spec.seed}".encode()
        ).hexdigest()[:16]
        out = cache / "pairs" / f"{ids.name}-{key}.csv"
    return draw_pairs(ids, spec.n_genuine, spec.n_impostor, spec.folds, spec.seed, out=out)


def load_pairs(spec: AnyDataset, cache_dir: str | Path | None = None) -> PairSet:
    """The verification pairs a suite protocol's dataset declares (drawn for identity kinds).
    ``cache_dir`` (default: facebench's cache) holds extracted ``.bin`` images and drawn pair
    CSVs unless the spec names a place."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if spec.kind == "lfw_pairs":
        return load_lfw_pairs(spec.pairs, spec.images, ext=spec.ext, max_folds=spec.max_folds)
    if spec.kind == "pair_csv":
        return load_pair_csv(spec.pairs, spec.images)
    if spec.kind == "insightface_bin":
        extract = spec.extract_dir or cache / "insightface_bin"
        return load_insightface_bin(spec.path, extract, folds=spec.folds)
    if spec.kind in ("identity_folder", "identity_file"):
        return _drawn_pairs(spec, cache)
    raise DatasetError(f"unknown dataset kind {spec.kind!r}")

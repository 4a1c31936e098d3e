"""Turn a dataset spec (:mod:`facebench.datasets.specs`) into data: verification pairs of any
kind (template pairs for ijb), the identity-labelled images of an identity kind, or what a 1:N
protocol searches (:class:`~facebench.datasets.sets.SearchSet`). Nothing in the package imports
this module back except its ``__init__``."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from facebench.datasets.identity import (
    IdentitySet,
    draw_pairs,
    enrollment_split,
    load_distractors,
    load_identity_file,
    load_identity_folder,
)
from facebench.datasets.ijb import IjbSet, load_ijb
from facebench.datasets.insightface_bin import load_insightface_bin
from facebench.datasets.lfw import load_lfw_pairs
from facebench.datasets.pair_csv import load_pair_csv
from facebench.datasets.pairs import DatasetError, PairSet
from facebench.datasets.sets import SearchSet, Split, TemplateFaces, TemplatePairSet
from facebench.datasets.specs import AnyDataset, IdentityDataset, IjbDataset
from facebench.faces.acquire import GivenLandmarks
from facebench.metrics.templates import TemplatePooling
from facebench.paths import default_cache_dir


def load_spec_identities(spec: IdentityDataset) -> IdentitySet:
    """The identity-labelled images an ``identity_folder`` / ``identity_file`` spec declares."""
    if spec.kind == "identity_folder":
        return load_identity_folder(spec.images, spec.extensions, spec.min_images)
    if spec.kind == "identity_file":
        return load_identity_file(spec.identities, spec.images, spec.min_images)
    raise DatasetError(f"dataset kind {spec.kind!r} has no identity labels; use "
                       "identity_folder or identity_file")


def load_spec_ijb(spec: IjbDataset) -> IjbSet:
    """The faces, templates, 1:1 pairs and 1:N lists an ``ijb`` spec declares."""
    return load_ijb(spec.root, prefix=spec.prefix, images=spec.images, galleries=spec.galleries,
                    probes=spec.probes)


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


def load_pairs(spec: AnyDataset, cache_dir: str | Path | None = None
               ) -> PairSet | TemplatePairSet:
    """The verification pairs a suite protocol's dataset declares (drawn for identity kinds;
    template pairs for ijb). ``cache_dir`` (default: facebench's cache) holds extracted ``.bin``
    images and drawn pair CSVs unless the spec names a place."""
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
    if spec.kind == "ijb":
        return template_pairs(spec)
    raise DatasetError(f"unknown dataset kind {spec.kind!r}")


# ---- protocol data: what a verification or 1:N cell scores (facebench.datasets.sets) ----------


def _template_faces(ijb: IjbSet, pooling: TemplatePooling) -> TemplateFaces:
    return TemplateFaces(ijb.template_ids, ijb.media_ids, ijb.det_scores, pooling)


def _given(ijb: IjbSet) -> GivenLandmarks:
    return GivenLandmarks(ijb.landmarks, ijb.det_scores)


def template_pairs(spec: IjbDataset) -> TemplatePairSet:
    """The 1:1 template pairs of an ijb spec (an error when the dataset has no pair file)."""
    ijb = load_spec_ijb(spec)
    if ijb.pairs.shape[0] == 0:
        raise DatasetError(f"{ijb.root}: no template pairs (meta/<prefix>_template_pair_label.txt "
                           "is missing or empty); 1:1 verification needs them")
    faces = _template_faces(ijb, spec.templates)
    where = str(ijb.info.get("pairs_file", "the template pair file"))
    return TemplatePairSet(ijb.name, ijb.root, ijb.images, _given(ijb), faces,
                           faces.rows(ijb.pairs[:, 0], where), faces.rows(ijb.pairs[:, 1], where),
                           ijb.pair_labels.astype(np.int64), ijb.checksum,
                           {**ijb.describe(), "kind": "ijb_template_pairs"})


def _ijb_search_set(spec: IjbDataset) -> SearchSet:
    """Each probe template searched against each 1:N gallery set of an ijb spec."""
    ijb = load_spec_ijb(spec)
    if ijb.probes is None or not ijb.galleries:
        raise DatasetError(f"{ijb.root}: no 1:N lists (meta/<prefix>_1N_gallery_*.csv and "
                           "meta/<prefix>_1N_probe_*.csv); identification needs them")
    faces = _template_faces(ijb, spec.templates)
    probe_tids, probe_sids = ijb.probes
    probes = faces.rows(probe_tids, "1:N probe list")
    splits = []
    for name, (tids, sids) in ijb.galleries.items():
        distractors = int(np.count_nonzero(~np.isin(sids, probe_sids)))
        splits.append(Split(name, faces.rows(tids, f"1:N gallery {name}"), np.asarray(sids),
                            probes, np.asarray(probe_sids), distractors))
    return SearchSet(ijb.name, ijb.root, ijb.images, splits, ijb.checksum, _given(ijb), faces,
                     {**ijb.describe(), "kind": "ijb_1n"})


def _identity_search_set(proto: Any) -> SearchSet:
    """A declared enrolment split of an identity dataset, plus distractor images (each its own
    identity, gallery only)."""
    ids = load_spec_identities(proto.dataset)
    gallery, probes = enrollment_split(ids, proto.gallery_images, proto.unenrolled, proto.seed)
    if probes.size == 0:
        raise DatasetError(f"{ids.root}: no probes: every identity has at most gallery_images "
                           f"({proto.gallery_images}) image(s); identification needs identities "
                           "with more images, or unenrolled > 0")
    extra = load_distractors(proto.distractors) if proto.distractors else []
    images = list(ids.images) + extra
    labels = np.concatenate([ids.labels, -1 - np.arange(len(extra), dtype=np.int64)])
    rows = np.concatenate([gallery, ids.n_images + np.arange(len(extra), dtype=np.int64)])
    probe_ids = labels[probes]
    distractors = int(np.count_nonzero(~np.isin(labels[rows], probe_ids)))
    split = Split("gallery", rows, labels[rows], probes, probe_ids, distractors)
    digest = hashlib.sha256(ids.checksum.encode())
    for p in extra:
        digest.update(f"\n{p}".encode())
    info = {**ids.describe(), "gallery_images": proto.gallery_images,
            "unenrolled": proto.unenrolled, "seed": proto.seed,
            "distractor_images": len(extra),
            "distractor_folders": [str(d) for d in proto.distractors]}
    info.pop("sha256", None)
    return SearchSet(ids.name, ids.root, images, [split], digest.hexdigest(), info=info)


def load_search_set(proto: Any) -> SearchSet:
    """What an identification protocol searches: an ijb dataset's 1:N lists, or a declared
    split of an identity dataset."""
    if proto.dataset.kind == "ijb":
        return _ijb_search_set(proto.dataset)
    return _identity_search_set(proto)

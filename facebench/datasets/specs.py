"""Suite models for the dataset kinds ``insightface_bin``, ``identity_folder``, ``identity_file``.

They plug into the suite's dataset union by their ``kind`` tag. Paths resolve against the suite
file's folder (``context={"base_dir": ...}``) exactly as ``facebench.suite.schema.SuitePath``;
:func:`load_spec_pairs` and :func:`load_spec_identities` turn a spec into data.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facebench.bounds import Count, FoldCount, Seed
from facebench.paths import SuitePath

if TYPE_CHECKING:
    from facebench.datasets.identity import IdentitySet
    from facebench.datasets.pairs import PairSet


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InsightfaceBinDataset(_Strict):
    """An insightface verification ``.bin`` (pre-aligned 112×112; use ``detector: none``)."""

    kind: Literal["insightface_bin"]
    path: SuitePath = Field(description="The .bin file (lfw.bin, cfp_fp.bin, agedb_30.bin, ...).")
    folds: FoldCount = Field(default=10, description="Consecutive equal folds, as insightface.")
    extract_dir: SuitePath | None = Field(
        default=None,
        description="Where decoded PNGs are cached, per .bin sha256; default <cache_dir>/"
        "insightface_bin.",
    )


class _IdentityDraw(_Strict):
    """How verification pairs are drawn from identity-labelled images (ignored for 1:N)."""

    n_genuine: Count = Field(default=3000, ge=1, le=1_000_000,
                             description="Genuine pairs (verification only).")
    n_impostor: Count = Field(default=3000, ge=1, le=1_000_000,
                              description="Impostor pairs (verification only).")
    folds: FoldCount = Field(default=10, description="Folds; identity-disjoint when possible.")
    seed: Seed = Field(default=0, description="Seed of the pair draw.")
    pairs_out: SuitePath | None = Field(
        default=None,
        description="Where the drawn pair CSV is written (reusable with kind pair_csv); "
        "default <cache_dir>/pairs/<name>-<key>.csv.",
    )
    min_images: Count = Field(
        default=1, ge=1, le=100_000, description="Drop identities with fewer images than this."
    )

    @model_validator(mode="after")
    def _per_fold(self) -> _IdentityDraw:
        if min(self.n_genuine, self.n_impostor) < self.folds:
            raise ValueError(f"n_genuine ({self.n_genuine}) and n_impostor ({self.n_impostor}) "
                             f"must be >= folds ({self.folds}): each fold needs both kinds")
        return self


class IdentityFolderDataset(_IdentityDraw):
    """An image folder with one subfolder per identity."""

    kind: Literal["identity_folder"]
    images: SuitePath = Field(description="Image root: <images>/<identity>/<file>.")
    extensions: list[str] = Field(
        default=[".jpg", ".jpeg", ".png", ".bmp", ".webp"],
        description="Image file extensions (case-insensitive).",
    )


class IdentityFileDataset(_IdentityDraw):
    """``image_name identity`` per line (CelebA style) over an image root."""

    kind: Literal["identity_file"]
    identities: SuitePath = Field(description="The identity file.")
    images: SuitePath = Field(description="Image root the names are relative to.")


IdentityDataset = IdentityFolderDataset | IdentityFileDataset
#: The kinds this module adds, by tag.
KINDS: dict[str, type[_Strict]] = {
    "insightface_bin": InsightfaceBinDataset,
    "identity_folder": IdentityFolderDataset,
    "identity_file": IdentityFileDataset,
}


def _cache(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from facebench.faces.acquire import default_cache_dir

    return default_cache_dir()


def load_spec_identities(spec: IdentityDataset) -> IdentitySet:
    """The identity-labelled images an ``identity_folder`` / ``identity_file`` spec declares."""
    from facebench.datasets.identity import load_identity_file, load_identity_folder

    if spec.kind == "identity_folder":
        return load_identity_folder(spec.images, spec.extensions, spec.min_images)
    return load_identity_file(spec.identities, spec.images, spec.min_images)


def load_spec_pairs(spec: InsightfaceBinDataset | IdentityDataset,
                    cache_dir: str | Path | None = None) -> PairSet:
    """Verification pairs of one of this module's kinds. ``cache_dir`` (default: facebench's
    cache) holds extracted ``.bin`` images and drawn pair CSVs unless the spec names a place."""
    if spec.kind == "insightface_bin":
        from facebench.datasets.insightface_bin import load_insightface_bin

        extract = spec.extract_dir or _cache(cache_dir) / "insightface_bin"
        return load_insightface_bin(spec.path, extract, folds=spec.folds)
    from facebench.datasets.identity import draw_pairs

    ids = load_spec_identities(spec)
    out = spec.pairs_out
    if out is None:
        key = hashlib.sha256(
            f"{ids.checksum}:{spec.min_images}:{spec.n_genuine}:{spec.n_impostor}:{spec.folds}:"
            f"{spec.seed}".encode()
        ).hexdigest()[:16]
        out = _cache(cache_dir) / "pairs" / f"{ids.name}-{key}.csv"
    return draw_pairs(ids, spec.n_genuine, spec.n_impostor, spec.folds, spec.seed, out=out)

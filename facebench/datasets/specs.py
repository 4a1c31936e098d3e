"""Suite models of every dataset kind: ``lfw_pairs``, ``pair_csv``, ``insightface_bin``,
``identity_folder``, ``identity_file``, ``ijb``.

They plug into the suite's dataset union by their ``kind`` tag. Paths resolve against the suite
file's folder (``context={"base_dir": ...}``) (``facebench.paths.SuitePath``).
This module imports no loader: :mod:`facebench.datasets.load` turns a spec into data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from facebench.bounds import NO_BOOL, Count, FoldCount, Seed
from facebench.crosscheck import CrossChecked, cross_check
from facebench.metrics.templates import TemplatePooling
from facebench.paths import SuitePath


class _Strict(CrossChecked):
    model_config = ConfigDict(extra="forbid")

    def input_paths(self) -> list[Path]:
        """What a cell on this dataset reads, for ``--resume``'s key: files by their bytes,
        folders by their listing (relative paths and sizes). Image files are not listed: the
        caches key them by content, and a pair or identity list names them. Every dataset kind
        declares its own."""
        raise NotImplementedError(f"dataset kind {type(self).__name__} declares no input_paths")


class LfwPairsDataset(_Strict):
    kind: Literal["lfw_pairs"] = "lfw_pairs"
    pairs: SuitePath
    images: SuitePath
    ext: str = ".jpg"
    max_folds: FoldCount | None = Field(
        default=None, description="Use only the first N folds (fixed subsets for speed; >= 2: "
        "each fold's threshold is chosen on the other folds)."
    )

    def input_paths(self) -> list[Path]:
        return [self.pairs]


class PairCsvDataset(_Strict):
    kind: Literal["pair_csv"]
    pairs: SuitePath
    images: SuitePath

    def input_paths(self) -> list[Path]:
        return [self.pairs]


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

    def input_paths(self) -> list[Path]:
        return [self.path]


class _IdentityDraw(_Strict):
    """How verification pairs are drawn from identity-labelled images (ignored for 1:N)."""

    pairs: Literal["drawn", "all"] = Field(
        default="drawn", description="drawn: n_genuine + n_impostor pairs in folds; all: the "
        "exhaustive protocol, every genuine pair and every impostor pair (or a seeded sample "
        "of impostor_sample of them), one threshold on all pairs (docs/results.md).")
    impostor_sample: Annotated[int, Field(ge=1, le=10**12), NO_BOOL] | None = Field(
        default=None, description="pairs: all only: score this many impostor pairs, drawn "
        "uniformly with the dataset's seed, instead of all of them.")

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

    @cross_check("pairs", "impostor_sample")
    def _sample_needs_all(self) -> None:
        if self.impostor_sample is not None and self.pairs != "all":
            raise ValueError("impostor_sample is for pairs: all (the exhaustive protocol); "
                             "drawn pairs take n_impostor")

    @cross_check("n_genuine", "n_impostor", "folds")
    def _per_fold(self) -> None:
        if min(self.n_genuine, self.n_impostor) < self.folds:
            raise ValueError(f"n_genuine ({self.n_genuine}) and n_impostor ({self.n_impostor}) "
                             f"must be >= folds ({self.folds}): each fold needs both kinds")


class IdentityFolderDataset(_IdentityDraw):
    """An image folder with one subfolder per identity."""

    kind: Literal["identity_folder"]
    images: SuitePath = Field(description="Image root: <images>/<identity>/<file>.")
    extensions: list[str] = Field(
        default=[".jpg", ".jpeg", ".png", ".bmp", ".webp"],
        description="Image file extensions (case-insensitive).",
    )

    def input_paths(self) -> list[Path]:
        return [self.images]  # a folder: its listing is the dataset


class IdentityFileDataset(_IdentityDraw):
    """``image_name identity`` per line (CelebA style) over an image root."""

    kind: Literal["identity_file"]
    identities: SuitePath = Field(description="The identity file.")
    images: SuitePath = Field(description="Image root the names are relative to.")

    def input_paths(self) -> list[Path]:
        return [self.identities]


#: A file-name part of an ijb meta file (prefix, gallery or probe set name).
_MetaName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]


class IjbDataset(_Strict):
    """An IJB-B/C-style template dataset (the ``IJB_release`` layout; see docs/ijb.md): loose
    crops with five landmarks each, faces grouped in templates and media, 1:1 template pairs
    and 1:N gallery/probe template lists."""

    kind: Literal["ijb"]
    root: SuitePath = Field(description="The dataset folder holding loose_crop/ and meta/.")
    prefix: _MetaName | None = Field(
        default=None, description="File prefix <p> of meta/<p>_face_tid_mid.txt etc. (ijbc, "
        "ijbb, ...); default: detected from the single meta/*_face_tid_mid.txt.")
    images: str = Field(default="loose_crop",
                        description="Folder of the loose face crops, relative to root.")
    galleries: list[_MetaName] | None = Field(
        default=None, min_length=1,
        description="1:N gallery sets <G> of meta/<p>_1N_gallery_<G>.csv (IJB-C: G1, G2; "
        "IJB-B: S1, S2); default: every such file, sorted.")
    probes: _MetaName = Field(default="mixed",
                              description="1:N probe set: meta/<p>_1N_probe_<probes>.csv.")
    templates: TemplatePooling = Field(
        default_factory=TemplatePooling,
        description="How a template's faces are pooled into one feature.")

    def input_paths(self) -> list[Path]:
        """Every file of ``meta/`` with this dataset's prefix (any prefix when it is detected):
        the face, landmark, pair and 1:N list files the loader reads."""
        head = f"{self.prefix}_" if self.prefix else ""
        try:
            entries = sorted((self.root / "meta").iterdir())
        except OSError:
            return []
        return [p for p in entries
                if p.name.startswith(head) and not p.name.startswith(".") and p.is_file()]


IdentityDataset = IdentityFolderDataset | IdentityFileDataset
AnyDataset = (LfwPairsDataset | PairCsvDataset | InsightfaceBinDataset | IdentityDataset
              | IjbDataset)
#: Every dataset kind's model, by its ``kind`` tag.
KINDS: dict[str, type[_Strict]] = {
    "lfw_pairs": LfwPairsDataset,
    "pair_csv": PairCsvDataset,
    "insightface_bin": InsightfaceBinDataset,
    "identity_folder": IdentityFolderDataset,
    "identity_file": IdentityFileDataset,
    "ijb": IjbDataset,
}

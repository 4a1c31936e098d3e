"""What a verification or 1:N protocol scores: *items* (images, or IJB templates pooled from
faces) and the pairs or gallery/probe splits over them.

The pipeline embeds ``images`` (aligned from ``landmarks`` when the dataset gives them), turns
the embeddings into item features with :func:`item_features` (``templates`` is ``None`` when the
items are the images themselves), then scores ``left``/``right`` pairs (:class:`TemplatePairSet`,
or an image :class:`~facebench.datasets.pairs.PairSet`) or searches each :class:`Split`'s probes
against its gallery (:class:`SearchSet`). A dataset kind plugs in by building these; the
pipeline never asks which kind it has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from facebench.faces.acquire import GivenLandmarks
from facebench.metrics.templates import (
    TemplatePooling,
    Templates,
    pool_templates,
    template_rows,
)


@dataclass(frozen=True)
class TemplateFaces:
    """Which template and media each face (image) belongs to, its detector score, and how the
    faces of a template are pooled."""

    template_ids: np.ndarray
    media_ids: np.ndarray
    det_scores: np.ndarray
    pooling: TemplatePooling

    @cached_property
    def ids(self) -> np.ndarray:
        """The template ids, ascending: row r of the pooled features is template ``ids[r]``."""
        return np.unique(self.template_ids)

    def rows(self, template_ids: np.ndarray, where: str) -> np.ndarray:
        """Feature rows of ``template_ids``; a template without faces is an error naming
        ``where`` (the list that names it)."""
        return template_rows(self.ids, np.asarray(template_ids, dtype=np.int64), where)

    def pool(self, emb: np.ndarray, valid: np.ndarray, norms: np.ndarray | None) -> Templates:
        return pool_templates(emb, valid, self.template_ids, self.media_ids, self.pooling,
                              norms=norms, det_scores=self.det_scores)

    def record(self, pooled: Templates, flip: bool) -> dict[str, Any]:
        """The pooling choices (with the flip test the faces were embedded with), counts and
        the templates that failed to acquire with their reasons, for the results
        (``details.templates``)."""
        return {**self.pooling.model_dump(mode="json"), "flip": flip, "templates": len(pooled),
                "valid_templates": int(pooled.valid.sum()),
                "fta_templates": len(pooled.reasons),
                "fta_templates_list": [{"template": t, "reason": r}
                                       for t, r in pooled.reasons.items()],
                "faces_pooled": int(pooled.faces.sum()), "media_pooled": int(pooled.media.sum()),
                "definition": "face f = e (L2-normalised, flip summed) x raw norm (norm) x "
                              "detector score (detector_score); media = mean of its faces; "
                              "template = mean of its media (media: mean) or faces (none); "
                              "L2-normalised (docs/identification.md)"}


def item_features(templates: TemplateFaces | None, emb: np.ndarray, valid: np.ndarray,
                  norms: np.ndarray | None, flip: bool
                  ) -> tuple[np.ndarray, np.ndarray, dict[str, Any] | None]:
    """(features, valid, pooling record) of the items a protocol scores: the image embeddings
    themselves, or the pooled templates (``flip``: whether the faces were embedded with the
    flip test, recorded with the pooling)."""
    if templates is None:
        return emb, valid, None
    pooled = templates.pool(emb, valid, norms)
    return pooled.features, pooled.valid, templates.record(pooled, flip)


@dataclass
class TemplatePairSet:
    """1:1 verification over template pairs (IJB): ``left``/``right`` are feature rows of
    templates; one threshold for all pairs (``folds`` is ``None``)."""

    name: str
    root: Path
    images: list[Path]
    landmarks: GivenLandmarks
    templates: TemplateFaces
    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    checksum: str
    info: dict[str, Any] = field(default_factory=dict)
    folds: np.ndarray | None = None

    @property
    def n_pairs(self) -> int:
        return int(self.labels.size)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "root": str(self.root), "pairs": self.n_pairs,
                "genuine": int(self.labels.sum()), "impostor": int(self.n_pairs
                                                                    - self.labels.sum()),
                "images": len(self.images), "templates": int(self.templates.ids.size),
                "sha256": self.checksum, **self.info}


@dataclass(frozen=True)
class Split:
    """One gallery and the probes searched against it, as item rows with declared identities.
    A probe is *mated* when its identity is among ``gallery_ids``."""

    name: str
    gallery: np.ndarray
    gallery_ids: np.ndarray
    probes: np.ndarray
    probe_ids: np.ndarray
    distractors: int = 0  # gallery entries of identities no probe has, added on purpose

    def __post_init__(self) -> None:
        for rows, ids, what in ((self.gallery, self.gallery_ids, "gallery"),
                                (self.probes, self.probe_ids, "probe")):
            if np.asarray(rows).shape != np.asarray(ids).shape:
                raise ValueError(f"split {self.name!r}: {what} rows and identities differ in "
                                 "length")
        if np.asarray(self.probes).size == 0:
            raise ValueError(f"split {self.name!r}: no probes to search")
        if np.asarray(self.gallery).size == 0:
            raise ValueError(f"split {self.name!r}: the gallery is empty")


@dataclass
class SearchSet:
    """1:N data: the images to embed, how they become items, and the splits to search."""

    name: str
    root: Path
    images: list[Path]
    splits: list[Split]
    checksum: str
    landmarks: GivenLandmarks | None = None
    templates: TemplateFaces | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "root": str(self.root), "images": len(self.images),
               "sha256": self.checksum,
               "splits": [{"name": s.name, "gallery": int(s.gallery.size),
                           "probes": int(s.probes.size)} for s in self.splits], **self.info}
        if self.templates is not None:
            out["templates"] = int(self.templates.ids.size)
        return out

"""Hand-worked 1:1 template verification: faces → templates (media pooling) → template-pair
cosine scores → TAR@FAR with the achieved FAR and the support flag.

Faces (2-D embeddings), template / media:
  f0 (1, 0) T1/m1;  f1 (0, 1) T1/m2;  f2 (0, 1) T1/m2
  f3 (1, 0) T2/m3;  f4 (0.6, 0.8) T3/m4;  f5 (-1, 0) T4/m5;  f6 FtA T4/m5;  f7 FtA T5/m6
media: mean → T1 = normalize(mean((1,0), mean((0,1),(0,1)))) = (0.7071, 0.7071)
media: none → T1 = normalize((1,0)+(0,1)+(0,1)) = (1, 2)/√5 = (0.4472, 0.8944)
T2 = (1, 0), T3 = (0.6, 0.8), T4 = (-1, 0) (its FtA face left out), T5 has no face: invalid.

Pairs (label): T1-T2 (1), T1-T3 (1), T3-T5 (1, FtA: a reject), T2-T3 (0), T1-T4 (0),
T2-T4 (0), T3-T4 (0).
media: mean → genuine 0.7071, 0.9899, FtA; impostor 0.6, -0.7071, -1, -0.6.
  FAR = 0.25 allows floor(0.25 × 4) = 1 false accept: t = 0.6 (ties accept), TAR = 2/3.
  FAR = 0.1 allows none: t just above 0.6, achieved FAR 0, TAR = 2/3.
media: none → genuine 0.4472, 0.9839, FtA; impostor 0.6, -0.4472, -1, -0.6. FAR = 0.25: the
  smallest score still admitting one impostor is the genuine 0.4472, so t = 0.4472, TAR = 2/3;
  FAR = 0.1: t just above 0.6, TAR = 1/3 (media pooling keeps 2/3 there).
N_imp × FAR = 1 and 0.4 < 10: both flagged unsupported.
"""

from __future__ import annotations

import numpy as np
import pytest

from facebench.datasets.sets import TemplateFaces, item_features
from facebench.metrics import compute_verification_metrics
from facebench.metrics.templates import TemplatePooling
from facebench.pipeline.embed import cosine_scores

EMB = np.array([[1, 0], [0, 1], [0, 1], [1, 0], [0.6, 0.8], [-1, 0], [np.nan, np.nan],
                [np.nan, np.nan]], dtype=np.float32)
VALID = np.array([1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)
TIDS = np.array([1, 1, 1, 2, 3, 4, 4, 5])
MIDS = np.array([1, 2, 2, 3, 4, 5, 5, 6])
PAIRS = [(1, 2, 1), (1, 3, 1), (3, 5, 1), (2, 3, 0), (1, 4, 0), (2, 4, 0), (3, 4, 0)]


def _run(media: str) -> tuple[np.ndarray, dict]:
    faces = TemplateFaces(TIDS, MIDS, np.ones(8, np.float32), TemplatePooling(media=media))
    feats, ok, record = item_features(faces, EMB, VALID, np.ones(8, np.float32), True)
    left = faces.rows(np.array([a for a, _, _ in PAIRS]), "pairs")
    right = faces.rows(np.array([b for _, b, _ in PAIRS]), "pairs")
    labels = np.array([y for _, _, y in PAIRS])
    scores, fta = cosine_scores(feats, left, right, ok)
    res = compute_verification_metrics(scores, labels, folds=None, fta=fta,
                                       far_targets=(0.25, 0.1))
    assert record is not None and record["media"] == media and record["flip"] is True
    assert record["valid_templates"] == 4
    return scores, res.metrics | {"rows": res.details["tar_at_far"]}


def test_media_mean_templates_tar_at_far() -> None:
    scores, m = _run("mean")
    r = 1 / np.sqrt(2)
    np.testing.assert_allclose(scores[[0, 1, 3, 4, 5, 6]],
                               [r, 1.4 * r, 0.6, -r, -1.0, -0.6], atol=1e-6)
    assert np.isnan(scores[2])
    assert m["tar@far=2.5e-1"] == pytest.approx(2 / 3)
    assert m["far_achieved@far=2.5e-1"] == pytest.approx(0.25)
    assert m["threshold@far=2.5e-1"] == pytest.approx(0.6)
    assert m["tar@far=1e-1"] == pytest.approx(2 / 3)
    assert m["far_achieved@far=1e-1"] == 0.0
    assert m["threshold@far=1e-1"] > 0.6
    assert m["fta_pairs"] == 1
    assert [row["supported"] for row in m["rows"]] == [False, False]


def test_media_none_templates_weigh_faces_not_media() -> None:
    scores, m = _run("none")
    np.testing.assert_allclose(scores[[0, 1]], [1 / np.sqrt(5), (0.6 + 1.6) / np.sqrt(5)],
                               atol=1e-6)
    assert m["threshold@far=2.5e-1"] == pytest.approx(1 / np.sqrt(5))
    assert m["tar@far=2.5e-1"] == pytest.approx(2 / 3)
    assert m["far_achieved@far=2.5e-1"] == pytest.approx(0.25)
    assert m["tar@far=1e-1"] == pytest.approx(1 / 3)

"""1:N identification: rank-k and CMC against brute force, and a real LFW check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facebench.datasets.identity import IdentitySet, gallery_probe_split, load_identity_folder
from facebench.metrics.identification import identification_metrics


def _synthetic(rng: np.random.Generator, n_ids: int, max_per: int,
               dim: int) -> tuple[IdentitySet, np.ndarray]:
    counts = rng.integers(1, max_per + 1, size=n_ids)
    labels = np.repeat(np.arange(n_ids), counts)
    centers = rng.normal(size=(n_ids, dim))
    emb = centers[labels] + 1.2 * rng.normal(size=(labels.size, dim))
    ids = IdentitySet("synthetic", Path("."), [Path(f"{i}.jpg") for i in range(labels.size)],
                      labels, [f"id{k}" for k in range(n_ids)], "")
    return ids, emb.astype(np.float32)


def _brute_ranks(emb: np.ndarray, labels: np.ndarray, g: np.ndarray,
                 p: np.ndarray) -> np.ndarray:
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = e[p] @ e[g].T
    gl = labels[g]
    uniq = np.unique(gl)
    pooled = np.stack([sim[:, gl == u].max(axis=1) for u in uniq], axis=1)
    ranks = np.zeros(p.size, dtype=np.int64)
    for r, lab in enumerate(labels[p]):
        if lab in uniq:
            own = pooled[r, np.searchsorted(uniq, lab)]
            ranks[r] = np.count_nonzero(pooled[r] >= own)
    return ranks


def _check(res_ranks: np.ndarray, curve: np.ndarray, metrics: dict, brute: np.ndarray,
           max_rank: int) -> None:
    np.testing.assert_array_equal(res_ranks, brute)
    for k in (1, 5):
        assert metrics[f"rank{k}"] == pytest.approx(np.mean((brute >= 1) & (brute <= k)))
    expected = [np.mean((brute >= 1) & (brute <= k)) for k in range(1, max_rank + 1)]
    np.testing.assert_allclose(curve, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed: int) -> None:
    ids, emb = _synthetic(np.random.default_rng(seed), n_ids=150, max_per=6, dim=32)
    g, p = gallery_probe_split(ids)
    res = identification_metrics(emb, ids, g, p, ranks=(1, 5), max_rank=20)
    _check(res.ranks, res.curve, res.metrics, _brute_ranks(emb, ids.labels, g, p), 20)
    assert 0.05 < res.metrics["rank1"] < 0.95  # non-trivial
    assert res.metrics["probes"] == p.size and res.metrics["gallery"] == 150
    assert res.metrics["distractors"] == int(np.count_nonzero(ids.counts == 1))


def test_multi_image_gallery_and_failures() -> None:
    rng = np.random.default_rng(7)
    ids, emb = _synthetic(rng, n_ids=60, max_per=5, dim=16)
    order = rng.permutation(ids.n_images)
    g, p = np.sort(order[: ids.n_images // 2]), np.sort(order[ids.n_images // 2:])
    valid = rng.random(ids.n_images) > 0.1
    res = identification_metrics(emb, ids, g, p, max_rank=10, valid=valid)
    brute = np.zeros(p.size, dtype=np.int64)
    gv = g[valid[g]]
    brute[valid[p]] = _brute_ranks(emb, ids.labels, gv, p[valid[p]])  # 0 = no gallery mate
    _check(res.ranks, res.curve, res.metrics, brute, 10)
    assert res.metrics["fta_probes"] == int(np.count_nonzero(~valid[p]))
    assert res.metrics["fta_gallery"] == int(np.count_nonzero(~valid[g]))


def test_bad_inputs() -> None:
    ids, emb = _synthetic(np.random.default_rng(0), n_ids=5, max_per=1, dim=8)
    g, p = gallery_probe_split(ids)
    with pytest.raises(ValueError, match="no probes"):
        identification_metrics(emb, ids, g, p)
    with pytest.raises(ValueError, match="one row per image"):
        identification_metrics(emb[:2], ids, g, p)


def test_real_lfw_rank1(tmp_path: Path, models_dir: Path,
                        lfw_people: Callable[[int, int], list[str]],
                        copy_identities: Callable[..., Path],
                        align_lfw: Callable[[Path], np.ndarray]) -> None:
    """12 LFW identities (5 images each) + 8 one-image distractors, MobileFaceNet embeddings."""
    import onnxruntime as ort

    from facebench.pipeline.embed import embed_batch
    from facebench.suite.schema import Preprocess

    people = lfw_people(5, 12)
    singles = [n for n in lfw_people(1, 60) if n not in people][:8]
    folder = copy_identities(tmp_path / "faces", people, max_images=5)
    copy_identities(folder, singles, max_images=1)
    ids = load_identity_folder(folder)
    crops = [align_lfw(p) for p in ids.images]
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(models_dir / "mobilefacenet_128d.onnx"), opts,
                                providers=["CPUExecutionProvider"])

    def infer(x: np.ndarray) -> np.ndarray:
        return sess.run(None, {sess.get_inputs()[0].name: x})[0]

    emb = embed_batch(infer, crops, Preprocess(color="RGB", mean=127.5, std=128.0), flip=True)
    g, p = gallery_probe_split(ids)
    res = identification_metrics(emb, ids, g, p, ranks=(1, 5), max_rank=20)
    assert res.metrics["gallery"] == 20 and res.metrics["probes"] == 48
    assert res.metrics["distractors"] == 8
    assert res.metrics["rank1"] >= 0.6, res.metrics  # chance: 1/20 (measured: 0.81)
    assert res.metrics["rank5"] >= res.metrics["rank1"] and res.curve[-1] == 1.0

"""1:N identification through the pipeline's search (both backends): rank-k and CMC against
brute force, open-set splits of identity folders, distractor folders, and a real LFW check."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from facebench.datasets import load_search_set
from facebench.datasets.identity import (
    IdentitySet,
    enrollment_split,
    load_distractors,
    load_identity_folder,
)
from facebench.datasets.pairs import DatasetError
from facebench.datasets.sets import Split
from facebench.metrics.open_set import open_set_metrics
from facebench.pipeline.identification import search_split
from facebench.suite.schema import IdentificationProtocol, SearchOptions

BACKENDS = ["numpy", pytest.param("faiss", marks=pytest.mark.skipif(
    importlib.util.find_spec("faiss") is None, reason="faiss not installed"))]


@dataclass
class Result:
    ranks: np.ndarray
    curve: np.ndarray
    metrics: dict


def identify(emb: np.ndarray, ids: IdentitySet, g: np.ndarray, p: np.ndarray,
             max_rank: int = 20, valid: np.ndarray | None = None,
             backend: str = "numpy") -> Result:
    """Search ``p`` against ``g`` as a cell does; metrics over all probes (all mated here)."""
    ok = np.ones(ids.n_images, bool) if valid is None else valid
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    split = Split("gallery", g, ids.labels[g], p, ids.labels[p])
    searches, info = search_split(split, e.astype(np.float32), ok, max_rank,
                                  SearchOptions(backend=backend, chunk_rows=1024), 1)
    metrics, details = open_set_metrics(searches, ranks=(1, 5), max_rank=max_rank)
    metrics |= {"probes": int(p.size), "gallery": int(g.size), "fta_gallery":
                info["split"]["fta_gallery"], "fta_probes": int(np.count_nonzero(~ok[p])),
                "distractors": int(np.count_nonzero(~np.isin(ids.labels[g], ids.labels[p])))}
    return Result(searches.mate_rank, np.asarray(details["cmc"]), metrics)


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
    # the search keeps at least max_rank identities per probe: a mate within them has its
    # exact rank, a deeper one may be "not found" (rank 0)
    np.testing.assert_array_equal(res_ranks[brute <= max_rank], brute[brute <= max_rank])
    found = res_ranks > 0
    np.testing.assert_array_equal(res_ranks[found], brute[found])
    for k in (1, 5):
        assert metrics[f"rank{k}"] == pytest.approx(np.mean((brute >= 1) & (brute <= k)))
    expected = [np.mean((brute >= 1) & (brute <= k)) for k in range(1, max_rank + 1)]
    np.testing.assert_allclose(curve, expected)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed: int, backend: str) -> None:
    ids, emb = _synthetic(np.random.default_rng(seed), n_ids=150, max_per=6, dim=32)
    g, p = enrollment_split(ids)
    res = identify(emb, ids, g, p, backend=backend)
    _check(res.ranks, res.curve, res.metrics, _brute_ranks(emb, ids.labels, g, p), 20)
    assert 0.05 < res.metrics["rank1"] < 0.95  # non-trivial
    assert res.metrics["probes"] == p.size and res.metrics["gallery"] == 150
    assert res.metrics["distractors"] == int(np.count_nonzero(ids.counts == 1))


@pytest.mark.parametrize("backend", BACKENDS)
def test_multi_image_gallery_and_failures(backend: str) -> None:
    rng = np.random.default_rng(7)
    ids, emb = _synthetic(rng, n_ids=60, max_per=5, dim=16)
    order = rng.permutation(ids.n_images)
    g, p = np.sort(order[: ids.n_images // 2]), np.sort(order[ids.n_images // 2:])
    p = p[np.isin(ids.labels[p], ids.labels[g])]  # closed set: every probe's identity enrolled
    valid = rng.random(ids.n_images) > 0.1
    res = identify(emb, ids, g, p, max_rank=10, valid=valid, backend=backend)
    brute = np.zeros(p.size, dtype=np.int64)
    gv = g[valid[g]]
    brute[valid[p]] = _brute_ranks(emb, ids.labels, gv, p[valid[p]])  # 0 = no gallery mate
    _check(res.ranks, res.curve, res.metrics, brute, 10)
    assert res.metrics["fta_probes"] == int(np.count_nonzero(~valid[p]))
    assert res.metrics["fta_gallery"] == int(np.count_nonzero(~valid[g]))


def test_bad_inputs() -> None:
    ids, _ = _synthetic(np.random.default_rng(0), n_ids=5, max_per=1, dim=8)
    g, p = enrollment_split(ids)
    with pytest.raises(ValueError, match="no probes"):
        Split("gallery", g, ids.labels[g], p, ids.labels[p])
    with pytest.raises(ValueError, match="gallery_images"):
        enrollment_split(ids, gallery_images=0)
    with pytest.raises(ValueError, match="unenrolled"):
        enrollment_split(ids, unenrolled=1.0)


def test_enrollment_split_open_set() -> None:
    """gallery_images per identity; a seeded unenrolled fraction gives non-mated probes."""
    ids, emb = _synthetic(np.random.default_rng(3), n_ids=40, max_per=6, dim=16)
    g, p = enrollment_split(ids, gallery_images=2, unenrolled=0.25, seed=5)
    assert sorted(g.tolist() + p.tolist()) == list(range(ids.n_images))
    enrolled = set(ids.labels[g].tolist())
    assert len(enrolled) == 40 - 10  # floor(0.25 x 40) identities kept out
    for k in enrolled:  # the first two images (file order) of each enrolled identity
        mine = np.flatnonzero(ids.labels == k)
        assert g[np.isin(g, mine)].tolist() == mine[:2].tolist()
    g2, p2 = enrollment_split(ids, gallery_images=2, unenrolled=0.25, seed=5)
    assert g2.tolist() == g.tolist() and p2.tolist() == p.tolist()
    assert enrollment_split(ids, 2, 0.25, seed=6)[0].tolist() != g.tolist()
    res = identify(emb, ids, g, p)
    mated = np.isin(ids.labels[p], ids.labels[g])
    assert res.metrics["mated_searches"] == int(mated.sum())
    assert res.metrics["nonmated_searches"] == int((~mated).sum()) > 0
    assert res.metrics["fnir@fpir=1e-1"] is not None
    # default split: first image per identity, the rest probes
    g1, p1 = enrollment_split(ids)
    assert g1.tolist() == np.unique(ids.labels, return_index=True)[1].tolist()


def test_load_distractors(tmp_path: Path, copy_identities: Callable[..., Path]) -> None:
    folder = copy_identities(tmp_path / "d", ["Aaron_Eckhart", "Abel_Pacheco"])
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "x.jpg").write_bytes(b"")
    found = load_distractors([folder])
    assert found == sorted(found) and all(".hidden" not in str(f) for f in found)
    assert len(found) == sum(1 for _ in folder.rglob("*.jpg")) - 1
    with pytest.raises(DatasetError, match="distractor folder not found"):
        load_distractors([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images"):
        load_distractors([tmp_path / "empty"])


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
    g, p = enrollment_split(ids)
    res = identify(emb, ids, g, p, max_rank=20)
    assert res.metrics["gallery"] == 20 and res.metrics["probes"] == 48
    assert res.metrics["distractors"] == 8
    assert res.metrics["rank1"] >= 0.6, res.metrics  # chance: 1/20 (measured: 0.81)
    assert res.metrics["rank5"] >= res.metrics["rank1"] and res.curve[-1] == 1.0


def test_search_set_without_probes_names_the_fix(tmp_path: Path,
                                                 copy_identities: Callable[..., Path]) -> None:
    folder = copy_identities(tmp_path / "one", ["Aaron_Eckhart", "Abel_Pacheco"], max_images=1)
    proto = IdentificationProtocol(id="p", kind="identification",
                                   dataset={"kind": "identity_folder", "images": folder})
    with pytest.raises(DatasetError, match="no probes: every identity has at most"):
        load_search_set(proto)
    data = load_search_set(proto.model_copy(update={"unenrolled": 0.5}))
    assert data.splits[0].gallery.size == 1 and data.splits[0].probes.size == 1

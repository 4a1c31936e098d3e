"""facebench.search: exact streamed top-k inner product, numpy vs faiss vs a float64 brute force."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facebench.search import (
    ArrayChunks,
    NpyChunks,
    TopK,
    backends,
    resolve_backend,
    top_k,
)

INFO_KEYS = {"backend", "version", "k", "slack", "chunk_rows", "probe_block", "threads",
             "gallery_rows", "probes", "dim", "seconds"}


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def backend_params() -> list:
    """numpy always; faiss skipped (importorskip-style) when it is not installed."""
    faiss = pytest.param("faiss", marks=pytest.mark.skipif(
        backends()["faiss"] is None, reason="faiss-cpu not installed (extra 'search')"))
    return ["numpy", faiss]


def brute(probes: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 reference: every probe's full score row, stable argsort (ties by row)."""
    g64 = gallery.astype(np.float64)
    scores, index = [], []
    for b in range(0, len(probes), 100):
        s = probes[b:b + 100].astype(np.float64) @ g64.T
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]
        scores.append(np.take_along_axis(s, order, axis=1))
        index.append(order)
    return np.concatenate(scores), np.concatenate(index)


@pytest.fixture(scope="module")
def big() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """50 000 × 512 seeded unit gallery; 1 000 probes: 500 noisy copies of gallery rows
    (mated) and 500 random; the float64 brute-force top 20."""
    rng = np.random.default_rng(15)
    gallery = unit(rng.standard_normal((50_000, 512), dtype=np.float32))
    mated = gallery[rng.choice(len(gallery), 500, replace=False)]
    noisy = mated + 0.04 * rng.standard_normal(mated.shape, dtype=np.float32)
    probes = unit(np.concatenate([noisy, rng.standard_normal((500, 512), dtype=np.float32)]))
    return (probes, gallery, *brute(probes, gallery, 20))


@pytest.fixture(scope="module")
def results(big: tuple) -> dict[str, TopK]:
    probes, gallery, _, _ = big
    out = {"numpy": top_k(probes, gallery, 20, backend="numpy", chunk_rows=7001)}
    if backends()["faiss"] is not None:
        out["faiss"] = top_k(probes, gallery, 20, backend="faiss", chunk_rows=12_345)
    return out


@pytest.mark.parametrize("backend", backend_params())
def test_matches_float64_brute_force_at_50k(big: tuple, results: dict[str, TopK],
                                            backend: str) -> None:
    probes, gallery, ref_s, ref_i = big
    r = results[backend]
    assert r.scores.dtype == np.float64 and r.index.dtype == np.int64
    assert r.scores.shape == r.index.shape == (1000, 20)
    np.testing.assert_array_equal(r.index, ref_i)
    np.testing.assert_allclose(r.scores, ref_s, rtol=0, atol=1e-12)
    assert set(r.info) == INFO_KEYS
    assert r.info["backend"] == backend and r.info["gallery_rows"] == 50_000
    assert r.info["probes"] == 1000 and r.info["dim"] == 512 and r.info["k"] == 20
    # the mated half finds its source row first
    assert (r.scores[:500, 0] > r.scores[:500, 1]).all()


def test_numpy_and_faiss_identical(results: dict[str, TopK]) -> None:
    pytest.importorskip("faiss")
    np.testing.assert_array_equal(results["faiss"].index, results["numpy"].index)
    np.testing.assert_array_equal(results["faiss"].scores, results["numpy"].scores)


@pytest.mark.parametrize("backend", backend_params())
def test_one_chunk_and_a_chunk_per_row_agree(big: tuple, backend: str) -> None:
    """The chunking changes nothing: one chunk of all rows vs many small ones."""
    probes, gallery, ref_s, ref_i = big
    small = top_k(probes[::50], gallery[:3000], 5, backend=backend, chunk_rows=97)
    whole = top_k(probes[::50], gallery[:3000], 5, backend=backend, chunk_rows=65536)
    np.testing.assert_array_equal(small.index, whole.index)
    np.testing.assert_array_equal(small.scores, whole.scores)


@pytest.mark.parametrize("backend", backend_params())
def test_exact_ties_ordered_by_gallery_row_across_chunks(backend: str) -> None:
    rng = np.random.default_rng(1)
    gallery = unit(rng.standard_normal((12, 16), dtype=np.float32))
    gallery[[9, 2, 5]] = gallery[7]  # rows 2, 5, 7, 9 identical, in three different chunks
    r = top_k(gallery[7:8], gallery, 4, backend=backend, chunk_rows=4)
    assert r.index.tolist() == [[2, 5, 7, 9]]
    assert np.unique(r.scores).size == 1


@pytest.mark.parametrize("backend", backend_params())
def test_padding_when_k_exceeds_the_gallery(backend: str) -> None:
    rng = np.random.default_rng(2)
    gallery = unit(rng.standard_normal((3, 8), dtype=np.float32))
    probes = unit(rng.standard_normal((4, 8), dtype=np.float32))
    r = top_k(probes, gallery, 5, backend=backend, chunk_rows=2)
    ref_s, ref_i = brute(probes, gallery, 3)
    np.testing.assert_array_equal(r.index[:, :3], ref_i)
    np.testing.assert_allclose(r.scores[:, :3], ref_s, rtol=0, atol=1e-12)
    assert (r.index[:, 3:] == -1).all() and np.isneginf(r.scores[:, 3:]).all()
    empty = top_k(probes, np.zeros((0, 8), np.float32), 2, backend=backend)
    assert (empty.index == -1).all() and np.isneginf(empty.scores).all()
    assert empty.scores.shape == (4, 2) and empty.info["gallery_rows"] == 0


def test_npy_chunks_equal_array_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    gallery = unit(rng.standard_normal((1000, 64), dtype=np.float32))
    path = tmp_path / "g.npy"
    np.save(path, gallery)
    disk, mem = NpyChunks(path, chunk_rows=300), ArrayChunks(gallery, chunk_rows=300)
    assert (disk.rows, disk.dim) == (mem.rows, mem.dim) == (1000, 64)
    pairs = list(zip(disk, mem, strict=True))
    assert [o for (o, _), _ in pairs] == [0, 300, 600, 900]
    for (o1, a), (o2, b) in pairs:
        assert o1 == o2 and a.dtype == np.float32 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, b)
    probes = gallery[:50] + 0.1
    r_disk = top_k(probes, disk, 7, backend="numpy")
    r_mem = top_k(probes, gallery, 7, backend="numpy", chunk_rows=300)
    np.testing.assert_array_equal(r_disk.index, r_mem.index)
    np.testing.assert_array_equal(r_disk.scores, r_mem.scores)
    assert r_disk.info["chunk_rows"] == 300


@pytest.mark.parametrize(("array", "expected"), [
    (np.zeros((4, 3), np.float64), "float32"),
    (np.asfortranarray(np.zeros((4, 3), np.float32)), "Fortran"),
    (np.zeros(12, np.float32), "2-D"),
    (np.zeros((4, 3), ">f4"), "float32"),
])
def test_npy_chunks_rejects_wrong_layout_naming_the_file(tmp_path: Path, array: np.ndarray,
                                                        expected: str) -> None:
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(ValueError, match=expected) as info:
        NpyChunks(path)
    assert str(path) in str(info.value)


def test_npy_chunks_rejects_truncated_and_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "cut.npy"
    np.save(path, np.ones((100, 8), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:-40])
    with pytest.raises(ValueError, match="truncated") as info:
        NpyChunks(path)
    assert str(path) in str(info.value)
    # truncated after opening: the read names the file and row
    path.write_bytes(data)
    chunks = NpyChunks(path, chunk_rows=30)
    path.write_bytes(data[:-400])
    with pytest.raises(ValueError, match="ended early") as info:
        list(chunks)
    assert str(path) in str(info.value)
    other = tmp_path / "other.npy"
    other.write_bytes(b"not a numpy file at all")
    with pytest.raises(ValueError, match="not a readable .npy") as info:
        NpyChunks(other)
    assert str(other) in str(info.value)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        NpyChunks(tmp_path / "missing.npy")


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"probes": np.zeros(4, np.float32)}, "probes must be a 2-D"),
    ({"probes": np.zeros((2, 5), np.float32)}, "probes have dim 5 but the gallery has dim 4"),
    ({"gallery": np.zeros((3, 4, 1), np.float32)}, "gallery must be a 2-D"),
    ({"probes": np.array([[0, np.nan, 0, 0]], np.float32)}, "probe row 0 is not finite"),
    ({"gallery": np.array([[1, 0, 0, 0]] * 5 + [[np.inf, 0, 0, 0]], np.float32)},
     "gallery row 5 is not finite"),
    ({"probes": np.full((1, 4), 1e300)}, "probe row 0 is not finite"),
    ({"k": 0}, "k must be an integer >= 1"),
    ({"k": True}, "k must be an integer >= 1"),
    ({"k": 2.0}, "k must be an integer >= 1"),
    ({"slack": -1}, "slack must be an integer >= 0"),
    ({"chunk_rows": 0}, "chunk_rows must be"),
    ({"threads": 0}, "threads must be an integer >= 1"),
    ({"backend": "annoy"}, "unknown search backend 'annoy'"),
])
def test_input_errors(kwargs: dict, expected: str) -> None:
    args = {"probes": np.ones((2, 4), np.float32), "gallery": np.ones((6, 4), np.float32),
            "k": 3, "backend": "numpy", "chunk_rows": 4} | kwargs
    with pytest.raises(ValueError, match=expected):
        top_k(args.pop("probes"), args.pop("gallery"), args.pop("k"), **args)


def test_chunk_stream_that_breaks_its_contract_is_an_error() -> None:
    class Gappy:
        rows, dim = 8, 4

        def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
            yield 0, np.ones((4, 4), np.float32)
            yield 5, np.ones((3, 4), np.float32)

    with pytest.raises(ValueError, match="chunk at row 5"):
        top_k(np.ones((1, 4), np.float32), Gappy(), 2, backend="numpy")

    class Short(Gappy):
        def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
            yield 0, np.ones((4, 4), np.float32)

    with pytest.raises(ValueError, match="yielded 4 rows but declares 8"):
        top_k(np.ones((1, 4), np.float32), Short(), 2, backend="numpy")


def test_faiss_missing_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # makes `import faiss` raise ImportError
    assert backends() == {"numpy": np.__version__, "faiss": None}
    assert resolve_backend("auto") == "numpy"
    with pytest.raises(ImportError, match=r"pip install 'facebench\[search\]'"):
        resolve_backend("faiss")
    with pytest.raises(ImportError, match="facebench"):
        top_k(np.ones((1, 4), np.float32), np.ones((2, 4), np.float32), 1, backend="faiss")
    r = top_k(np.ones((1, 4), np.float32), np.ones((2, 4), np.float32), 1)
    assert r.info["backend"] == "numpy"


def test_auto_prefers_faiss() -> None:
    faiss = pytest.importorskip("faiss")
    assert resolve_backend("auto") == "faiss"
    assert backends()["faiss"] == faiss.__version__


@pytest.mark.parametrize("backend", backend_params())
def test_threads_are_pinned_recorded_and_restored(backend: str) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def state() -> list:
        out = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
        if backend == "faiss":
            out.append(sys.modules["faiss"].omp_get_max_threads())
        return out

    resolve_backend(backend)  # import faiss first so its pools are in the state
    before = state()
    rng = np.random.default_rng(4)
    r = top_k(unit(rng.standard_normal((3, 8))), unit(rng.standard_normal((50, 8))), 2,
              backend=backend, threads=1)
    assert r.info["threads"] == 1
    assert state() == before
    assert isinstance(top_k(np.ones((1, 8)), np.ones((2, 8)), 1, backend=backend)
                      .info["threads"], int)


@pytest.mark.parametrize("backend", backend_params())
def test_near_ties_within_float32_rounding_follow_float64(backend: str) -> None:
    """300 near-duplicates of the probe whose float64 scores differ below float32 rounding;
    chunks of 10 rows (<= k + slack, so each chunk keeps every row): the float32 scores must
    never drop a row the float64 order ranks in the top k."""
    rng = np.random.default_rng(5)
    base = unit(rng.standard_normal((1, 64)))
    gallery = (base + 5e-8 * rng.standard_normal((300, 64))).astype(np.float32)
    for probe in (base, unit(base + 1e-3 * rng.standard_normal((1, 64)))):
        r = top_k(probe, gallery, 5, backend=backend, chunk_rows=10)
        ref_s, ref_i = brute(probe, gallery, 5)
        np.testing.assert_array_equal(r.index, ref_i)
        np.testing.assert_allclose(r.scores, ref_s, rtol=0, atol=1e-12)

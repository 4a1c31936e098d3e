"""dlib's pretrained ResNet face descriptor with its own preprocessing path.

Model: ``dlib_face_recognition_resnet_model_v1.dat`` (29 conv layers, 128-d output; Davis King,
2017; published LFW accuracy 99.38 %), with the files of the ``face_recognition_models`` package
unless the suite gives the ResNet file as the model's ``path``. Per image:

1. decode (:func:`facebench.faces.images.decode_reduced`: longest side at most
   :data:`facebench.faces.images.DETECT_MAX_SIDE`) → RGB;
2. dlib's HOG detector (``get_frontal_face_detector``) at upsample 0; when it finds nothing, once
   more at upsample 1 (2× image, finds faces down to ~40 px); optionally (``cnn_fallback``, off by
   default) dlib's MMOD CNN detector at the same levels; still nothing → failure to acquire;
   several faces → one by the protocol's ``detector.select`` (``closest_to_center`` for LFW);
3. dlib's 5-point landmarks (``shape_predictor_5_face_landmarks.dat``);
4. ``dlib.get_face_chip(rgb, shape, size=150, padding=0.25)`` → 150×150 chip (dlib's own
   similarity alignment; not the ArcFace 112×112 template);
5. ``compute_face_descriptor(chip, num_jitters)``; with the protocol's ``flip`` the descriptor of
   the mirrored chip is added before L2 normalization (dlib's published protocol: no flip).

Work runs in a process pool (one dlib model set per process: dlib's CPU network is
single-threaded, links no BLAS, and holds the GIL, so threads do not help). Results stream in
input order and are cached per image content under ``cache_dir/dlib/<key>/`` where ``key`` hashes
the dlib version, both model files' SHA-256 and every setting above.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from facebench.faces.images import DETECT_MAX_SIDE, ImageError, decode_reduced, read_image_file
from facebench.io import sha256_file_once as file_sha256  # once per process
from facebench.paths import relative_name
from facebench.pool import chunks, ordered_map

CACHE_VERSION = 1
EMBEDDING_SIZE = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
UPSAMPLE = (0, 1)
RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
CNN_FILE = "mmod_human_face_detector.dat"
PUBLISHED_LFW_ACCURACY = 0.9938


# ---- configuration ---------------------------------------------------------------------------


def dlib_unavailable(device: str = "cpu") -> str | None:
    """Why dlib models cannot run here (``None`` when they can)."""
    try:
        import dlib
        import face_recognition_models  # noqa: F401
    except ImportError as exc:
        return (f"dlib model needs the 'dlib' extra ({exc.name} missing): "
                "pip install 'facebench[dlib]'")
    if device == "cuda" and not dlib.DLIB_USE_CUDA:
        return "this dlib build has no CUDA support (dlib-bin is CPU-only)"
    return None


def default_model_dir() -> Path:
    """The ``models/`` folder of the ``face_recognition_models`` package."""
    import face_recognition_models

    return Path(face_recognition_models.face_recognition_model_location()).parent


@dataclass(frozen=True)
class DlibConfig:
    """Everything that determines a descriptor (all of it goes into the cache key)."""

    resnet: Path
    landmarks: Path
    flip: bool = False
    select: str = "closest_to_center"
    num_jitters: int = 0
    chip_size: int = CHIP_SIZE
    padding: float = CHIP_PADDING
    upsample: tuple[int, ...] = UPSAMPLE
    cnn: Path | None = None  # MMOD CNN detector, tried when HOG finds nothing (None: off)

    @classmethod
    def default(cls, resnet: Path | None = None, cnn_fallback: bool = False,
                **kw: Any) -> DlibConfig:
        models = default_model_dir()
        return cls(resnet=Path(resnet or models / RESNET_FILE),
                   landmarks=models / LANDMARKS_FILE,
                   cnn=models / CNN_FILE if cnn_fallback else None, **kw)

    def settings(self) -> dict[str, Any]:
        """The record of this configuration, with model file hashes."""
        import dlib

        detector: dict[str, Any] = {"name": "dlib_hog", "upsample": list(self.upsample),
                                    "select": self.select, "max_side": DETECT_MAX_SIDE}
        if self.cnn is not None:
            detector["fallback"] = {"name": "dlib_mmod_cnn", "file": self.cnn.name,
                                    "sha256": file_sha256(self.cnn),
                                    "upsample": list(self.upsample)}
        return {
            "dlib_version": dlib.__version__,
            "detector": detector,
            "landmarks": {"file": self.landmarks.name, "sha256": file_sha256(self.landmarks),
                          "points": 5},
            "resnet": {"file": self.resnet.name, "sha256": file_sha256(self.resnet)},
            "chip": {"size": self.chip_size, "padding": self.padding,
                     "estimator": "dlib.get_face_chip (5-point similarity)"},
            "num_jitters": self.num_jitters,
            "flip": self.flip,
        }

    def key(self) -> str:
        blob = json.dumps({"v": CACHE_VERSION, **self.settings()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def config_from_cell(cell: Any, **overrides: Any) -> DlibConfig:
    """The :class:`DlibConfig` of a verification cell (model ``path`` = ResNet file override)."""
    m = cell.model
    if m.embedding_size not in (None, EMBEDDING_SIZE):
        raise ValueError(f"model {m.id!r}: dlib's ResNet gives {EMBEDDING_SIZE}-d descriptors, "
                         f"not embedding_size={m.embedding_size}")
    kw: dict[str, Any] = {"flip": cell.protocol.flip, "select": cell.protocol.detector.select}
    kw.update(overrides)
    return DlibConfig.default(m.path, **kw)


def preprocess_record(cfg: DlibConfig) -> dict[str, Any]:
    """What replaces the Preprocess record for a dlib model (for results)."""
    return {"color": "RGB", "input_size": [cfg.chip_size, cfg.chip_size], "layout": "HWC uint8",
            "scaling": "inside dlib: (x - (122.782, 117.001, 104.298)) / 256 per RGB channel",
            "alignment": f"dlib.get_face_chip(size={cfg.chip_size}, padding={cfg.padding})"}


# ---- worker side -----------------------------------------------------------------------------


@dataclass
class DlibFace:
    """One image's outcome: raw descriptors (1 or 2 rows with flip) or an FtA reason."""

    index: int
    desc: np.ndarray | None
    reason: str | None = None
    upsample: int | None = None
    faces: int = 0  # detections at the chosen upsample level
    cached: bool = False
    detector: str = "hog"  # or "cnn" (the MMOD fallback found it)


@dataclass
class _Models:
    """One process's dlib models; the CNN detector is loaded on its first use."""

    cfg: DlibConfig
    detector: Any
    predictor: Any
    net: Any
    cnn: Any = None

    def cnn_detector(self) -> Any:
        if self.cnn is None:
            import dlib

            self.cnn = dlib.cnn_face_detection_model_v1(str(self.cfg.cnn))
        return self.cnn


_STATE: dict[str, Any] = {}


def _init_worker(cfg: DlibConfig, cache_root: Path | None) -> None:
    _STATE.clear()
    _STATE.update(cfg=cfg, cache=cache_root)


def load_models(cfg: DlibConfig) -> _Models:
    """HOG detector, landmark predictor and network for ``cfg``."""
    import dlib

    return _Models(cfg, dlib.get_frontal_face_detector(),
                   dlib.shape_predictor(str(cfg.landmarks)),
                   dlib.face_recognition_model_v1(str(cfg.resnet)))


def _models() -> _Models:
    """This process's models (loaded on the first cache miss)."""
    if "models" not in _STATE:
        _STATE["models"] = load_models(_STATE["cfg"])
    return _STATE["models"]


def _select(rects: Any, scores: Sequence[float], shape: tuple[int, ...], policy: str) -> Any:
    from facebench.faces.detect.base import Detection, select_face

    dets = [Detection(np.array([r.left(), r.top(), r.right(), r.bottom()], np.float32),
                      float(s), np.zeros((0, 2), np.float32)) for r, s in zip(rects, scores,
                                                                               strict=True)]
    best = select_face(dets, shape, policy)  # type: ignore[arg-type]
    return rects[next(i for i, d in enumerate(dets) if d is best)]


def _detect(rgb: np.ndarray, m: _Models) -> tuple[Any, list[float], int, str] | None:
    """Faces found by HOG at the first upsample level that finds any, else by the CNN."""
    import dlib

    for up in m.cfg.upsample:
        rects, scores, _ = m.detector.run(rgb, up, 0.0)
        if len(rects):
            return rects, list(scores), up, "hog"
    if m.cfg.cnn is not None:
        for up in m.cfg.upsample:
            dets = m.cnn_detector()(rgb, up)
            if len(dets):
                return (dlib.rectangles([d.rect for d in dets]),
                        [d.confidence for d in dets], up, "cnn")
    return None


def describe_rgb(rgb: np.ndarray, m: _Models) -> DlibFace:
    """Raw descriptor rows (1, or 2 with flip) of the selected face in an RGB image, or a
    :class:`DlibFace` with ``desc=None`` when no face is found (``index`` is left at -1)."""
    import dlib

    cfg = m.cfg
    found = _detect(rgb, m)
    if found is None:
        ups = " and ".join(str(u) for u in cfg.upsample)
        what = "dlib HOG" + (" and MMOD CNN" if cfg.cnn is not None else "")
        return DlibFace(-1, None, reason=f"no face detected ({what}, upsample {ups})")
    rects, scores, up, det = found
    rect = _select(rects, scores, rgb.shape, cfg.select)
    shape = m.predictor(rgb, rect)
    chip = dlib.get_face_chip(rgb, shape, size=cfg.chip_size, padding=cfg.padding)
    chips = [chip, np.ascontiguousarray(chip[:, ::-1])] if cfg.flip else [chip]
    rows = [np.asarray(m.net.compute_face_descriptor(c, cfg.num_jitters), np.float64)
            for c in chips]
    return DlibFace(-1, np.stack(rows), upsample=up, faces=len(rects), detector=det)


def _compute(index: int, path: Path, data: bytes) -> DlibFace:
    try:  # a large image is detected and chipped reduced (longest side DETECT_MAX_SIDE)
        bgr, _ = decode_reduced(data, str(path), DETECT_MAX_SIDE)
    except ImageError as exc:
        return DlibFace(index, None, reason=f"bad image: {exc.reason}")
    face = describe_rgb(np.ascontiguousarray(bgr[..., ::-1]), _models())
    face.index = index
    return face


def _one(index: int, path: Path) -> DlibFace:
    try:
        data = read_image_file(path)  # a FIFO or device is never opened for reading
    except ImageError as exc:
        return DlibFace(index, None, reason=f"unreadable: {exc.reason}")
    except OSError as exc:
        return DlibFace(index, None, reason=f"unreadable: {exc.strerror or exc}")
    root: Path | None = _STATE["cache"]
    entry = None
    if root is not None:
        digest = hashlib.sha256(data).hexdigest()
        entry = root / digest[:2] / f"{digest}.npz"
        if entry.is_file():
            try:
                with np.load(entry, allow_pickle=False) as z:
                    reason = str(z["reason"]) or None
                    return DlibFace(index, None if reason else z["desc"], reason,
                                    int(z["upsample"]) if not reason else None,
                                    int(z["faces"]), cached=True,
                                    detector=str(z["detector"]) if "detector" in z else "hog")
            except (OSError, ValueError, KeyError):
                pass  # a damaged entry is recomputed
    face = _compute(index, path, data)
    if entry is not None:
        _store(entry, face)
    return face


def _store(entry: Path, face: DlibFace) -> None:
    tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, desc=face.desc if face.desc is not None else np.zeros((0, 128)),
                     reason=np.str_(face.reason or ""), faces=np.int32(face.faces),
                     detector=np.str_(face.detector),
                     upsample=np.int32(-1 if face.upsample is None else face.upsample))
        os.replace(tmp, entry)
    except OSError:
        tmp.unlink(missing_ok=True)  # a read-only or full cache never fails the run


def _work(job: tuple[int, list[Path]]) -> list[DlibFace]:
    start, paths = job
    return [_one(start + i, p) for i, p in enumerate(paths)]


# ---- driver side -----------------------------------------------------------------------------


def describe_images(paths: Sequence[Path], cfg: DlibConfig, cache_dir: Path | None = None,
                    workers: int = 2, chunk: int = 8) -> tuple[Iterator[DlibFace], dict[str, Any]]:
    """Stream a :class:`DlibFace` per path, in order; returns the iterator and the settings
    record. ``cache_dir`` is the facebench cache root (entries go under ``dlib/<key>/``)."""
    settings = cfg.settings()
    root = None
    if cache_dir is not None:
        root = Path(cache_dir) / "dlib" / cfg.key()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            root = None
    record = {**settings, "cache": str(root) if root else None, "workers": workers,
              "preprocess": preprocess_record(cfg)}
    faces = ordered_map(_work, chunks(paths, chunk), workers, _init_worker, (cfg, root))
    return faces, record


def embed_images_dlib(cell: Any, images: Sequence[Path], root: Path, ctx: Any, *,
                      config: DlibConfig | None = None) -> Any:
    """dlib counterpart of :func:`facebench.pipeline.embeddings.embed_images`: an ``Embedded``
    with L2-normalized float32 descriptors ``(n, 128)`` (NaN rows for FtA images)."""
    from facebench.pipeline.embeddings import Embedded

    t0 = time.perf_counter()
    cfg = config or config_from_cell(cell)
    n = len(images)
    faces, record = describe_images(images, cfg, ctx.cache_dir, cell.protocol.workers)
    emb = np.full((n, EMBEDDING_SIZE), np.nan, dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    fta: list[dict[str, Any]] = []
    cached = upsampled = multi = by_cnn = 0
    for done, face in enumerate(faces, 1):
        cached += face.cached
        if face.desc is None:
            fta.append({"image": relative_name(images[face.index], root), "reason": face.reason})
        else:
            raw = face.desc.sum(axis=0)  # flip: e(x) + e(hflip(x)), then normalize
            emb[face.index] = (raw / np.linalg.norm(raw)).astype(np.float32)
            valid[face.index] = True
            upsampled += face.upsample not in (None, cfg.upsample[0])
            multi += face.faces > 1
            by_cnn += face.detector == "cnn"
        ctx.progress("images", done, n)
    if not valid.any():
        raise RuntimeError(f"no face acquired in any of the {n} images; check the image root")
    record.update(cache_hits=cached, acquired=int(valid.sum()), upsampled=upsampled,
                  multiple_faces=multi, cnn_fallback=by_cnn)
    engine = {"engine": "dlib", "device": "cpu", "threads": {"intra_op": 1, "inter_op": 1},
              "workers": cell.protocol.workers, "resnet": record["resnet"]}
    return Embedded(emb, valid, record, fta, engine,
                    {"acquire_and_embed": round(time.perf_counter() - t0, 3)})


def embed_dataset_dlib(cell: Any, pairs: Any, ctx: Any, *, config: DlibConfig | None = None,
                       ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], list[dict]]:
    """``(emb, valid, record, fta)`` for a :class:`~facebench.datasets.PairSet`'s images (the
    ``embed_dataset`` contract): descriptors, valid mask, acquisition record, FtA list."""
    e = embed_images_dlib(cell, pairs.images, pairs.root, ctx, config=config)
    return e.emb, e.valid, e.acquire, e.fta


# ---- cost ------------------------------------------------------------------------------------


def _dlib_int(data: bytes, pos: int) -> tuple[int, int]:
    """One integer in dlib's serialization (size byte, then little-endian bytes)."""
    head = data[pos]
    size = head & 0x0F
    value = int.from_bytes(data[pos + 1:pos + 1 + size], "little")
    return (-value if head & 0x80 else value), pos + 1 + size


def _tensor_at(data: bytes, pos: int) -> int | None:
    """Element count of a dlib tensor serialized at ``pos`` (version 2 header), else None."""
    try:
        version, p = _dlib_int(data, pos)
        if version != 2:
            return None
        dims = []
        for _ in range(4):
            v, p = _dlib_int(data, p)
            dims.append(v)
    except IndexError:
        return None
    if min(dims) < 1:
        return None
    count = int(np.prod(dims))
    return count if p + 4 * count <= len(data) else None


def count_params(path: Path) -> dict[str, int]:
    """Σ numel of the learnable tensors stored in a dlib network file (``con_``, ``affine_``,
    ``fc_`` layers), read from the file itself: ``{"con_": n, "affine_": n, "fc_": n, "total"}``."""
    data = Path(path).read_bytes()
    out: dict[str, int] = {}
    for tag in ("con_", "affine_", "fc_"):
        name = tag.encode()
        total, pos = 0, data.find(name)
        while pos >= 0:
            for off in range(pos + len(name), pos + len(name) + 48):
                count = _tensor_at(data, off)
                if count is not None:
                    total += count
                    break
            pos = data.find(name, pos + 1)
        out[tag] = total
    out["total"] = sum(out.values())
    return out


def count_macs(size: int = CHIP_SIZE) -> dict[str, Any]:
    """Multiply-accumulates of one descriptor, walked from the published network definition
    (dlib ``dnn_face_recognition_ex.cpp``): conv + fc only, dlib's padding rule (stride 1 →
    same, else 0) and ``add_prev``'s max-size zero-padded sum."""
    macs = params = 0
    c, h = 3, size

    def conv(cout: int, k: int, stride: int) -> None:
        nonlocal macs, params, c, h
        pad = k // 2 if stride == 1 else 0
        h = (h + 2 * pad - k) // stride + 1
        macs += h * h * cout * c * k * k
        params += cout * c * k * k + cout + 2 * cout  # weights, bias, affine gamma/beta
        c = cout

    def block(n: int, down: bool) -> None:
        nonlocal c, h
        cin, hin = c, h
        conv(n, 3, 2 if down else 1)
        conv(n, 3, 1)
        if down:
            c, h = max(cin, n), max(h, (hin - 2) // 2 + 1)  # avg_pool 2×2/2 shortcut

    conv(32, 7, 2)
    h = (h - 3) // 2 + 1  # max_pool 3×3/2
    for n, reps in ((32, 3), (64, 4), (128, 3), (256, 3), (256, 1)):
        for r in range(reps):
            block(n, down=(r == 0 and n != 32))
    macs += c * EMBEDDING_SIZE  # fc_no_bias after global average pooling
    params += c * EMBEDDING_SIZE
    return {"macs": macs, "params": params, "input": [size, size, 3],
            "skipped": ["affine", "relu", "add_prev", "avg_pool", "max_pool"]}


def run_efficiency_dlib(
    model_path: Path | None = None,
    batch_sizes: Sequence[int] = (1,),
    warmup: int = 10,
    min_iters: int = 50,
    min_seconds: float = 2.0,
    progress: Callable[[int, int], None] | None = None,
    *,
    max_seconds: float | None = None,
    num_jitters: int = 0,
    memory_interval_s: float = 0.01,
) -> dict[str, Any]:
    """Descriptor cost per 150×150 chip, with the metric names of
    :func:`facebench.probes.efficiency.metric_names`. Batch B = one
    ``compute_face_descriptor(list of B chips)`` call. Detection, landmarks and chip extraction
    are not included (they are the model's preprocessing, ~15–25 ms per 250×250 image)."""
    import dlib

    from facebench import environment
    from facebench.probes.efficiency import (
        metric_names,
        step_reporter,
        sweep_details,
        sweep_metrics,
    )
    from facebench.probes.latency import measure_cold_start, measure_latency
    from facebench.probes.memory import RssSampler, current_rss

    reason = dlib_unavailable()
    if reason:
        from facebench.engines import EngineUnavailable

        raise EngineUnavailable(reason)
    batch_sizes = sorted({int(b) for b in batch_sizes})
    path = Path(model_path or default_model_dir() / RESNET_FILE)
    rng = np.random.default_rng(0)
    chips = [rng.integers(0, 256, (CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
             for _ in range(batch_sizes[-1])]
    say = step_reporter(progress, len(batch_sizes) + 2)

    class _Net:
        def __init__(self) -> None:
            self.net = dlib.face_recognition_model_v1(str(path))

        def infer(self, batch: list[np.ndarray]) -> Any:
            return self.net.compute_face_descriptor(batch, num_jitters)

    metrics: dict[str, Any] = dict.fromkeys(metric_names(batch_sizes))
    t_cell = time.monotonic()
    load_before = environment.load_avg()
    sampler = RssSampler(interval_s=memory_interval_s, baseline_bytes=current_rss()).start()
    try:
        say()
        engine, cold = measure_cold_start(_Net, chips[:batch_sizes[0]])
        stats = {}
        for b in batch_sizes:
            say()
            batch = chips[:b]
            stats[b] = measure_latency(lambda batch=batch: engine.infer(batch), warmup=warmup,
                                       min_iters=min_iters, min_seconds=min_seconds,
                                       max_seconds=max_seconds, batch=b)
    finally:
        mem = sampler.stop()
    say()
    params, comp = count_params(path), count_macs()
    gmac = comp["macs"] / 1e9
    metrics.update(params=params["total"], gmac=gmac, gflops=2 * gmac,
                   model_size_bytes=path.stat().st_size, cold_start_ms=cold.total_ms)
    metrics.update(sweep_metrics(stats, mem))
    rate = {str(b): 2 * gmac * b / (st.p50_ms / 1e3) for b, st in stats.items()}
    metrics["gflops_per_s"] = rate[str(batch_sizes[-1])]
    peak = environment.cpu_peak_gflops(cores=1)
    if peak:
        metrics["pct_of_peak"] = 100.0 * metrics["gflops_per_s"] / peak["gflops"]
    load_after = environment.load_avg()
    details = {
        "engine": "dlib",
        "engine_info": {"dlib_version": dlib.__version__, "cuda": bool(dlib.DLIB_USE_CUDA),
                        "blas": bool(dlib.DLIB_USE_BLAS), "file": str(path),
                        "sha256": file_sha256(path)},
        "threads": {"intra_op": 1, "inter_op": 1},
        "input": "random uint8 150×150×3 chips (cost does not depend on content)",
        "num_jitters": num_jitters,
        **sweep_details(stats, cold, batch_sizes[0]),
        "latency_definition": {"percentiles": "numpy 'linear' (type 7)", "std": "ddof=1",
                               "min_iters": min_iters, "min_seconds": min_seconds,
                               "max_seconds": max_seconds, "warmup": warmup,
                               "scope": "compute_face_descriptor on 150×150 chips only"},
        "memory": mem.as_dict(),
        "compute": {"params": params["total"], "params_by_layer": params,
                    "params_source": "tensors read from the .dat file",
                    "params_analytic": comp["params"], "macs": comp["macs"], "gmac": gmac,
                    "macs_source": "analytic walk of the network definition",
                    "input": comp["input"], "skipped": comp["skipped"]},
        "rate": {"gflops_per_s": rate, "metric_batch": batch_sizes[-1], "latency": "p50",
                 "peak": peak},
        "load_avg_before": load_before,
        "load_avg_after": load_after,
        "busy": environment.is_busy(load_before, load_after, environment.cores_used(),
                                    own_threads=1, duration_s=time.monotonic() - t_cell),
        "duration_s": time.monotonic() - t_cell,
    }
    say()
    return {"metrics": metrics, "details": details}


"""The one embedding loop: a dataset's images → acquired faces → embeddings, for one cell.

Work is cut into chunks of :data:`facebench.faces.acquire.CHUNK` images. An :class:`Embedder`
(one per process: the detector, the alignment caches and the engine) turns a chunk into a
:class:`Chunk`: acquire (decode, detect, align; :mod:`facebench.faces.acquire`), then embed the
acquired crops ``batch_size`` at a time. Strategies only decide where chunks run:

- ``serial``: in the cell's process (``workers: 1``);
- ``pool``: a spawn pool of ``workers`` processes; on CPU each worker acquires *and* embeds with
  a one-thread engine (every core runs every stage, only embeddings cross processes); on CUDA the
  workers acquire and the cell's process embeds on the GPU;
- ``shards``: ``shard_size`` images per task on the cell's shard runner (Ray, handed in by the
  runner through :class:`~facebench.pipeline.context.CellContext`); without one, shards run one
  after another here.

Embeddings are cached under a key made of the model's content hash, the engine, device and
precision, the preprocessing, flip, batch size, the detector/alignment settings, the path and
content of every image and (for a dataset that gives its landmarks) those landmarks, so a second
run of the same suite builds no model at all. Each embedding's norm before L2 normalisation is
kept beside it (template norm weighting reads it). An entry is ``<key>.npz`` (embeddings, valid
flags, norms, with their sha256 and that of the record) and ``<key>.json`` (the acquisition
record); one that is damaged or altered is recomputed and replaced, with a warning
(:mod:`facebench.cache`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.cache import load_checked_json, load_npz, store_npz, warn_damaged
from facebench.engines import (
    EngineConfig,
    EngineUnavailable,
    ModelSource,
    check_available,
    create_engine,
    run_source,
)
from facebench.engines.quantize import quantize_onnx, recommended_settings
from facebench.engines.sources import export_key
from facebench.faces.acquire import (
    CHUNK,
    AcquireConfig,
    Caches,
    Face,
    GivenLandmarks,
    acquire_chunk,
    detector_settings,
    init_with_cache,
    prepare,
)
from facebench.faces.align import _Align
from facebench.faces.degrade import Level
from facebench.io import atomic_write_text, sha256_file, sha256_file_once, to_json
from facebench.paths import default_cache_dir, relative_name
from facebench.pipeline.calibrate import calibration_sample
from facebench.pipeline.context import CellContext, engine_parts
from facebench.pipeline.embed import embed_raw, l2_normalize
from facebench.pipeline.outcome import nothing_scored
from facebench.plan import Cell
from facebench.pool import chunks, ordered_map
from facebench.suite.schema import Preprocess

EMBED_CACHE_VERSION = 4  # 4: checksummed entries (facebench.cache)
#: Stages whose seconds every embedding cell reports (summed over the processes doing them).
STAGES = ("decode", "detect", "align", "embed")


@dataclass
class Embedded:
    """Per-image embeddings (NaN rows where no face was acquired), each one's norm before L2
    normalisation (NaN likewise), and how they were made."""

    emb: np.ndarray
    valid: np.ndarray
    acquire: dict[str, Any]
    fta: list[dict[str, Any]]
    engine: dict[str, Any]
    timings_s: dict[str, float] = field(default_factory=dict)
    precision: dict[str, Any] | None = None  # details["precision"]: see cell_source
    norms: np.ndarray | None = None


@dataclass(frozen=True)
class EmbedWork:
    """Everything a process needs to turn chunks of images into embeddings (picklable)."""

    acq: AcquireConfig
    caches: Caches
    source: ModelSource
    cfg: EngineConfig
    pre: Preprocess
    flip: bool
    batch_size: int
    engine_cache: Path | None


@dataclass
class Chunk:
    """Embeddings of images ``start:start+valid.size`` (NaN rows for failures to acquire) and
    their norms before normalisation."""

    start: int
    emb: np.ndarray | None  # None when no face was acquired in the chunk
    norms: np.ndarray  # float32, NaN for failures to acquire
    valid: np.ndarray
    fta: list[tuple[int, str | None]]  # (index in the whole list, reason)
    cache_hits: int
    timings: dict[str, float]
    engine: dict[str, Any] | None = None  # the engine's info, from the chunk that built it
    node: str | None = None  # where it ran (a Ray node id), when known


class Embedder:
    """One process's half of the loop: acquisition state and (built on first use) the engine."""

    def __init__(self, work: EmbedWork, pool: bool) -> None:
        init_with_cache(work.acq, work.caches, pool)
        self.work = work
        self._engine: Any = None
        self._new_engine_info: dict[str, Any] | None = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if self._engine is None:
            t0 = time.perf_counter()
            self._engine = create_engine(self.work.source, self.work.cfg,
                                         cache_dir=self.work.engine_cache)
            self._new_engine_info = {**self._engine.info(),
                                     "load_s": round(time.perf_counter() - t0, 3)}
        return self._engine.infer(batch)

    def acquire(self, job: Job) -> tuple[int, list[Face], dict[str, float]]:
        start, paths, given = job
        timings: dict[str, float] = {}
        faces = acquire_chunk(self.work.acq, self.work.caches, start, paths, timings, given)
        return start, faces, timings

    def embed(self, start: int, faces: list[Face], timings: dict[str, float]) -> Chunk:
        """Embed the acquired faces of a chunk ``batch_size`` at a time."""
        w = self.work
        n = len(faces)
        got = [(i, f.crop) for i, f in enumerate(faces) if f.crop is not None]
        emb: np.ndarray | None = None
        norms = np.full(n, np.nan, dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        t0 = time.perf_counter()
        for b in range(0, len(got), w.batch_size):
            part = got[b:b + w.batch_size]
            raw = embed_raw(self.infer, [c for _, c in part], w.pre, w.flip)
            if emb is None:
                emb = np.full((n, raw.shape[1]), np.nan, dtype=np.float32)
            idx = [i for i, _ in part]
            emb[idx] = l2_normalize(raw)
            norms[idx] = np.linalg.norm(raw, axis=1)
            valid[idx] = True
        timings["embed"] = timings.get("embed", 0.0) + time.perf_counter() - t0
        info, self._new_engine_info = self._new_engine_info, None
        if info is not None:
            timings["model_load"] = timings.get("model_load", 0.0) + info.pop("load_s")
        fta = [(start + i, f.reason) for i, f in enumerate(faces) if f.crop is None]
        return Chunk(start, emb, norms, valid, fta, sum(f.cached for f in faces), timings, info)

    def run(self, job: Job) -> Chunk:
        return self.embed(*self.acquire(job))


# ---- strategies ------------------------------------------------------------------------------

#: A chunk of work: its first image's index, the image paths, their given landmarks (if any).
Job = tuple[int, list[Path], GivenLandmarks | None]

_WORKER: dict[str, Embedder] = {}


def _pool_init(work: EmbedWork, pool: bool = True) -> None:
    _WORKER["embedder"] = Embedder(work, pool)


def _pool_run(job: Job) -> list[Chunk]:
    return [_WORKER["embedder"].run(job)]


def _pool_acquire(job: Job) -> list[tuple[int, list[Face], dict[str, float]]]:
    return [_WORKER["embedder"].acquire(job)]


def one_thread(cfg: EngineConfig) -> EngineConfig:
    """The engine config of a CPU pool worker: the same engine, one intra- and inter-op thread."""
    return dataclasses.replace(cfg, intra_op_threads=1, inter_op_threads=1)


def strategy_of(work: EmbedWork, workers: int) -> str:
    if workers <= 1:
        return "serial"
    return "pool" if work.cfg.device == "cpu" else "pool-acquire"


def run_chunks(work: EmbedWork, images: list[Path], workers: int, start: int = 0,
               given: GivenLandmarks | None = None) -> Iterator[Chunk]:
    """Chunks of ``images`` (numbered from ``start``; ``given``: their landmarks, row i for
    ``images[i]``), in order, by the strategy for ``workers`` on the work's device."""
    jobs: list[Job] = [(start + s, paths, None if given is None else given.part(s, s + len(paths)))
                       for s, paths in chunks(images, CHUNK)]
    how = strategy_of(work, workers)
    if how == "serial":
        embedder = Embedder(work, pool=False)
        for job in jobs:
            yield embedder.run(job)
    elif how == "pool":
        mine = dataclasses.replace(work, cfg=one_thread(work.cfg))
        yield from ordered_map(_pool_run, jobs, workers, _pool_init, (mine,))
    else:  # the GPU stays in this process; the pool detects and aligns
        embedder = Embedder(work, pool=False)
        for acquired in ordered_map(_pool_acquire, jobs, workers, _pool_init, (work,)):
            yield embedder.embed(*acquired)


def embed_shard(work: EmbedWork, start: int, paths: list[Path],
                given: GivenLandmarks | None = None) -> Chunk:
    """One shard (images ``start:start+len(paths)``) through the serial loop, as one chunk: what
    a shard runner's task runs."""
    return merge_chunks(list(run_chunks(work, paths, 1, start, given)), start, len(paths))


def merge_chunks(parts: list[Chunk], start: int, n: int) -> Chunk:
    """Chunks covering ``start:start+n`` (any order) → one chunk."""
    dim = next((c.emb.shape[1] for c in parts if c.emb is not None), None)
    emb = None if dim is None else np.full((n, dim), np.nan, dtype=np.float32)
    norms = np.full(n, np.nan, dtype=np.float32)
    valid = np.zeros(n, dtype=bool)
    timings: dict[str, float] = {}
    for c in parts:
        lo, hi = c.start - start, c.start - start + c.valid.size
        if c.emb is not None and emb is not None:
            emb[lo:hi] = c.emb
        norms[lo:hi] = c.norms
        valid[lo:hi] = c.valid
        for k, v in c.timings.items():
            timings[k] = timings.get(k, 0.0) + v
    fta = [x for c in sorted(parts, key=lambda c: c.start) for x in c.fta]
    engine = next((c.engine for c in parts if c.engine), None)
    node = next((c.node for c in parts if c.node), None)
    return Chunk(start, emb, norms, valid, fta, sum(c.cache_hits for c in parts), timings, engine,
                 node)


# ---- one cell --------------------------------------------------------------------------------


def batch_size(cell: Cell) -> int:
    """The protocol's batch size, else the device's smallest on CPU (per-image cost is lowest
    there: MobileFaceNet with flip, one thread, 5.5 / 7.4 / 10.0 ms per image at batch 1 / 8 /
    32) and its largest on CUDA."""
    declared = getattr(cell.protocol, "batch_size", None)
    if declared:
        return int(declared)
    sizes = cell.device.batch_sizes
    return int(min(sizes) if cell.device.device == "cpu" else max(sizes))


def flip_of(cell: Cell) -> bool:
    pre = cell.model.preprocess
    return bool(cell.protocol.flip if pre.flip is None else pre.flip)


def protocol_acquire_config(proto: Any, align: _Align, size: tuple[int, int],
                            cache_dir: Path | None, given: bool = False) -> AcquireConfig:
    """How a protocol's detector settings acquire crops for an alignment (one definition for
    the cells and for `facebench align`, so both hit the same cache entries); ``size`` fills an
    alignment whose size the suite left open. ``given``: the dataset gives each image's
    landmarks, so no detector runs (the ``given`` detector)."""
    det = proto.detector
    options: dict[str, Any] = {}
    if det.name != "none":
        if det.model is not None:
            options["model"] = det.model
        if det.score_threshold is not None:
            options["score_threshold"] = det.score_threshold
    acq = AcquireConfig(detector=det.name, detector_options=options, select=det.select,
                        align=align.with_size(size), cache_dir=cache_dir)
    return acq.with_given_landmarks() if given else acq


def crop_size(model: Any, proto: Any) -> tuple[int, int]:
    """An alignment's default output size: the protocol's align_size, else the model input."""
    if getattr(proto, "align_size", None):
        return (proto.align_size, proto.align_size)
    return tuple(model.preprocess.input_size)  # type: ignore[return-value]


def degrade_level(proto: Any) -> Level | None:
    """The degradation level of a planned protocol (:func:`facebench.plan.expand_degrade` leaves
    one level in each degraded protocol), or ``None`` for a clean one."""
    spec = getattr(proto, "degrade", None)
    return None if spec is None else spec.levels()[0]


def clean_cell(cell: Cell, base_id: str) -> Cell:
    """The cell of a degraded protocol's clean twin (same work without the degradation)."""
    proto = cell.protocol.model_copy(update={"degrade": None, "id": base_id})
    return dataclasses.replace(cell, protocol=proto)


def acquire_config(cell: Cell, ctx: CellContext, given: bool = False) -> AcquireConfig:
    acq = protocol_acquire_config(cell.protocol, cell.model.align,
                                  crop_size(cell.model, cell.protocol), ctx.cache_dir, given)
    level = degrade_level(cell.protocol)
    return acq if level is None else dataclasses.replace(acq, degrade=level)


def _engine_cache(ctx: CellContext) -> Path | None:
    return ctx.cache_dir / "engines" if ctx.cache_dir else None


#: This process's int8 models per cell and cache: quantized once, before any worker starts.
_CELL_SOURCES: dict[tuple[str, str], tuple[ModelSource, EngineConfig, dict[str, Any]]] = {}


def cell_source(cell: Cell, ctx: CellContext) -> tuple[ModelSource, EngineConfig,
                                                        dict[str, Any]]:
    """The source the cell's engine runs, its config, and ``details["precision"]``.

    fp32 and fp16: the model's own source. int8 (ONNX Runtime): the model — its ONNX export
    for a torch source — quantized here by :func:`facebench.engines.quantize.quantize_onnx`
    (cached under ``<cache>/quantized/``), statically on a seeded sample of the images of
    ``cell.calibration`` acquired with this model's alignment
    (:mod:`facebench.pipeline.calibrate`), or dynamically when the cell has no calibration
    protocol or the device asks for it. Raises :class:`EngineUnavailable` when the variant
    cannot run here (e.g. a model that came quantized)."""
    source, cfg = engine_parts(cell.model, cell.device)
    dev = cell.device
    if dev.precision != "int8":
        return source, cfg, {"precision": dev.precision}
    memo = (cell.spec_sha256, str(ctx.cache_dir))
    if memo in _CELL_SOURCES:
        return _CELL_SOURCES[memo]
    reason = check_available(cfg, source)
    if reason:
        raise EngineUnavailable(reason)
    onnx = run_source(source, cfg, _engine_cache(ctx))
    q = dev.quantization
    sample = None
    if q.mode == "static" and cell.calibration is not None:
        proto = cell.calibration
        acq = protocol_acquire_config(proto, cell.model.align, crop_size(cell.model, proto),
                                      ctx.cache_dir)
        sample = calibration_sample(proto, acq, cell.model.preprocess, q.calibration_images,
                                    q.seed)
    settings = recommended_settings(cfg, q.mode, q.per_channel,
                                    sample.identity() if sample else None)
    ctx.progress("quantize", 0, 1)
    out_dir = Path(ctx.cache_dir or default_cache_dir()) / "quantized"
    made = quantize_onnx(onnx.path, out_dir, settings,  # type: ignore[arg-type]
                         sample.batches if sample else None)
    ctx.progress("quantize", 1, 1)
    calibration = None
    if sample is not None and made.mode == "static":
        calibration = sample.record()
        if made.reused:  # calibrated when the file was made: its record says how many images
            calibration["images_used"] = used = made.calibration_images
            calibration["failed_to_acquire"] = None if used is None else len(sample.images) - used
    record = {"precision": "int8", "mode": made.mode, "requested_mode": q.mode,
              "reason": made.reason, "per_channel": q.per_channel,
              "activation_type": settings.activation_type if made.mode == "static" else None,
              "weight_type": settings.weight_type, "reduce_range": settings.reduce_range,
              "types_chosen": settings.why_types, "calibration": calibration,
              "model_sha256": made.sha256, "model_path": str(made.path),
              "source_path": str(onnx.path), "quantize_s": made.seconds, "reused": made.reused,
              "pre_process": made.pre_process, "versions": made.versions}
    run = ModelSource(kind="onnx", path=made.path, arch=source.arch,
                      embedding_size=source.embedding_size, input_size=source.input_size,
                      layout=source.layout)
    _CELL_SOURCES[memo] = (run, cfg, record)
    return run, cfg, record


def make_work(cell: Cell, ctx: CellContext, acq: AcquireConfig) -> tuple[EmbedWork,
                                                                           dict[str, Any]]:
    """The cell's :class:`EmbedWork` and acquisition record. The engine is checked here, a
    torch model for ONNX Runtime exported once and an int8 model quantized once
    (:func:`cell_source`), so that workers only load it."""
    source, cfg, _ = cell_source(cell, ctx)
    reason = check_available(cfg, source)
    if reason:
        raise EngineUnavailable(reason)
    # ONNX Runtime's export of a torch model is made once here, into the engine cache where the
    # workers' engines find it; the work keeps the original source, so a node that does not
    # share this cache (a Ray shard elsewhere) makes its own
    run_source(source, cfg, _engine_cache(ctx))
    caches, record = prepare(acq)
    work = EmbedWork(acq, caches, source, cfg, cell.model.preprocess, flip_of(cell),
                     batch_size(cell), _engine_cache(ctx))
    return work, record


def compute(cell: Cell, images: list[Path], root: Path, ctx: CellContext,
            acq: AcquireConfig, given: GivenLandmarks | None = None) -> Embedded:
    """Acquire and embed ``images`` by the cell's strategy; merge the chunks in order."""
    proto = cell.protocol
    t0 = time.perf_counter()
    work, record = make_work(cell, ctx, acq)
    n = len(images)
    shard_size = getattr(proto, "shard_size", None)
    parts: list[Chunk] = []
    done = 0

    def got(chunk: Chunk) -> None:
        nonlocal done
        parts.append(chunk)
        done += chunk.valid.size
        ctx.progress("images", done, n)

    if shard_size:
        jobs = [(s, images[s:s + shard_size],
                 None if given is None else given.part(s, s + shard_size))
                for s in range(0, n, shard_size)]
        where = "local"
        if ctx.shards is not None:
            where = ctx.shards.name
            ctx.shards.map(embed_shard, [(work, s, paths, g) for s, paths, g in jobs], got)
        else:
            for s, paths, g in jobs:
                got(merge_chunks(list(run_chunks(work, paths, proto.workers, s, g)), s,
                                 len(paths)))
        record["shards"] = {"size": shard_size, "count": len(jobs), "executor": where,
                            "nodes": sorted({c.node for c in parts if c.node})}
        strategy = "shards"
    else:
        for chunk in run_chunks(work, images, proto.workers, given=given):
            got(chunk)
        strategy = strategy_of(work, proto.workers)
    whole = merge_chunks(parts, 0, n)
    fta = [{"image": relative_name(images[i], root), "reason": r} for i, r in whole.fta]
    if whole.emb is None:
        raise nothing_scored(f"no face acquired in any of the {n} images (check the detector "
                             "settings, the landmarks and the image root)", fta, n,
                             {"fta_images_list": fta, "acquire": record})
    record.update(cache_hits=whole.cache_hits, acquired=int(whole.valid.sum()))
    threads = (1 if strategy == "pool" else cell.device.threads.intra_op)
    record["parallel"] = {"strategy": strategy, "workers": proto.workers,
                          "batch_size": work.batch_size, "chunk": CHUNK,
                          "engine_threads_per_worker": threads}
    wall = time.perf_counter() - t0
    timings = {k: round(v, 3) for k, v in whole.timings.items()}
    timings["acquire_and_embed"] = round(wall, 3)
    engine = {**(whole.engine or {}), "batch_size": work.batch_size}
    return Embedded(whole.emb, whole.valid, record, fta, engine, timings, norms=whole.norms)


def _model_key(cell: Cell, ctx: CellContext | None = None) -> str:
    if cell.device.precision == "int8":  # the quantized file the engine runs
        if ctx is None:
            raise ValueError("the embedding cache key of an int8 cell needs its context")
        source, cfg, precision = cell_source(cell, ctx)
        content = precision["model_sha256"]
    else:
        source, cfg = engine_parts(cell.model, cell.device)
        if source.kind in ("zoo", "torchscript"):  # the export's key: no export to look up
            content = export_key(source)
        else:  # the file the engine runs
            content = sha256_file_once(run_source(source, cfg).path)  # type: ignore[arg-type]
    # int8: ``content`` is the quantized file's sha256, so fp32 keys (and caches) are unchanged
    return json.dumps({"model": content, "engine": cfg.engine, "device": cfg.device,
                       "fp16": cfg.fp16, "providers": list(cfg.resolved_providers())})


def _images_digest(images: list[Path]) -> str:
    """Identity of the image set: the path and the content (sha256) of every file, in order. A
    file replaced by another of the same size and modification time still changes the key;
    hashing full LFW (7,701 images) takes about a second."""
    h = hashlib.sha256()
    for p in images:
        try:
            mode = p.stat().st_mode
            # never open a FIFO or device (it could block): its type is its identity here
            content = sha256_file(p) if stat.S_ISREG(mode) else f"type:{stat.S_IFMT(mode):o}"
        except OSError as exc:
            content = f"unreadable:{exc.errno}"
        h.update(f"{p}\0{content}\n".encode())
    return h.hexdigest()


def cache_key(cell: Cell, images: list[Path], acq: AcquireConfig,
              ctx: CellContext | None = None, given: GivenLandmarks | None = None) -> str:
    """Key of a cell's embeddings (``ctx``: needed for an int8 cell, whose key holds the
    quantized model's sha256; ``given``: the dataset's landmarks)."""
    blob = json.dumps({
        "landmarks": None if given is None else given.digest(),
        "v": EMBED_CACHE_VERSION,
        "model": _model_key(cell, ctx),
        "preprocess": cell.model.preprocess.model_dump(mode="json"),
        "flip": flip_of(cell),
        "batch_size": batch_size(cell),  # batching changes float rounding
        "acquire": acq.key(detector_settings(acq)),
        "images": _images_digest(images),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def embed_images(cell: Cell, images: list[Path], root: Path, ctx: CellContext,
                 given: GivenLandmarks | None = None) -> Embedded:
    """Embeddings for ``images``, from the embedding cache when this exact work was done.
    ``given``: the dataset's landmarks (row i for ``images[i]``): aligned from them, no
    detector."""
    if given is not None and len(given) != len(images):
        raise ValueError(f"{len(given)} landmark rows for {len(images)} images")
    acq = acquire_config(cell, ctx, given is not None)
    precision = cell_source(cell, ctx)[2]
    use_cache = ctx.cache_dir is not None and getattr(cell.protocol, "cache_embeddings", True)
    if not use_cache:
        out = compute(cell, images, root, ctx, acq, given)
        out.precision = precision
        return out
    t0 = time.perf_counter()
    key = cache_key(cell, images, acq, ctx, given)
    base = Path(ctx.cache_dir) / "embeddings" / key  # type: ignore[arg-type]
    hit = _load_entry(base, len(images))
    if hit is not None:
        (emb, valid, norms), info = hit
        info["acquire"]["embedding_cache"] = {"key": key, "hit": True}
        ctx.progress("images", len(images), len(images))
        return Embedded(emb, valid, info["acquire"], info["fta"], info["engine"],
                        {"cache_load": round(time.perf_counter() - t0, 3)}, precision, norms)
    out = compute(cell, images, root, ctx, acq, given)
    out.precision = precision
    out.acquire["embedding_cache"] = {"key": key, "hit": False}
    _store_entry(base, out)
    return out


def _load_entry(base: Path, n: int) -> tuple[tuple[np.ndarray, ...], dict[str, Any]] | None:
    """The cached ``(emb, valid, norms)`` and record of ``n`` images at ``base`` (``.npz``
    with the sha256 of the ``.json`` record); ``None`` when absent, or (with a warning,
    :mod:`facebench.cache`) when either file is damaged or does not fit."""
    arrays = base.with_suffix(".npz")
    z = load_npz(arrays)
    if z is None:
        return None
    try:
        emb, valid, norms = z["emb"], z["valid"], z["norms"]
        meta_sha256 = str(z["meta_sha256"])
    except KeyError as exc:
        warn_damaged(arrays, f"no array {exc}")
        return None
    if not emb.shape[0] == valid.shape[0] == norms.shape[0] == n:
        warn_damaged(arrays, f"{emb.shape[0]} embeddings for {n} images")
        return None
    meta = base.with_suffix(".json")
    info = load_checked_json(meta, meta_sha256)
    if info is None:
        return None
    if not (isinstance(info, dict) and isinstance(info.get("acquire"), dict)
            and isinstance(info.get("fta"), list) and isinstance(info.get("engine"), dict)):
        warn_damaged(meta, "not an embedding record")
        return None
    return (emb, valid, norms), info


def _store_entry(base: Path, out: Embedded) -> None:
    """The record first, then the arrays with its sha256 (a reader trusts the record only
    when the arrays name it)."""
    text = to_json({"acquire": out.acquire, "fta": out.fta, "engine": out.engine})
    try:
        atomic_write_text(base.with_suffix(".json"), text)
    except OSError:
        return  # a read-only or full cache never fails the run
    store_npz(base.with_suffix(".npz"), {
        "emb": out.emb, "valid": out.valid, "norms": out.norms,
        "meta_sha256": np.str_(hashlib.sha256(text.encode("utf-8")).hexdigest())})


def record(cell: Cell, e: Embedded, elapsed: float, metrics_s: float | None = None
           ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metrics and details every embedding-based cell reports about how it got its
    embeddings: counts, failures to acquire, settings, engine, per-stage seconds, images/s."""
    n = int(e.valid.size)
    total = elapsed + (metrics_s or 0.0)
    metrics: dict[str, Any] = {"fta_images": len(e.fta), "images": n,
                               "images_per_s": round(n / elapsed, 2) if elapsed else None}
    computed = "acquire_and_embed" in e.timings_s  # else the embeddings came from the cache
    for stage in STAGES:
        metrics[f"time.{stage}_s"] = e.timings_s.get(stage, 0.0 if computed else None)
    metrics["time.metrics_s"] = None if metrics_s is None else round(metrics_s, 3)
    metrics["time.total_s"] = round(total, 3)
    details = {
        "fta_images_list": e.fta,
        "acquire": e.acquire,
        "align": e.acquire.get("align"),
        "preprocess": cell.model.preprocess.model_dump(mode="json"),
        "flip": flip_of(cell),
        "engine": e.engine,
        "precision": e.precision,
        "timings_s": {**e.timings_s, "embeddings": round(elapsed, 3), "total": round(total, 3)},
        "timings_definition": "time.<stage>_s: seconds spent in that stage summed over the "
                              "processes doing it (decode includes reading and hashing the "
                              "file); time.total_s and images_per_s: wall clock of this cell",
        "images_per_s": metrics["images_per_s"],
    }
    return metrics, details

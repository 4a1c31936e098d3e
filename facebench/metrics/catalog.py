"""The one catalog of every metric facebench reports: unit, which way is better, display format.

Report, gates and the notebook API read a metric's properties here and nowhere else. An entry
names one metric (``accuracy``) or a family through placeholders: ``{B}`` a batch size,
``{k}`` a rank, ``{x}`` a FAR target in :func:`facebench.metrics.far_key` form (``1e-3``).
:func:`metric_info` looks a name up, exact names first, then families. Definitions follow
``docs/metrics.md`` of the shared data; ``docs/results.md`` shows this catalog as a table
(:func:`catalog_markdown`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["higher", "lower", "none"]
#: How the report shows a value (see ``facebench.report.fmt``):
#: ``percent`` a fraction as %, ``percent_value`` a number already in %, ``count`` an integer,
#: ``ms`` milliseconds, ``seconds``, ``megabytes`` bytes in MB (10⁶), ``per_second`` a rate
#: with one decimal, ``fixed4`` four decimals, ``sig4`` four significant digits,
#: ``signed_pp`` a difference of fractions in signed percentage points, ``ratio`` a ratio (×).
Format = Literal["percent", "percent_value", "count", "ms", "seconds", "megabytes", "per_second",
                 "fixed4", "sig4", "signed_pp", "ratio"]
Kind = Literal["verification", "identification", "efficiency"]

_V: tuple[Kind, ...] = ("verification",)
_I: tuple[Kind, ...] = ("identification",)
_VI: tuple[Kind, ...] = ("verification", "identification")
_E: tuple[Kind, ...] = ("efficiency",)

#: Placeholders of family names and what they match.
PLACEHOLDERS = {"B": r"[1-9][0-9]*", "k": r"[1-9][0-9]*", "x": r"[0-9][0-9.eE+-]*"}


@dataclass(frozen=True)
class MetricInfo:
    """One catalog entry. ``name`` is a metric name, or a family pattern with placeholders.

    ``machine``: the value depends on the machine (timings, memory), so runs on different
    machines are not comparable. ``deterministic``: the value depends only on the model and the
    data, so any change between two runs is real (no noise). ``maximum``: the largest value a
    correct measurement can take; a value above it is a measurement error (:func:`flag`),
    never shown as a result.
    """

    name: str
    unit: str
    direction: Direction
    format: Format
    meaning: str
    kinds: tuple[Kind, ...]
    machine: bool = False
    deterministic: bool = False
    maximum: float | None = None

    @property
    def is_family(self) -> bool:
        """Whether ``name`` is a pattern (``latency.b{B}.p50_ms``) rather than one metric."""
        return "{" in self.name

    @property
    def sign(self) -> int:
        """+1 when higher is better, −1 when lower is better, 0 when neither."""
        return {"higher": 1, "lower": -1, "none": 0}[self.direction]


def _m(name: str, unit: str, direction: Direction, fmt: Format, meaning: str,
       kinds: tuple[Kind, ...], **flags: Any) -> MetricInfo:
    return MetricInfo(name, unit, direction, fmt, meaning, kinds, **flags)


_CV = "at the per-fold cross-validated thresholds (counts summed over folds)"
_LAT = "latency of one synchronous batch-{B} call, warm (after the warm-up runs)"

#: Every metric, in the order docs/results.md lists them.
CATALOG: tuple[MetricInfo, ...] = (
    # -- verification (fractions in [0, 1]) -------------------------------------------------
    _m("accuracy", "fraction", "higher", "percent",
       "k-fold accuracy: mean over folds of (TP + TN) / N, each fold at the threshold that "
       "maximizes accuracy on the other folds", _V),
    _m("accuracy_std", "fraction", "none", "percent",
       "standard deviation (ddof 0) of the per-fold accuracies: the spread of the estimate", _V),
    _m("accuracy_ci_low", "fraction", "higher", "percent",
       "lower end of the 95 % percentile bootstrap CI of accuracy", _V),
    _m("accuracy_ci_high", "fraction", "higher", "percent",
       "upper end of the 95 % percentile bootstrap CI of accuracy", _V),
    _m("precision", "fraction", "higher", "percent", f"TP / (TP + FP) {_CV}", _V),
    _m("recall", "fraction", "higher", "percent", f"TP / (TP + FN), the TAR (TPR), {_CV}", _V),
    _m("specificity", "fraction", "higher", "percent", f"TN / (TN + FP) = 1 − FAR, {_CV}", _V),
    _m("f1", "fraction", "higher", "percent", f"2PR / (P + R) {_CV}", _V),
    _m("tp", "pairs", "higher", "count", f"genuine pairs accepted {_CV}", _V),
    _m("fp", "pairs", "lower", "count", f"impostor pairs accepted {_CV}", _V),
    _m("tn", "pairs", "higher", "count", f"impostor pairs rejected {_CV}", _V),
    _m("fn", "pairs", "lower", "count", f"genuine pairs rejected {_CV}", _V),
    _m("auc", "fraction", "higher", "fixed4",
       "area under the ROC over all thresholds (trapezoid rule)", _V),
    _m("eer", "fraction", "lower", "percent",
       "equal error rate: (FAR + FRR) / 2 at the threshold minimizing |FAR − FRR|", _V),
    _m("eer_ci_low", "fraction", "lower", "percent",
       "lower end of the 95 % percentile bootstrap CI of the EER", _V),
    _m("eer_ci_high", "fraction", "lower", "percent",
       "upper end of the 95 % percentile bootstrap CI of the EER", _V),
    _m("eer_threshold", "cosine", "none", "fixed4", "the score threshold of the EER", _V),
    _m("tar@far={x}", "fraction", "higher", "percent",
       "TAR at the smallest threshold whose empirical FAR (impostor scores ≥ t / N_imp) is ≤ x",
       _V),
    _m("tar@far={x}_ci_low", "fraction", "higher", "percent",
       "lower end of the 95 % percentile bootstrap CI of tar@far={x} (resampling: "
       "details.bootstrap.resampling_method, identity or pair)", _V),
    _m("tar@far={x}_ci_high", "fraction", "higher", "percent",
       "upper end of the 95 % percentile bootstrap CI of tar@far={x} (resampling: "
       "details.bootstrap.resampling_method, identity or pair)", _V),
    _m("fnmr@fmr={x}", "fraction", "lower", "percent",
       "1 − tar@far={x}: the same number under NIST's name (false non-match rate at false "
       "match rate x); exhaustive protocols", _V),
    _m("far_achieved@far={x}", "fraction", "none", "percent",
       "the empirical FAR at the tar@far={x} threshold (≤ x by construction)", _V),
    _m("threshold@far={x}", "cosine", "none", "fixed4", "the score threshold of tar@far={x}", _V),
    _m("fta_images", "images", "lower", "count", "images in which no face was acquired", _VI),
    _m("fta_pairs", "pairs", "lower", "count",
       "pairs with an image without a face (scored as rejects under the default policy)", _V),
    _m("fta_rate", "fraction", "lower", "percent", "fta_pairs / pairs", _V),
    _m("pairs", "pairs", "none", "count", "pairs of the protocol (none dropped)", _V,
       deterministic=True),
    _m("images", "images", "none", "count", "distinct images the cell embedded", _VI,
       deterministic=True),
    _m("images_per_s", "images/s", "higher", "per_second",
       "images / wall-clock seconds the cell took to embed them (decode to embed)", _VI,
       machine=True),
    _m("time.decode_s", "s", "lower", "seconds",
       "seconds reading, hashing and decoding image files, summed over the processes doing it",
       _VI, machine=True),
    _m("time.detect_s", "s", "lower", "seconds",
       "seconds in the face detector, summed over the processes doing it", _VI, machine=True),
    _m("time.align_s", "s", "lower", "seconds",
       "seconds aligning and cropping faces, summed over the processes doing it", _VI,
       machine=True),
    _m("time.embed_s", "s", "lower", "seconds",
       "seconds in the recognition model (preprocessing and inference), summed over the "
       "processes doing it", _VI, machine=True),
    _m("time.metrics_s", "s", "lower", "seconds",
       "seconds computing scores and metrics from the embeddings", _VI, machine=True),
    _m("time.total_s", "s", "lower", "seconds", "wall-clock seconds of the whole cell", _VI,
       machine=True),
    _m("accuracy_vs_fp32", "fraction", "higher", "signed_pp",
       "precision variant (fp16, int8) minus its fp32 baseline cell: difference of their k-fold "
       "accuracies on the same pairs", _V),
    _m("accuracy_vs_fp32_ci_low", "fraction", "higher", "signed_pp",
       "lower end of the 95 % paired percentile bootstrap CI of accuracy_vs_fp32 (one resample "
       "of the pairs weighs both cells' scores)", _V),
    _m("accuracy_vs_fp32_ci_high", "fraction", "higher", "signed_pp",
       "upper end of the 95 % paired percentile bootstrap CI of accuracy_vs_fp32", _V),
    # -- identification -------------------------------------------------------------------------
    _m("rank{k}", "fraction", "higher", "percent",
       "rank k over the mated probes (CMC at k): probes (images or templates) whose identity is "
       "among the k best-scoring gallery identities, over the probes whose identity is enrolled "
       "(all probes of a closed-set split)", _I),
    _m("probes", "probes", "none", "count", "probes searched (images or templates; for an "
       "identity-folder split every image after the first of an identity)", _I,
       deterministic=True),
    _m("gallery", "entries", "none", "count", "gallery entries (images or templates; for an "
       "identity-folder split the first image of each identity)", _I, deterministic=True),
    _m("distractors", "entries", "none", "count",
       "gallery entries whose identity has no probe", _I, deterministic=True),
    _m("fnir@fpir={x}", "fraction", "lower", "percent",
       "open-set FNIR (mated probes whose mate is not within the open-set rank at a score ≥ t, "
       "over the mated probes) at the smallest threshold t whose empirical FPIR (non-mated "
       "probes with a top score ≥ t / N_nonmated) is ≤ x", _I),
    _m("fpir_achieved@fpir={x}", "fraction", "none", "percent",
       "the empirical FPIR at the fnir@fpir={x} threshold (≤ x by construction)", _I),
    _m("threshold@fpir={x}", "cosine", "none", "fixed4", "the score threshold of fnir@fpir={x}",
       _I),
    _m("mated_searches", "probes", "none", "count",
       "probe searches whose identity is enrolled in the gallery", _I, deterministic=True),
    _m("nonmated_searches", "probes", "none", "count",
       "probe searches whose identity is not enrolled in the gallery (open-set FPIR denominator)",
       _I, deterministic=True),
    _m("templates", "templates", "none", "count",
       "templates of a template protocol (IJB-style sets of faces pooled into one feature)", _VI,
       deterministic=True),
    _m("fta_probes", "images", "lower", "count", "probe images without a face (count as misses)",
       _I),
    _m("fta_gallery", "images", "lower", "count",
       "gallery images without a face (their identity leaves the gallery)", _I),
    # -- efficiency ------------------------------------------------------------------------------
    _m("params", "parameters", "lower", "count",
       "Σ numel of all parameters (buffers excluded); a quantized weight counts its stored "
       "elements, its zero points and scales are metadata, not parameters", _E,
       deterministic=True),
    _m("params_quantized", "parameters", "none", "count",
       "the params stored quantized (reached through DequantizeLinear or a QLinear/Integer op's "
       "weight slot); 0 for a float model", _E, deterministic=True),
    _m("gmac", "GMAC", "lower", "sig4",
       "10⁹ multiply-accumulates per image (one fused multiply-add = 1, as fvcore counts)", _E,
       deterministic=True),
    _m("gflops", "GFLOP", "lower", "sig4", "2 × gmac", _E, deterministic=True),
    _m("model_size_bytes", "bytes", "lower", "megabytes", "size of the model file(s)", _E,
       deterministic=True),
    _m("weight_bytes", "bytes", "lower", "megabytes",
       "Σ bytes of the stored weights at their stored precision: every ONNX initializer "
       "(quantization scales, zero points and shape tensors included), torch parameters and "
       "buffers", _E, deterministic=True),
    _m("cold_start_ms", "ms", "lower", "ms",
       "session/model creation plus the first inference", _E, machine=True),
    _m("latency.b{B}.mean_ms", "ms", "lower", "ms", f"mean {_LAT}", _E, machine=True),
    _m("latency.b{B}.std_ms", "ms", "none", "ms", f"standard deviation of the {_LAT}", _E,
       machine=True),
    _m("latency.b{B}.min_ms", "ms", "lower", "ms", f"fastest {_LAT}", _E, machine=True),
    _m("latency.b{B}.p50_ms", "ms", "lower", "ms", f"median {_LAT}", _E, machine=True),
    _m("latency.b{B}.p90_ms", "ms", "lower", "ms", f"90th percentile {_LAT}", _E, machine=True),
    _m("latency.b{B}.p95_ms", "ms", "lower", "ms", f"95th percentile {_LAT}", _E, machine=True),
    _m("latency.b{B}.p99_ms", "ms", "lower", "ms", f"99th percentile {_LAT}", _E, machine=True),
    _m("latency.b{B}.samples", "samples", "none", "count",
       "number of timed batch-{B} calls (at least N iterations and T seconds)", _E, machine=True),
    _m("throughput.b{B}", "images/s", "higher", "per_second",
       "B × iterations / wall time of the batch-{B} runs", _E, machine=True),
    _m("latency.p50_ms", "ms", "lower", "ms", "latency.b1.p50_ms (shortcut for gates)", _E,
       machine=True),
    _m("latency.p90_ms", "ms", "lower", "ms", "latency.b1.p90_ms (shortcut for gates)", _E,
       machine=True),
    _m("latency.p99_ms", "ms", "lower", "ms", "latency.b1.p99_ms (shortcut for gates)", _E,
       machine=True),
    _m("memory.peak_rss_bytes", "bytes", "lower", "megabytes",
       "peak RSS of the measuring process (sampled every 10 ms)", _E, machine=True),
    _m("memory.peak_rss_delta_bytes", "bytes", "lower", "megabytes",
       "peak RSS minus the RSS before the model was loaded", _E, machine=True),
    _m("memory.cuda_max_allocated_bytes", "bytes", "lower", "megabytes",
       "CUDA max allocated after reset_peak_memory_stats() (torch on CUDA only)", _E,
       machine=True),
    _m("memory.cuda_max_reserved_bytes", "bytes", "lower", "megabytes",
       "CUDA max reserved after reset_peak_memory_stats() (torch on CUDA only)", _E,
       machine=True),
    _m("gflops_per_s", "GFLOP/s", "higher", "sig4",
       "achieved compute rate: gflops × batch / latency, at the largest batch", _E, machine=True),
    _m("pct_of_peak", "%", "higher", "percent_value",
       "gflops_per_s as a percentage (0–100) of the peak of the precision that ran (fp32, fp16 "
       "or int8), measured on this machine at the cell's threads by a GEMM through the engine's "
       "own library; null when no peak was measured; above 100 a measurement error, flagged and "
       "never shown", _E, machine=True, maximum=100.0),
    _m("latency.b{B}.p50_norm_ms", "ms", "lower", "ms",
       "latency.b{B}.p50_ms × the speed index / the reference index (100 GFLOP/s): the median "
       "latency on the reference machine; the speed index is the fp32 GEMM GFLOP/s measured with "
       "the cell's engine and threads", _E, machine=True),
    _m("latency.b{B}.p90_norm_ms", "ms", "lower", "ms",
       "latency.b{B}.p90_ms normalised as latency.b{B}.p50_norm_ms", _E, machine=True),
    _m("latency.b{B}.p99_norm_ms", "ms", "lower", "ms",
       "latency.b{B}.p99_ms normalised as latency.b{B}.p50_norm_ms", _E, machine=True),
    _m("latency.p50_norm_ms", "ms", "lower", "ms", "latency.b1.p50_norm_ms (shortcut for gates)",
       _E, machine=True),
    _m("latency.p90_norm_ms", "ms", "lower", "ms", "latency.b1.p90_norm_ms (shortcut for gates)",
       _E, machine=True),
    _m("latency.p99_norm_ms", "ms", "lower", "ms", "latency.b1.p99_norm_ms (shortcut for gates)",
       _E, machine=True),
    _m("latency.b{B}.p50_vs_fp32", "ratio", "lower", "ratio",
       "precision variant's latency.b{B}.p50_ms / its fp32 baseline cell's (below 1: faster)",
       _E, machine=True),
    _m("latency.b{B}.p50_vs_ref", "ratio", "lower", "ratio",
       "interleave: true — median over alternating rounds of this model's batch-{B} p50 / the "
       "protocol's first model's on the same device (1 for that model; below 1: faster)",
       _E, machine=True),
    _m("latency.b{B}.p50_vs_ref_ci_low", "ratio", "lower", "ratio",
       "lower end of the ≥ 95 % order-statistic CI over rounds of latency.b{B}.p50_vs_ref",
       _E, machine=True),
    _m("latency.b{B}.p50_vs_ref_ci_high", "ratio", "lower", "ratio",
       "upper end of the ≥ 95 % order-statistic CI over rounds of latency.b{B}.p50_vs_ref",
       _E, machine=True),
    _m("memory.peak_rss_delta_vs_fp32", "ratio", "lower", "ratio",
       "precision variant's memory.peak_rss_delta_bytes / its fp32 baseline cell's", _E,
       machine=True),
)


def _pattern(name: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", name)
    return re.compile("".join(re.escape(p) if i % 2 == 0 else f"(?:{PLACEHOLDERS[p]})"
                              for i, p in enumerate(parts)))


_EXACT = {m.name: m for m in CATALOG if not m.is_family}
_FAMILIES = [(m, _pattern(m.name)) for m in CATALOG if m.is_family]


@functools.lru_cache(maxsize=4096)
def metric_info(name: str) -> MetricInfo | None:
    """The catalog entry of a metric name (exact names first, then families); ``None`` when
    facebench does not report such a metric."""
    exact = _EXACT.get(name)
    if exact is not None:
        return exact
    return next((m for m, rx in _FAMILIES if rx.fullmatch(name)), None)


def sign(name: str) -> int:
    """+1 when higher is better, −1 when lower is better, 0 when neither or unknown."""
    info = metric_info(name)
    return 0 if info is None else info.sign


def flag(name: str, value: Any) -> str | None:
    """Why ``value`` of metric ``name`` is a measurement error (above the catalog's
    ``maximum``), else None."""
    info = metric_info(name)
    if info is None or info.maximum is None or isinstance(value, bool) \
            or not isinstance(value, int | float) or not value > info.maximum:
        return None
    return (f"measurement error: above the {info.maximum:g} {info.unit} a correct measurement "
            "can reach; not a result")


_NORMALISABLE = re.compile(r"(latency(?:\.b[1-9][0-9]*)?\.p(?:50|90|99))_ms")


def normalised(name: str) -> str | None:
    """The machine-normalised metric of a latency (``latency.b8.p50_ms`` →
    ``latency.b8.p50_norm_ms``), or None when it has none."""
    m = _NORMALISABLE.fullmatch(name)
    return f"{m.group(1)}_norm_ms" if m else None


def dotted_heads() -> frozenset[str]:
    """First parts of the dotted metric names (``latency``, ``throughput``, ``memory``, …)."""
    return frozenset(m.name.split(".", 1)[0] for m in CATALOG if "." in m.name)


def catalog_markdown() -> str:
    """The catalog as the Markdown table docs/results.md shows (one row per entry)."""
    rows = ["| metric | unit | better | shown as | cells | meaning |",
            "|---|---|---|---|---|---|"]
    for m in CATALOG:
        flags = [f for f, on in (("machine-dependent", m.machine),
                                 ("deterministic", m.deterministic)) if on]
        meaning = m.meaning + (f" ({', '.join(flags)})" if flags else "")
        meaning = meaning.replace("|", "\\|")
        rows.append(f"| `{m.name}` | {m.unit} | {m.direction} | {m.format} | "
                    f"{', '.join(m.kinds)} | {meaning} |")
    return "\n".join(rows) + "\n"

"""Report figures as deterministic SVG text (matplotlib, Agg-free SVG backend, no pyplot).

Byte-for-byte reproducible: fixed ``svg.hashsalt``, no date metadata, matplotlib's default style
(whatever the user's matplotlibrc says), text drawn as paths (no font needed to view), and
``text.parse_math`` off so a ``$`` in a model id is just a dollar sign. Each builder returns
a :class:`Figure` whose ``svg`` is None with a ``note`` when its data is absent.
"""

from __future__ import annotations

import dataclasses
import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from facebench.report.fmt import number
from facebench.report.paper import (
    PaperModel,
    paper_models,
    paper_options,
    paper_protocols,
)
from facebench.report.summary import (
    PARETO_LATENCY,
    ok_cells,
    pareto_front,
    pareto_points,
    protocols,
    rank_keys,
)

RC = {
    "svg.hashsalt": "facebench-report",
    "svg.fonttype": "path",
    "text.parse_math": False,
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.framealpha": 0.85,
}
PALETTE = matplotlib.colormaps["tab10"].colors
#: The SVG id prefix of each model's point in the Pareto figures (one ``<g>`` per point).
POINT_GID = "pareto-point-"
MARKERS = "osD^vP*X"


@dataclass(frozen=True)
class Figure:
    """One figure: ``name`` is the file stem under ``figures/``; ``svg`` None means skipped;
    ``section`` the kind of the protocol it belongs to ("" for run-wide figures)."""

    name: str
    title: str
    caption: str
    svg: str | None = None
    note: str | None = None
    section: str = ""


@contextmanager
def _style() -> Iterator[None]:
    with matplotlib.style.context("default"), matplotlib.rc_context(RC):
        yield


def _svg(fig: MplFigure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:60] or "_"


def _log_axis(ax: Any, axis: str) -> None:
    """Log scale with plain tick labels (the default ones need mathtext, which is off)."""
    getattr(ax, f"set_{axis}scale")("log")
    a = getattr(ax, f"{axis}axis")
    a.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a.set_minor_formatter(NullFormatter())


def _label(cell: dict[str, Any]) -> str:
    return f"{cell.get('model')} · {cell.get('device')}"


def _colors(results: dict[str, Any]) -> dict[str, tuple[float, ...]]:
    models = sorted({str(c.get("model")) for c in results.get("cells") or []})
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _floats(values: Any) -> np.ndarray:
    arr = np.array([np.nan if number(v) is None else float(v) for v in values or []], dtype=float)
    return arr


def _roc(cell: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    roc = (cell.get("details") or {}).get("roc") or {}
    far, tar = _floats(roc.get("far")), _floats(roc.get("tar"))
    if far.size < 2 or far.size != tar.size:
        return None
    keep = np.isfinite(far) & np.isfinite(tar)
    return far[keep], tar[keep]


def _n_impostor(cells: list[dict[str, Any]]) -> int | None:
    for c in cells:
        m = c.get("metrics") or {}
        fp, tn = number(m.get("fp")), number(m.get("tn"))
        if fp is not None and tn is not None:
            return int(fp + tn)
    return None


def roc_figure(results: dict[str, Any], protocol: str, name: str) -> Figure:
    title = f"ROC — {protocol}"
    caption = ("True accept rate vs false accept rate (log scale); markers: TAR at each FAR "
               "target (hollow = unsupported by the data, N_imp × FAR < 10).")
    cells = [c for c in ok_cells(results, "verification") if c.get("protocol") == protocol]
    curves = [(c, r) for c in cells if (r := _roc(c)) is not None]
    if not curves:
        return Figure(name, title, caption, note="no cell has details.roc")
    colors = _colors(results)
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        lows = []
        for cell, (far, tar) in curves:
            pos = far > 0
            if not pos.any():
                continue
            lows.append(far[pos].min())
            color = colors[str(cell.get("model"))]
            ax.plot(far[pos], tar[pos], color=color, lw=1.5, label=_label(cell))
            for row in (cell.get("details") or {}).get("tar_at_far") or []:
                fa, t = number(row.get("far_achieved")), number(row.get("tar"))
                if fa and t is not None:
                    ax.plot([max(fa, far[pos].min())], [t], "o", color=color, ms=5,
                            mfc=color if row.get("supported") else "white")
        n_imp = _n_impostor(cells)
        _log_axis(ax, "x")
        low = min(lows) if lows else 1e-4
        ax.set_xlim(low / 1.5, 1.0)
        if n_imp:
            ax.axvspan(low / 1.5, min(10 / n_imp, 1.0), color="0.5", alpha=0.12, lw=0,
                       label=f"FAR < 10/N_imp (N_imp = {n_imp:,})")
        ax.set_xlabel("FAR (false accept rate)")
        ax.set_ylabel("TAR (true accept rate)")
        ax.set_title(title)
        ax.legend(loc="lower right")
        return Figure(name, title, caption, svg=_svg(fig))


def _probit_axis(ax: Any, axis: str, lo: float, hi: float) -> None:
    from scipy.special import ndtr, ndtri

    def forward(x: np.ndarray) -> np.ndarray:
        return ndtri(np.clip(x, 1e-9, 1 - 1e-9))

    getattr(ax, f"set_{axis}scale")("function", functions=(forward, ndtr))
    ticks = [t for t in (1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5, 0.8, 0.95) if lo <= t <= hi]
    getattr(ax, f"set_{axis}lim")(lo, hi)
    getattr(ax, f"set_{axis}ticks")(ticks)
    getattr(ax, f"{axis}axis").set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g} %"))


def det_figure(results: dict[str, Any], protocol: str, name: str) -> Figure:
    title = f"DET — {protocol}"
    caption = "False non-match rate vs false match rate on probit (normal-deviate) axes."
    cells = [c for c in ok_cells(results, "verification") if c.get("protocol") == protocol]
    curves = []
    for c in cells:
        r = _roc(c)
        if r is None:
            continue
        fmr, fnmr = r[0], 1 - r[1]
        keep = (fmr > 0) & (fmr < 1) & (fnmr > 0) & (fnmr < 1)
        if keep.sum() >= 2:
            curves.append((c, fmr[keep], fnmr[keep]))
    if not curves:
        return Figure(name, title, caption, note="no cell has a ROC with rates inside (0, 1)")
    colors = _colors(results)
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        for cell, fmr, fnmr in curves:
            ax.plot(fmr, fnmr, color=colors[str(cell.get("model"))], lw=1.5, label=_label(cell))
        x_lo = max(min(float(f.min()) for _, f, _ in curves) / 1.5, 1e-5)
        y_lo = max(min(float(f.min()) for _, _, f in curves) / 1.5, 1e-5)
        _probit_axis(ax, "x", x_lo, 0.5)
        _probit_axis(ax, "y", y_lo, 0.5)
        ax.set_xlabel("FMR (false match rate)")
        ax.set_ylabel("FNMR (false non-match rate)")
        ax.set_title(title)
        ax.legend(loc="lower left")
        return Figure(name, title, caption, svg=_svg(fig))


def _identification_cells(results: dict[str, Any], protocol: str) -> list[dict[str, Any]]:
    return [c for c in ok_cells(results, "identification") if c.get("protocol") == protocol]


def _cmc(cell: dict[str, Any]) -> np.ndarray | None:
    curve = _floats((cell.get("details") or {}).get("cmc"))
    return curve if curve.size and np.isfinite(curve).all() else None


def cmc_figure(results: dict[str, Any], protocol: str, name: str) -> Figure:
    """Closed-set identification rate vs rank (``details.cmc``), one line per model · device;
    markers at the ranks the table shows."""
    title = f"CMC — {protocol}"
    caption = ("Cumulative match characteristic: closed-set identification rate of the mated "
               "searches vs rank; markers: the ranks in the table.")
    cells = _identification_cells(results, protocol)
    curves = [(c, r) for c in cells if (r := _cmc(c)) is not None]
    if not curves:
        return Figure(name, title, caption, note="no cell has details.cmc")
    colors = _colors(results)
    shown = [int(k[4:]) for k in rank_keys(cells)]
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        for cell, curve in curves:
            color = colors[str(cell.get("model"))]
            ks = np.arange(1, curve.size + 1)
            ax.plot(ks, curve, color=color, lw=1.5, label=_label(cell))
            at = [k for k in shown if k <= curve.size]
            ax.plot(at, curve[np.array(at, dtype=int) - 1], "o", color=color, ms=5)
        if max(r.size for _, r in curves) > 20:
            _log_axis(ax, "x")
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("rank")
        ax.set_ylabel("identification rate (mated searches)")
        ax.set_title(title)
        ax.legend(loc="lower right")
        return Figure(name, title, caption, svg=_svg(fig))


def _det_1n(cell: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    det = (cell.get("details") or {}).get("det_1n") or {}
    fpir, fnir = _floats(det.get("fpir")), _floats(det.get("fnir"))
    if fpir.size != fnir.size:
        return None
    keep = np.isfinite(fpir) & np.isfinite(fnir) & (fpir > 0)
    return (fpir[keep], fnir[keep]) if keep.sum() >= 2 else None


def det_1n_figure(results: dict[str, Any], protocol: str, name: str) -> Figure:
    """Open-set FNIR vs FPIR (``details.det_1n``, log x), one line per model · device; markers
    at each FPIR target, hollow when unsupported (N_nonmated × FPIR < 10)."""
    title = f"DET (1:N) — {protocol}"
    caption = ("Open-set false negative identification rate vs false positive identification "
               "rate (log scale) as the threshold moves; markers: FNIR at each FPIR target "
               "(hollow = unsupported by the data, N_nonmated × FPIR < 10).")
    cells = _identification_cells(results, protocol)
    curves = [(c, r) for c in cells if (r := _det_1n(c)) is not None]
    if not curves:
        return Figure(name, title, caption,
                      note="no cell has details.det_1n (no non-mated searches: closed-set only)")
    colors = _colors(results)
    low = min(float(fpir.min()) for _, (fpir, _) in curves)
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        for cell, (fpir, fnir) in curves:
            color = colors[str(cell.get("model"))]
            ax.plot(fpir, fnir, color=color, lw=1.5, label=_label(cell))
            for row in (cell.get("details") or {}).get("fnir_at_fpir") or []:
                fa, f = number(row.get("fpir_achieved")), number(row.get("fnir"))
                if fa is not None and f is not None:
                    ax.plot([max(fa, low)], [f], "o", color=color, ms=5,
                            mfc=color if row.get("supported") else "white")
        _log_axis(ax, "x")
        ax.set_xlim(low / 1.5, 1.0)
        n_non = [n for c in cells
                 if (n := number((c.get("metrics") or {}).get("nonmated_searches")))]
        if n_non:
            ax.axvspan(low / 1.5, min(10 / min(n_non), 1.0), color="0.5", alpha=0.12, lw=0,
                       label=f"FPIR < 10/N_nonmated (N_nonmated = {int(min(n_non)):,})")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("FPIR (false positive identification rate)")
        ax.set_ylabel("FNIR (false negative identification rate)")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize=7)
        return Figure(name, title, caption, svg=_svg(fig))


def _hist(spec: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``{"edges": [n+1], "counts": [n]}`` (aliases ``bin_edges``/``bins``, ``hist``)."""
    if not isinstance(spec, dict):
        return None
    edges = _floats(spec.get("edges") or spec.get("bin_edges") or spec.get("bins"))
    counts = _floats(spec.get("counts") or spec.get("hist"))
    if counts.size == 0 or edges.size != counts.size + 1 or not np.isfinite(edges).all():
        return None
    counts = np.nan_to_num(counts)
    total = float((counts * np.diff(edges)).sum())
    return edges, counts / total if total > 0 else counts


def cv_threshold(cell: dict[str, Any]) -> float | None:
    """The median of the per-fold CV thresholds (the accuracy operating point)."""
    values = [number(f.get("threshold")) for f in (cell.get("details") or {}).get("folds") or []]
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def scores_figure(results: dict[str, Any], protocol: str, name: str) -> Figure:
    title = f"Score distributions — {protocol}"
    caption = ("Cosine scores of genuine and impostor pairs (density); solid line: median of the "
               "per-fold CV thresholds; dashed: EER threshold.")
    cells = [c for c in ok_cells(results, "verification") if c.get("protocol") == protocol]
    panels = []
    for c in cells:
        sh = (c.get("details") or {}).get("score_hist") or {}
        g, i = _hist(sh.get("genuine")), _hist(sh.get("impostor"))
        if g is not None and i is not None:
            panels.append((c, g, i))
    if not panels:
        return Figure(name, title, caption, note="no cell has details.score_hist")
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    with _style():
        fig = MplFigure(figsize=(3.4 * ncols + 0.4, 2.4 * nrows + 0.5), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax, (cell, g, i) in zip(axes.flat, panels, strict=False):
            ax.stairs(i[1], i[0], fill=True, alpha=0.45, color="tab:red", label="impostor")
            ax.stairs(g[1], g[0], fill=True, alpha=0.45, color="tab:blue", label="genuine")
            t = cv_threshold(cell)
            if t is not None:
                ax.axvline(t, color="k", lw=1.2, label="CV threshold (median of folds)")
            te = number((cell.get("metrics") or {}).get("eer_threshold"))
            if te is not None:
                ax.axvline(te, color="k", lw=1, ls="--", label="EER threshold")
            shown = " ".join(f"{k} {v:.3f}" for k, v in (("t_CV", t), ("t_EER", te))
                             if v is not None)
            ax.set_title(f"{_label(cell)}\n{shown}", fontsize=8)
            ax.set_xlabel("cosine score")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize=7)
        fig.suptitle(title)
        return Figure(name, title, caption, svg=_svg(fig))


def pareto_figure(results: dict[str, Any], protocol: str, name: str) -> Figure:
    title = f"Accuracy vs latency — {protocol}"
    caption = (f"10-fold accuracy against batch-1 median latency ({PARETO_LATENCY}); filled "
               "points joined by the line are the Pareto front (no other model is both at least "
               "as accurate and at least as fast).")
    points = pareto_points(results, protocol)
    if not points:
        return Figure(name, title, caption,
                      note="no model has both an accuracy here and a latency measurement")
    colors = _colors(results)
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        front = sorted((p for p in points if p.on_front), key=lambda p: p.latency_ms)
        ax.step([p.latency_ms for p in front], [p.accuracy * 100 for p in front], where="post",
                color="0.3", lw=1, ls="--", label="Pareto front")
        devices = sorted({p.device for p in points})
        for p in points:
            color = colors.get(p.model, "0.4")
            marker = MARKERS[devices.index(p.device) % len(MARKERS)]
            ax.plot([p.latency_ms], [p.accuracy * 100], marker, ms=8, color=color, mew=1.5,
                    mfc=color if p.on_front else "white", gid=f"{POINT_GID}{_slug(p.label)}",
                    label=f"{p.model} · {p.device}" + ("" if p.on_front else " (dominated)"))
        lat = [p.latency_ms for p in points]
        if min(lat) > 0 and max(lat) / min(lat) > 10:
            _log_axis(ax, "x")
        ax.margins(0.15)
        ax.set_xlabel("latency p50, batch 1 (ms)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize=7)
        return Figure(name, title, caption, svg=_svg(fig))


def relative_pareto_figure(results: dict[str, Any], protocol: str, name: str) -> Figure | None:
    """Accuracy against the interleaved latency ratio (``interleave: true``), on the device
    with the most such points; None when no efficiency cell has a ratio."""
    points = [p for p in pareto_points(results, protocol) if p.relative is not None]
    if not points:
        return None
    devices = [p.device for p in points]
    device = max(dict.fromkeys(devices), key=devices.count)
    points = [p for p in points if p.device == device]
    ref = points[0].reference or "the protocol's first model"
    title = f"Accuracy vs relative latency — {protocol} · {device}"
    caption = (f"k-fold accuracy against batch-1 p50 relative to {ref} on {device}, timed in "
               "alternating rounds (interleave: true; median over rounds, bars: its ≥ 95 % "
               "CI): a ratio that holds on a busy machine where milliseconds do not. Filled "
               "points joined by the line are the Pareto front.")
    on_front = pareto_front([(p.accuracy, p.relative) for p in points])
    colors = _colors(results)
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        front = sorted((p.relative, p.accuracy) for p, f in zip(points, on_front, strict=True)
                       if f)
        ax.step([x for x, _ in front], [a * 100 for _, a in front], where="post", color="0.3",
                lw=1, ls="--", label="Pareto front")
        for p, f in zip(points, on_front, strict=True):
            color = colors.get(p.model, "0.4")
            err = None
            if p.relative_ci is not None:
                err = [[p.relative - p.relative_ci[0]], [p.relative_ci[1] - p.relative]]
            ax.errorbar([p.relative], [p.accuracy * 100], xerr=err, fmt="o", ms=8, color=color,
                        mew=1.5, mfc=color if f else "white", capsize=3,
                        label=p.model + ("" if f else " (dominated)"),
                        gid=f"{POINT_GID}{_slug(p.label)}")
        xs = [p.relative for p in points]
        if min(xs) > 0 and max(xs) / min(xs) > 10:
            _log_axis(ax, "x")
        ax.margins(0.15)
        ax.set_xlabel(f"latency p50, batch 1, ÷ {ref} (interleaved)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2, fontsize=7)
        return Figure(name, title, caption, svg=_svg(fig))


#: The paper table's Pareto figures: (file stem, cost's name, axis label, cost of a model).
PAPER_COSTS: tuple[tuple[str, str, str, Callable[[PaperModel], float | None]], ...] = (
    ("latency", "latency", "latency p50, batch 1 (ms), fastest fp32 device",
     lambda m: m.latency_ms),
    ("params", "parameters", "parameters (millions)",
     lambda m: None if m.params is None else m.params / 1e6),
    ("gmac", "GMAC", "GMAC (multiply-adds per face, 10⁹)", lambda m: m.gmac),
)


def paper_pareto_figure(models: list[PaperModel], cost: str, xlabel: str,
                        get: Callable[[PaperModel], float | None], name: str) -> Figure:
    """Accuracy vs one cost, one labelled point per model of the paper table; the Pareto front
    (:func:`facebench.report.summary.pareto_front`) as a step line, its members filled."""
    title = f"Accuracy vs {cost} — paper table"
    caption = (f"k-fold accuracy of each model's paper-table row against its {xlabel}; filled "
               "points joined by the step line are the Pareto front (no other model is at least "
               "as accurate at no more cost, and better in one); hollow points are dominated.")
    points = [(m, acc, x) for m in models
              if (acc := m.accuracy) is not None and (x := get(m)) is not None]
    if not points:
        return Figure(name, title, caption, note=f"no model has both an accuracy and a {cost}")
    on_front = pareto_front([(acc, x) for _, acc, x in points])
    with _style():
        fig = MplFigure(figsize=(6.4, 4.2))
        ax = fig.add_subplot()
        front = sorted((x, acc) for (_, acc, x), f in zip(points, on_front, strict=True) if f)
        ax.step([x for x, _ in front], [acc * 100 for _, acc in front], where="post",
                color="0.3", lw=1, ls="--", label="Pareto front")
        for i, ((m, acc, x), f) in enumerate(zip(points, on_front, strict=True)):
            color = PALETTE[i % len(PALETTE)]
            ax.plot([x], [acc * 100], "o", ms=8, color=color, mew=1.5,
                    mfc=color if f else "white")
            ax.annotate(m.model, (x, acc * 100), textcoords="offset points", xytext=(6, 4),
                        fontsize=8)
        xs = [x for _, _, x in points]
        if min(xs) > 0 and max(xs) / min(xs) > 10:
            _log_axis(ax, "x")
        ax.margins(0.15)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.legend(loc="lower right")
        return Figure(name, title, caption, svg=_svg(fig))


def paper_figures(results: dict[str, Any], unique: Callable[[str], str]) -> list[Figure]:
    """The paper table's three Pareto figures (none when the suite has no paper table)."""
    options = paper_options(results)
    if options is None:
        return []
    models = paper_models(results, paper_protocols(results, options))
    return [paper_pareto_figure(models, cost, xlabel, get, unique(f"paper-accuracy-{stem}"))
            for stem, cost, xlabel, get in PAPER_COSTS]


def _latency_batch(cells: list[dict[str, Any]]) -> str | None:
    batches = {b for c in cells for b in ((c.get("details") or {}).get("latency") or {})}
    if not batches:
        return None
    return "1" if "1" in batches else min(batches, key=lambda b: (not b.isdigit(), b.zfill(9)))


def latency_figure(results: dict[str, Any], name: str) -> Figure:
    cells = ok_cells(results, "efficiency")
    batch = _latency_batch(cells)
    title = f"Latency distribution, batch {batch or '?'}"
    caption = ("Per-call latency samples per model × engine (box: quartiles, whiskers: 1.5 IQR, "
               "points: outliers).")
    rows = []
    for c in cells:
        lat = ((c.get("details") or {}).get("latency") or {}).get(batch or "") or {}
        xs = _floats(lat.get("samples_ms"))
        xs = xs[np.isfinite(xs)]
        if xs.size:
            rows.append((c, xs))
    if not rows:
        return Figure(name, title, caption, note="no efficiency cell has details.latency samples")
    rows.sort(key=lambda r: float(np.median(r[1])), reverse=True)
    colors = _colors(results)
    with _style():
        fig = MplFigure(figsize=(6.4, 0.9 + 0.45 * len(rows)))
        ax = fig.add_subplot()
        bp = ax.boxplot([xs for _, xs in rows], orientation="horizontal", patch_artist=True,
                        widths=0.6, flierprops={"markersize": 3, "alpha": 0.5})
        for patch, (cell, _) in zip(bp["boxes"], rows, strict=True):
            patch.set_facecolor(colors[str(cell.get("model"))])
            patch.set_alpha(0.6)
        ax.set_yticks(range(1, len(rows) + 1), [_label(c) for c, _ in rows])
        allx = np.concatenate([xs for _, xs in rows])
        if allx.min() > 0 and allx.max() / allx.min() > 20:
            _log_axis(ax, "x")
        ax.set_xlabel("latency (ms)")
        ax.set_title(title)
        return Figure(name, title, caption, svg=_svg(fig))


HISTORY_METRICS = [("verification", "accuracy", "accuracy (%)", 100.0),
                   ("efficiency", "latency.p50_ms", "latency p50, batch 1 (ms)", 1.0)]


#: The latency trend across runs on different machines: the normalised figure.
HISTORY_NORMALISED = ("efficiency", "latency.p50_norm_ms",
                      "normalised latency p50, batch 1 (ms)", 1.0)


def several_machines(entries: list[dict[str, Any]]) -> bool:
    """Whether the history's runs carry different machine fingerprints."""
    return len({e.get("fingerprint") for e in entries if e.get("fingerprint")}) > 1


def history_figure(entries: list[dict[str, Any]], kinds: dict[str, str], name: str) -> Figure:
    """Trend of accuracy and batch-1 p50 latency per cell across runs (oldest first); when the
    runs come from different machines (fingerprints), the normalised latency, said so in the
    caption."""
    title = "Trend across runs"
    caption = "Accuracy and batch-1 median latency of each cell in each run (oldest left)."
    if len(entries) < 2:
        return Figure(name, title, caption, note="history has fewer than two runs")
    specs = list(HISTORY_METRICS)
    if several_machines(entries):
        specs[1] = HISTORY_NORMALISED
        caption += (" These runs come from different machines (fingerprints): latency is the "
                    "normalised figure (ms × speed index / reference), runs without it are gaps.")
    panels = []
    for kind, metric, ylabel, scale in specs:
        series: dict[str, list[float]] = {}
        for i, e in enumerate(entries):
            for cid, m in (e.get("metrics") or {}).items():
                v = number((m or {}).get(metric))
                if kinds.get(cid, kind) == kind and v is not None:
                    series.setdefault(cid, [np.nan] * len(entries))[i] = v * scale
        if series:
            panels.append((ylabel, series))
    if not panels:
        return Figure(name, title, caption, note="history entries carry no accuracy or latency")
    ticks = [f"{str(e.get('run_id') or '?')[:16]}\n{str(e.get('commit') or '')[:8]}"
             for e in entries]
    with _style():
        fig = MplFigure(figsize=(6.4, 2.6 * len(panels) + 0.6), layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
        for ax, (ylabel, series) in zip(axes, panels, strict=True):
            for j, (cid, ys) in enumerate(sorted(series.items())):
                ax.plot(range(len(entries)), ys, "o-", ms=4, color=PALETTE[j % len(PALETTE)],
                        label=cid)
            ax.set_ylabel(ylabel)
            ax.set_xticks(range(len(entries)), ticks, fontsize=7)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncols=2)
        fig.suptitle(title)
        return Figure(name, title, caption, svg=_svg(fig))


Builder = Callable[[dict[str, Any], str, str], Figure]
PER_PROTOCOL: list[tuple[str, Builder]] = [
    ("roc", roc_figure), ("det", det_figure), ("scores", scores_figure),
    ("accuracy-latency", pareto_figure),
]
#: The figures of each identification protocol.
PER_IDENTIFICATION: list[tuple[str, Builder]] = [("cmc", cmc_figure), ("det-1n", det_1n_figure)]


def render_figures(results: dict[str, Any], history: list[dict[str, Any]] | None = None
                   ) -> list[Figure]:
    """Every figure of the report, in report order, with unique file-safe names."""
    figures: list[Figure] = []
    used: set[str] = set()

    def unique(stem: str) -> str:
        name, n = stem, 2
        while name in used:
            name, n = f"{stem}-{n}", n + 1
        used.add(name)
        return name

    by_kind = {"verification": PER_PROTOCOL, "identification": PER_IDENTIFICATION}
    for protocol, kind in protocols(results):
        for prefix, builder in by_kind.get(kind, []):
            fig = builder(results, protocol, unique(f"{prefix}-{_slug(protocol)}"))
            figures.append(dataclasses.replace(fig, section=kind))
        if kind == "verification" and any(p.relative is not None
                                          for p in pareto_points(results, protocol)):
            rel = relative_pareto_figure(results, protocol,
                                         unique(f"accuracy-relative-latency-{_slug(protocol)}"))
            if rel is not None:
                figures.append(dataclasses.replace(rel, section=kind))
    figures += paper_figures(results, unique)
    if ok_cells(results, "efficiency"):
        figures.append(latency_figure(results, unique("latency")))
    if history is not None:
        kinds = {str(c.get("id")): str(c.get("kind")) for c in results.get("cells") or []}
        figures.append(history_figure(history, kinds, unique("history")))
    return figures

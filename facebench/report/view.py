"""The report's view model: plain data (strings, tables) that both templates render.

All numbers are formatted here, once, so the HTML and the Markdown say the same thing. Strings
stay raw (unescaped): each template escapes for its own format.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

from facebench.metrics.catalog import normalised
from facebench.probes.peaks import REFERENCE_SPEED_INDEX
from facebench.report import fmt
from facebench.report.cells import (
    DELTA_MARK,
    RULE_OF_30_MARK,
    Cell,
    Column,
    Deltas,
    Table,
    bootstrap_note,
    catalog_value,
    ci_text,
    delta_class,
    errors_text,
    latency_batches,
    mark_best,
    meaning,
    model_cell,
    sort_key,
    tar_row,
    value_cell,
)
from facebench.report.compare import Comparison, Delta, compare
from facebench.report.differences_view import differences_tables
from facebench.report.figures import cv_threshold
from facebench.report.identification_view import identification_tables, templates_notes
from facebench.report.paper_view import paper_table, variants_tables
from facebench.report.robustness_view import robustness_section
from facebench.report.summary import (
    best_per_metric,
    busy_warning,
    catalog_name,
    ok_cells,
    pareto_points,
    protocols,
    summary_groups,
    tar_supported,
    tar_targets,
)

MAX_FTA_LISTED = 500
#: FtA rate above which the summary warns that a model's numbers rest on rejected pairs.
FTA_WARN = 0.01
#: Metrics whose significant changes are listed up front (all deltas stay in the full table).
HEADLINE = re.compile(
    r"^(accuracy|precision|recall|specificity|f1|auc|eer|fta_rate|tar@far=[^_]+|params|gflops"
    r"|model_size_bytes|cold_start_ms|latency\.p(50|99)_ms|throughput\.b\d+"
    r"|memory\.peak_rss_bytes)$"
)

#: The metric of each column whose best value is bolded, in column order from column 1 (the
#: TAR@FAR columns go between the first five and the rest of the verification table's).
VERIFICATION_MARKED = ("accuracy", "precision", "recall", "specificity", "f1", "eer", "auc",
                       "fta_rate")
COST_MARKED = ("params", "gmac", "gflops", "model_size_bytes", "cold_start_ms", "throughput.max",
               "memory.peak_rss_bytes", "memory.peak_rss_delta_bytes")

def verification_table(results: dict[str, Any], protocol: str, deltas: Deltas) -> Table:
    """The source paper's Table 1 layout, then TAR@FAR, EER, AUC and FtA."""
    cells = [c for c in ok_cells(results, "verification") if c.get("protocol") == protocol]
    cells.sort(key=lambda c: -(fmt.number((c.get("metrics") or {}).get("accuracy")) or -1))
    targets = tar_targets(cells)
    one = any((c.get("details") or {}).get("threshold_policy") == "all_data" for c in cells)
    cols = [Column("Model", numeric=False),
            Column("Accuracy (%)", help="at one threshold chosen on all pairs" if one
                   else "10-fold mean ± std (ddof 0)"),
            Column("Precision (%)"), Column("Recall (%)"), Column("Specificity (%)"),
            Column("F1 (%)")]
    cols += [Column(f"TAR @ FAR={k} (%)", help="achieved FAR below") for k in targets]
    cols += [Column("EER (%)"), Column("AUC"), Column("FtA (% pairs)", help="images below")]
    table = Table(f"verification-{protocol}", f"Verification — {protocol}", cols)
    unsupported = few_errors = False
    for c in cells:
        m = c.get("metrics") or {}
        acc = value_cell(c, "accuracy", fmt.pct, deltas, ci_text(c, "accuracy"))
        if acc.text != fmt.NA and fmt.number(m.get("accuracy_std")) is not None:
            acc.text += f" ± {fmt.pct(m['accuracy_std'])}"
        row = [model_cell(c), acc]
        row += [value_cell(c, k, fmt.pct, deltas, ci_text(c, k))
                for k in ("precision", "recall", "specificity", "f1")]
        for k in targets:
            cell = value_cell(c, f"tar@far={k}", fmt.pct, deltas,
                          f"FAR {fmt.far_text(m.get(f'far_achieved@far={k}'))}")
            if ci_text(c, f"tar@far={k}"):
                cell.note += f"; {ci_text(c, f'tar@far={k}')}"
            tar = tar_row(c, k)
            if errors_text(tar):
                cell.note += f"; {errors_text(tar)}"
            if tar_supported(c, k) is False:
                unsupported = True
                cell.cls += " unsupported"
                cell.text += " †"
            elif tar and tar.get("rule_of_30") is False and cell.text != fmt.NA:
                few_errors = True
                cell.text += f" {RULE_OF_30_MARK}"
            row.append(cell)
        row += [value_cell(c, "eer", fmt.pct, deltas, ci_text(c, "eer")),
                value_cell(c, "auc", lambda v: fmt.fixed(v, 4), deltas, ci_text(c, "auc")),
                value_cell(c, "fta_rate", fmt.pct, deltas,
                           f"{fmt.count(m.get('fta_images'))} images")]
        table.rows.append(row)
    n = len(targets)
    mark_best(table, {**dict(enumerate(VERIFICATION_MARKED[:5], 1)),
                       **{6 + i: f"tar@far={k}" for i, k in enumerate(targets)},
                       **dict(enumerate(VERIFICATION_MARKED[5:], 6 + n))})
    table.notes.append(("Rates in % at one threshold chosen on all pairs (no folds: accuracy has "
                        "no ± std)" if one else "Rates in % at the per-fold cross-validated "
                        "thresholds (counts summed over folds)")
                       + "; n/a = undefined (0/0). Best value per column in bold.")
    if unsupported:
        table.notes.append("† unsupported by the data: N_imp × FAR < 10, too few impostor pairs to "
                           "measure this FAR (docs/metrics.md).")
    if few_errors:
        table.notes.append(f"{RULE_OF_30_MARK} fewer than 30 false accepts or false rejects "
                           "behind this TAR@FAR (Doddington's rule of 30 not met): the rate is "
                           "less certain than ±30 %; the CI says by how much.")
    undefined = sorted({str(u) for c in cells
                        if (u := (c.get("details") or {}).get("undefined"))})
    table.notes += [f"n/a: {u}." for u in undefined]
    note = bootstrap_note(cells)
    if note:
        table.notes.append(note)
    table.notes += templates_notes(cells)
    return table


#: Marks a model whose graph dequantizes stored weights on every call (see the cost table note).
DEQUANT_MARK = "‡"


def _weights_note(c: dict[str, Any]) -> str:
    """The stored weights by precision (``9.76 M int8 + 0.21 M fp32``), "" when not recorded."""
    by_dtype = (c.get("details") or {}).get("weights_by_dtype")
    text = fmt.weights_by_precision(by_dtype)
    return "" if text == fmt.NA else text


def _dequantized(c: dict[str, Any]) -> int:
    n = fmt.number((c.get("details") or {}).get("dequantized_at_run_time"))
    return int(n) if n else 0


def _dequantized_footnote(by_model: dict[str, int]) -> str:
    """The cost table's footnote on weights dequantized at run time (N per model when they
    differ)."""
    counts = set(by_model.values())
    nodes = (f"{counts.pop()}" if len(counts) == 1 else
             ", ".join(f"{m}: {n}" for m, n in sorted(by_model.items())))
    return (f"{DEQUANT_MARK} weights dequantized at run time ({nodes} DequantizeLinear nodes): "
            "stored quantized, the graph expands them to float on every call unless the "
            "runtime fuses them into integer kernels.")


def _ratio_ci(c: dict[str, Any], metric: str) -> str:
    m = c.get("metrics") or {}
    lo, hi = fmt.number(m.get(f"{metric}_ci_low")), fmt.number(m.get(f"{metric}_ci_high"))
    return "" if lo is None or hi is None else f"CI [{lo:.3f}, {hi:.3f}]"


def _interleave_reference(group: list[dict[str, Any]]) -> str | None:
    """The reference model of a group's interleaved pass, when it had one."""
    for c in group:
        ref = ((c.get("details") or {}).get("interleave") or {}).get("reference")
        if ref:
            return str(ref).split("@", 1)[0]
    return None


def efficiency_tables(results: dict[str, Any], deltas: Deltas) -> list[Table]:
    """Per (protocol, device): a cost table and a latency-by-batch table."""
    cells = ok_cells(results, "efficiency")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((str(c.get("protocol")), str(c.get("device"))), []).append(c)
    several = len({p for p, _ in groups}) > 1
    tables = []
    for (protocol, device), group in groups.items():
        d = group[0].get("details") or {}
        threads = d.get("threads") or {}
        where = f"{protocol} · {device}" if several else device
        engine = f"{d.get('engine') or 'engine ?'}, threads intra {threads.get('intra_op', '?')}" \
                 f" / inter {threads.get('inter_op', '?')}"
        cost = Table(f"cost-{protocol}-{device}", f"Cost — {where} ({engine})", [
            Column("Model", numeric=False), Column("Params (M)"), Column("GMAC"),
            Column("GFLOPs", help="2 × GMAC"), Column("Size (MB)"), Column("Cold start (ms)"),
            Column("Throughput (img/s)", help="best batch size"), Column("Peak RSS (MB)"),
            Column("RSS Δ (MB)"), Column("GFLOP/s"),
            Column("% of peak", help="of the peak of the precision that ran, measured here")])
        dequantized: dict[str, int] = {}
        for c in group:
            best_tp = max(((b, (c.get("metrics") or {}).get(f"throughput.b{b}"))
                           for b in latency_batches([c])),
                          key=lambda t: fmt.number(t[1]) or -1, default=(None, None))
            tp = value_cell(c, f"throughput.b{best_tp[0]}", lambda v: fmt.fixed(v, 1), deltas,
                        f"batch {best_tp[0]}" if best_tp[0] else "")
            size = value_cell(c, "model_size_bytes", fmt.mega, deltas, _weights_note(c))
            dq = _dequantized(c)
            if dq:
                size.note += f" {DEQUANT_MARK}"
                dequantized[str(c.get("model"))] = dq
            cost.rows.append([
                model_cell(c),
                value_cell(c, "params", fmt.mega, deltas),
                value_cell(c, "gmac", lambda v: fmt.sig(v, 3), deltas),
                value_cell(c, "gflops", lambda v: fmt.sig(v, 3), deltas),
                size,
                value_cell(c, "cold_start_ms", fmt.ms, deltas),
                tp,
                value_cell(c, "memory.peak_rss_bytes", lambda v: fmt.mega(v, 1), deltas),
                value_cell(c, "memory.peak_rss_delta_bytes", lambda v: fmt.mega(v, 1), deltas),
                value_cell(c, "gflops_per_s", lambda v: fmt.sig(v, 3), deltas),
                value_cell(c, "pct_of_peak", lambda v: fmt.fixed(v, 1), deltas),
            ])
        mark_best(cost, dict(enumerate(COST_MARKED, 1)))
        cost.notes.append("MB = 10⁶ bytes. GMAC counts one fused multiply-add as 1; GFLOPs = 2 × "
                          "GMAC. % of peak: achieved GFLOP/s (int8: GOP/s) over the peak of the "
                          "precision that ran, measured on this machine at these threads (see "
                          "Reproducibility); above 100 % it is a measurement error and not shown.")
        if any(r[4].note for r in cost.rows):
            cost.notes.append("Under Size: the stored weights by precision, in millions of "
                              "elements (quantization scales and zero points included).")
        if dequantized:
            cost.notes.append(_dequantized_footnote(dequantized))
        lat = Table(f"latency-{protocol}-{device}", f"Latency by batch size — {where}", [
            Column("Model", numeric=False), Column("Batch"), Column("p50 (ms)"),
            Column("p90 (ms)"), Column("p99 (ms)"), Column("Mean ± std (ms)"),
            Column("Min (ms)"), Column("Samples"), Column("Throughput (img/s)")])
        relative = _interleave_reference(group)
        if relative:
            lat.columns.append(Column(f"p50 ÷ {relative} (interleaved)", help=meaning(
                "latency.b1.p50_vs_ref").replace("batch-1", "this batch's")))
        for c in group:
            for b in latency_batches([c]):
                p = f"latency.b{b}."
                mean = value_cell(c, p + "mean_ms", fmt.ms, deltas)
                if mean.text != fmt.NA:
                    mean.text += f" ± {fmt.ms((c.get('metrics') or {}).get(p + 'std_ms'))}"
                lat.rows.append([
                    model_cell(c), Cell(str(b), str(b), "num"),
                    value_cell(c, p + "p50_ms", fmt.ms, deltas, _normalised_note(c, p + "p50_ms")),
                    value_cell(c, p + "p90_ms", fmt.ms, deltas, _normalised_note(c, p + "p90_ms")),
                    value_cell(c, p + "p99_ms", fmt.ms, deltas, _normalised_note(c, p + "p99_ms")),
                    mean,
                    value_cell(c, p + "min_ms", fmt.ms, deltas),
                    value_cell(c, p + "samples", fmt.count, deltas),
                    value_cell(c, f"throughput.b{b}", lambda v: fmt.fixed(v, 1), deltas),
                ])
                if relative:
                    key = f"{p}p50_vs_ref"
                    lat.rows[-1].append(value_cell(c, key, lambda v: f"{fmt.fixed(v, 3)}×",
                                                   deltas, _ratio_ci(c, key)))
        lat.notes.append("Warm synchronous calls after warm-up; throughput = batch × iterations / "
                         "wall time.")
        index = ((d.get("speed_index") or {}).get("value"))
        if fmt.number(index) is not None:
            lat.notes.append(
                f"norm.: the latency on the reference machine = ms × this device's speed index "
                f"({fmt.sig(index, 3)} GFLOP/s: fp32 GEMM measured with this engine and threads) "
                f"/ {fmt.sig(REFERENCE_SPEED_INDEX, 3)} GFLOP/s (the fixed reference): compare "
                "it across machines, the ms within one.")
        if relative:
            lat.notes.append(f"÷ {relative}: each model timed again in alternating rounds with "
                             f"{relative} (interleave: true); median over rounds of the per-round "
                             "p50 ratio, [≥ 95 % CI]: it holds on a busy machine where the "
                             "milliseconds do not.")
        tables += [cost, lat]
    return tables


#: The stages of "Where the time went", (column label, metric), in pipeline order.
STAGES = (("Decode", "time.decode_s"), ("Detect", "time.detect_s"), ("Align", "time.align_s"),
          ("Embed", "time.embed_s"), ("Metrics", "time.metrics_s"))
_EMBED_STAGES = tuple(m for _, m in STAGES if m != "time.metrics_s")


def _size_text(size: Any) -> str:
    if isinstance(size, list | tuple) and len(size) == 2:
        return f"{size[0]}×{size[1]}"
    return "" if size is None else str(size)


def align_text(settings: Any) -> str:
    """An alignment's settings (``details.acquire.align``) in a few words:
    ``similarity arcface 112×112``, ``box_crop +32 px 160×160``, ``dlib_chip 150``."""
    if not isinstance(settings, dict) or not settings.get("method"):
        return fmt.NA
    method, size = str(settings["method"]), settings.get("size")
    if method == "similarity":
        template = settings.get("template")
        words = [method, template if isinstance(template, str) else "5-point template",
                 _size_text(size)]
    elif method == "box_crop":
        px = fmt.number(settings.get("margin_px"))
        frac = fmt.number(settings.get("margin_fraction"))
        margin = (f"+{frac * 100:g} %" if frac is not None
                  else f"+{px:g} px" if px is not None else "")
        words = [method, margin, _size_text(size)]
    elif method == "dlib_chip":
        side = size[0] if isinstance(size, list | tuple) and size else size
        padding = fmt.number(settings.get("padding"))
        words = [method, "" if side is None else str(side),
                 "" if padding in (None, 0.25) else f"padding {padding:g}"]
    else:
        words = [method, _size_text(size)]
    return " ".join(w for w in words if w)


def _parallel_text(c: dict[str, Any]) -> tuple[str, str]:
    """(strategy, "N workers · batch B") of an embedding cell."""
    d = c.get("details") or {}
    par = (d.get("acquire") or {}).get("parallel") or {}
    batch = par.get("batch_size", (d.get("engine") or {}).get("batch_size"))
    workers = par.get("workers")
    parts = [f"{workers} worker{'s' if workers != 1 else ''}" if workers is not None else "",
             f"batch {batch}" if batch is not None else ""]
    return str(par.get("strategy") or fmt.NA), " · ".join(p for p in parts if p)


def timings(results: dict[str, Any], deltas: Deltas) -> dict[str, Any]:
    """"Where the time went": per verification/identification cell, images/s, the seconds of
    each stage with its share of the stages' sum, the wall clock, the parallel strategy and the
    alignment. Cells without stage seconds get a line in ``missing`` instead of a row."""
    cells = [c for c in ok_cells(results) if c.get("kind") in ("verification", "identification")]
    cols = [Column("Model", numeric=False), Column("Protocol", numeric=False),
            Column("Images/s", help=meaning("images_per_s"))]
    cols += [Column(label, help=meaning(m)) for label, m in STAGES]
    cols += [Column("Total", help=meaning("time.total_s")),
             Column("Parallel", numeric=False, help="strategy; workers and batch size per worker"),
             Column("Alignment", numeric=False, help="alignment method and crop size; detector")]
    table = Table("time-by-stage", "Seconds per stage", cols)
    cached, old = [], []
    for c in cells:
        m = c.get("metrics") or {}
        where = f"{c.get('model')} ({c.get('device')}) · {c.get('protocol')}"
        if all(fmt.number(m.get(k)) is None for k in _EMBED_STAGES):
            acq = (c.get("details") or {}).get("acquire") or {}
            if (acq.get("embedding_cache") or {}).get("hit") and "time.total_s" in m:
                cached.append(f"{where}: {fmt.metric('time.total_s', m.get('time.total_s'))}")
            else:
                old.append(where)
            continue
        stage_sum = sum(fmt.number(m.get(k)) or 0.0 for _, k in STAGES)
        row = [model_cell(c), Cell(str(c.get("protocol")), str(c.get("protocol"))),
               catalog_value(c, "images_per_s", deltas)]
        for _, k in STAGES:
            v = fmt.number(m.get(k))
            share = f"{fmt.pct(v / stage_sum, 1)} %" if v is not None and stage_sum else ""
            row.append(catalog_value(c, k, deltas, share))
        row.append(catalog_value(c, "time.total_s", deltas))
        strategy, how = _parallel_text(c)
        row.append(Cell(strategy, strategy, note=how))
        acq = (c.get("details") or {}).get("acquire") or {}
        align = align_text(acq.get("align") or (c.get("details") or {}).get("align"))
        row.append(Cell(align, align, note=str((acq.get("detector") or {}).get("name") or "")))
        table.rows.append(row)
    if table.rows:
        table.notes.append("Stage seconds are summed over the processes doing the stage, so with "
                           "several workers they can add up to more than the wall clock (Total: "
                           "the cell's embedding and metrics, start to end); under each, its share "
                           "of the five stages' sum. 0 s: served from the detection or crop "
                           "cache.")
    missing = []
    if cached:
        missing.append("Embeddings loaded from the embedding cache, so no stage ran (total wall "
                       "clock): " + "; ".join(cached) + ".")
    if old:
        missing.append("No per-stage timings in this results.json (written by a facebench that "
                       "did not record them): " + "; ".join(old) + ".")
    return {"table": table, "missing": missing, "cells": len(cells)}


def _where(c: dict[str, Any], several: bool) -> str:
    """``model (device)``; ``model (device · protocol)`` when a group has several protocols."""
    return f"{c.get('model')} ({c.get('device')}" + (f" · {c.get('protocol')})" if several
                                                     else ")")


def summary(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per group of protocols that scored the same pairs (:func:`summary_groups`; else per
    protocol): cell counts, best model per metric, and the Pareto front in words."""
    out = []
    all_cells = results.get("cells") or []
    for group in summary_groups(results):
        protocol, kind, several = group.protocols, group.kind, len(group.protocols) > 1
        cells = [c for c in all_cells if str(c.get("protocol")) in protocol]
        status = {s: sum(c.get("status") == s for c in cells) for s in ("ok", "failed", "skipped")}
        bests = [{
            "label": b.label,
            "winners": ", ".join(_where(c, several) for c in b.cells),
            "value": fmt.metric(catalog_name(b.metric), b.value),
        } for b in best_per_metric(results, protocol)]
        entry: dict[str, Any] = {"protocol": group.title, "kind": kind, "bests": bests,
                                 "counts": ", ".join(f"{n} {s}" for s, n in status.items() if n),
                                 "same_pairs": several}
        if kind == "verification":
            entry["warnings"] = [
                f"{c.get('model')} ({c.get('device')}) found no face in "
                f"{fmt.pct(c['metrics']['fta_rate'], 1)} % of pairs; those pairs count as "
                "rejects, so its rates say more about detection than recognition."
                for c in cells if c.get("status") == "ok"
                and (fmt.number((c.get("metrics") or {}).get("fta_rate")) or 0) > FTA_WARN]
            points = pareto_points(results, protocol)
            entry["front"] = [f"{p.label} ({fmt.pct(p.accuracy)} %, {fmt.ms(p.latency_ms)} ms)"
                              for p in sorted(points, key=lambda p: p.latency_ms) if p.on_front]
            entry["dominated"] = [f"{p.label} (beaten by {', '.join(p.dominated_by)})"
                                  for p in points if not p.on_front]
        out.append(entry)
    return out


def failures(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for c in results.get("cells") or []:
        if c.get("status") == "ok":
            continue
        err = c.get("error") or {}
        out.append({
            "id": str(c.get("id")), "kind": str(c.get("kind")), "status": str(c.get("status")),
            "reason": str(c.get("reason") or ""),
            "error": f"{err.get('type') or 'Error'}: {err.get('message') or ''}" if err else "",
            "traceback": str(err.get("traceback") or ""),
        })
    return out


def _fta_text(entry: Any) -> str:
    """An FtA entry: ``{"image": path, "reason": why}`` (or a bare path)."""
    if isinstance(entry, dict):
        return f"{entry.get('image') or entry.get('path')} — {entry.get('reason') or 'no reason'}"
    return str(entry)


def fta_lists(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per verification cell, its images that failed to acquire, then its (IJB) templates that
    failed to (no feature: e.g. their weights sum to 0), each with its reason."""
    out = []
    for c in ok_cells(results, "verification"):
        d = c.get("details") or {}
        images = [_fta_text(p) for p in d.get("fta_images_list") or []]
        failed = (d.get("templates") or {}).get("fta_templates_list") or []
        templates = [f"template {t.get('template')} — {t.get('reason') or 'no reason'}"
                     if isinstance(t, dict) else str(t) for t in failed]
        for what, entries in (("image(s) with no face found", images),
                              ("template(s) with no feature", templates)):
            if entries:
                out.append({"id": str(c.get("id")), "count": len(entries), "what": what,
                            "images": entries[:MAX_FTA_LISTED],
                            "more": max(0, len(entries) - MAX_FTA_LISTED)})
    return out


def _settings(c: dict[str, Any]) -> str:
    d = c.get("details") or {}
    keys = (("preprocess", "detector", "align", "flip") if c.get("kind") == "verification"
            else ("engine", "threads", "compute"))
    picked = {k: d[k] for k in keys if k in d}
    if c.get("kind") == "verification":
        picked["cv_threshold_median"] = cv_threshold(c)
    return json.dumps(picked, sort_keys=True, default=str)


def _normalised_note(c: dict[str, Any], metric: str) -> str:
    """``norm. 12.3 ms`` for a latency with a normalised figure, else ''."""
    name = normalised(metric)
    value = (c.get("metrics") or {}).get(name) if name else None
    return "" if fmt.number(value) is None else f"norm. {fmt.ms(value)}"


def peak_rows(env: dict[str, Any]) -> list[tuple[str, Any]]:
    """The environment's measured peaks (value and method), the nominal upper bound and the
    speed index, as reproducibility rows."""
    rows: list[tuple[str, Any]] = []
    peaks = env.get("peaks")
    for key, p in (peaks.items() if isinstance(peaks, dict) else ()):
        if not isinstance(p, dict):
            continue
        value = fmt.number(p.get("gflops"))
        text = (f"{fmt.sig(value, 4)} {p.get('unit') or 'GFLOP/s'} — {p.get('method')}"
                if value is not None else f"not measured: {p.get('error')}")
        if p.get("remeasured"):
            text += f" (measured again {p['remeasured']}× after a cell exceeded it)"
        rows.append((f"Measured peak {key}", text))
    nominal = env.get("peak_nominal_upper_bound")
    if isinstance(nominal, dict) and nominal.get("how"):
        rows.append(("Nominal peak (formula; upper bound only if the reported clock is the "
                     "highest the cores reach; never divided by)", nominal.get("how")))
    index = env.get("speed_index")
    if isinstance(index, dict) and index.get("values"):
        values = ", ".join(f"{k}: {fmt.sig(v, 4)}" for k, v in index["values"].items()
                           if fmt.number(v) is not None)
        rows.append(("Speed index (fp32 GEMM GFLOP/s)",
                     f"{values}; reference {fmt.sig(index.get('reference'), 4)}"))
    return rows


def _loads(values: Any) -> str:
    return ", ".join(fmt.fixed(v) for v in values) if isinstance(values, list) else fmt.NA


def reproducibility(results: dict[str, Any]) -> dict[str, Any]:
    run = results.get("run") or {}
    env = results.get("environment") or {}
    git = run.get("git") or {}
    cmd = run.get("command")
    dirty = {True: " (dirty)", False: ""}.get(git.get("dirty"), " (dirty: unknown)")
    mem = fmt.number(env.get("memory_bytes"))
    rows = [
        ("Run id", run.get("id")), ("Started", run.get("started")),
        ("Finished", run.get("finished")),
        ("Command", shlex.join(map(str, cmd)) if isinstance(cmd, list) else cmd),
        ("facebench", f"{results.get('facebench_version')} @ {git.get('commit') or 'unknown'}"
                      f" on {git.get('branch') or '?'}{dirty}"),
        ("Suite file", run.get("suite_path")), ("Suite sha256", run.get("suite_sha256")),
        ("Machine fingerprint", env.get("fingerprint")), ("CPU", env.get("cpu_model")),
        ("Cores", f"{env.get('physical_cores')} physical / {env.get('logical_cores')} logical"),
        ("Memory", f"{mem / 2**30:.1f} GiB" if mem else None),
        ("OS", env.get("os")), ("Python", env.get("python")),
        ("Load average (1, 5, 15 min) before / after",
         f"{_loads(env.get('load_avg_before') or env.get('load_avg'))} / "
         f"{_loads(env.get('load_avg_after'))}"),
    ]
    flags = env.get("cpu_flags")
    if flags:
        rows.append(("CPU flags", " ".join(map(str, flags))))
    rows += peak_rows(env)
    datasets = [{"name": str(k), **{f: str(v.get(f, "")) for f in ("kind", "images", "pairs")},
                 "checksums": ", ".join(f"{f}={v[f]}" for f in sorted(v)
                                        if "sha" in f or "md5" in f)}
                for k, v in (results.get("datasets") or {}).items() if isinstance(v, dict)]
    return {
        "rows": [(k, fmt.NA if v in (None, "") else str(v)) for k, v in rows],
        "libraries": sorted((str(k), str(v)) for k, v in (env.get("libraries") or {}).items()),
        "datasets": datasets,
        "settings": [(str(c.get("id")), _settings(c)) for c in ok_cells(results)],
        "suite_text": str(run.get("suite_text") or ""),
    }


def baseline_view(comparison: Comparison, baseline: dict[str, Any]) -> dict[str, Any]:
    run = baseline.get("run") or {}

    def row(d: Delta) -> list[Cell]:
        cls = delta_class(d)
        return [Cell(d.cell_id, d.cell_id, "model"), Cell(d.metric, d.metric),
                Cell(fmt.metric(d.metric, d.baseline), sort_key(d.baseline), "num"),
                Cell(fmt.metric(d.metric, d.current), sort_key(d.current), "num"),
                Cell(fmt.delta(d.metric, d.diff, d.rel), sort_key(d.rel if d.rel is not None
                                                                   else d.diff), "num",
                     delta_cls=cls),
                Cell(f"{DELTA_MARK[cls]} {cls}", cls, f"verdict {cls}"),
                Cell(d.method, d.method)]

    cols = [Column("Cell", False), Column("Metric", False), Column("Baseline"),
            Column("Current"), Column("Δ"), Column("Verdict", False), Column("Noise test", False)]
    marked = [d for d in comparison.deltas if d.significant]
    changed = Table("baseline-changes", "Headline changes larger than their noise", cols,
                    [row(d) for d in marked if HEADLINE.match(d.metric)])
    every = Table("baseline-all", "Every shared metric", cols,
                  [row(d) for d in comparison.deltas])
    machine = {True: "same machine fingerprint",
               False: "DIFFERENT machine fingerprint: latency, throughput and memory deltas "
                      "compare two machines, not two versions; the normalised latencies "
                      "(latency…_norm_ms: ms × speed index / reference) are the ones to compare",
               None: "machine fingerprint unknown"}[comparison.same_machine]
    return {
        "run_id": str(run.get("id")), "started": str(run.get("started")),
        "commit": str((run.get("git") or {}).get("commit") or "unknown")[:12],
        "machine": machine, "same_machine": comparison.same_machine,
        "changes": changed, "all": every, "n_marked": len(marked),
        "n_better": sum(d.better is True for d in marked),
        "n_worse": sum(d.better is False for d in marked),
        "added": comparison.added, "removed": comparison.removed,
        "not_comparable": comparison.not_comparable,
    }


def build(results: dict[str, Any], baseline: dict[str, Any] | None) -> dict[str, Any]:
    """Everything the templates need except the figures."""
    suite = results.get("suite") or {}
    run = results.get("run") or {}
    comparison = compare(results, baseline) if baseline is not None else None
    deltas = Deltas(comparison)
    title = (suite.get("report") or {}).get("title") or suite.get("name") or "facebench"
    vtables = [verification_table(results, p, deltas)
               for p, k in protocols(results) if k == "verification"]
    return {
        "title": str(title),
        "suite_name": str(suite.get("name") or ""),
        "run_id": str(run.get("id") or ""),
        "started": str(run.get("started") or ""),
        "commit": str((run.get("git") or {}).get("commit") or "unknown")[:12],
        "busy": busy_warning(results),
        "summary": summary(results),
        "verification": [t for t in vtables if t.rows],
        "differences": differences_tables(results),
        "identification": identification_tables(results, deltas),
        "robustness": robustness_section(results),
        "efficiency": efficiency_tables(results, deltas),
        "paper": paper_table(results),
        "variants": variants_tables(results),
        "timings": timings(results, deltas),
        "failures": failures(results),
        "fta": fta_lists(results),
        "repro": reproducibility(results),
        "baseline": baseline_view(comparison, baseline) if comparison else None,
        "delta_marks": DELTA_MARK,
    }

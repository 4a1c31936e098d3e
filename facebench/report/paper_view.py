"""The paper table and precision-variants sections of the report's view model (from
``report.paper_table`` and the devices' ``precision``); their data comes from
:mod:`facebench.report.paper`."""

from __future__ import annotations

from typing import Any

from facebench.report import fmt
from facebench.report.cells import (
    DASH,
    Cell,
    Column,
    Deltas,
    Table,
    bootstrap_note,
    catalog_value,
    ci_text,
    dash,
    latency_batches,
    meaning,
    text_cell,
    value_cell,
)
from facebench.report.paper import (
    LATENCY,
    PaperModel,
    VariantGroup,
    paper_models,
    paper_options,
    paper_protocols,
    variant_groups,
)
from facebench.report.robustness import model_robustness


def _catalog_ci(m: dict[str, Any], metric: str) -> str:
    """``CI [lo, hi]`` of ``metric`` in the catalog's format of its bounds; "" without one."""
    lo, hi = f"{metric}_ci_low", f"{metric}_ci_high"
    if fmt.number(m.get(lo)) is None or fmt.number(m.get(hi)) is None:
        return ""
    return f"CI [{fmt.metric(lo, m[lo])}, {fmt.metric(hi, m[hi])}]"


def _reference_note(ref: dict[str, Any]) -> str:
    note = str(ref.get("note") or "")
    return str(ref.get("source") or "") + (f" ({note})" if note else "")


PAPER_FIVE = ("accuracy", "precision", "recall", "specificity", "f1")
PAPER_COST = (("Params", "params"), ("GMAC", "gmac"), ("Latency b1 p50", LATENCY),
              ("Peak RSS Δ", "memory.peak_rss_delta_bytes"))


def _paper_row(pm: PaperModel, no_deltas: Deltas) -> list[Cell]:
    c = pm.verification
    if c is None:
        row = [Cell(pm.model, pm.model, "model", "no verification cell finished"),
               Cell("measured: cost only", "measured")]
        row += [text_cell(fmt.NA) for _ in (*PAPER_FIVE, "fta_pairs")]
    else:
        m = c.get("metrics") or {}
        acc = dash(value_cell(c, "accuracy", fmt.pct, no_deltas, ci_text(c, "accuracy")))
        if acc.text != DASH and fmt.number(m.get("accuracy_std")) is not None:
            acc.text += f" ± {fmt.pct(m['accuracy_std'])}"
        row = [Cell(pm.model, pm.model, "model", title=str(c.get("id"))),
               Cell(f"measured: {c.get('protocol')} · {c.get('device')}", "measured"), acc]
        row += [dash(value_cell(c, k, fmt.pct, no_deltas, ci_text(c, k))) for k in PAPER_FIVE[1:]]
        row.append(dash(catalog_value(c, "fta_pairs", no_deltas)))
    ref = pm.reference or {}
    published = fmt.number(ref.get("lfw_accuracy"))
    row.append(text_cell(fmt.pct(published), published, note=_reference_note(ref) if ref else ""))
    diff = None if published is None or pm.accuracy is None else pm.accuracy - published
    row.append(text_cell(fmt.delta("accuracy", diff, None), diff))
    fastest = pm.fastest or {}
    for _, metric in PAPER_COST:
        value = {"params": pm.params, "gmac": pm.gmac, LATENCY: pm.latency_ms,
                 "memory.peak_rss_delta_bytes": pm.rss_delta}[metric]
        note = f"on {fastest.get('device')}" if metric == LATENCY and value is not None else ""
        if note:
            note += _relative_note(fastest)
        row.append(text_cell(fmt.metric(metric, value), value, note=note))
    return row


def _relative_note(cell: dict[str, Any]) -> str:
    """``; 5.26× mobilefacenet, CI [4.07, 7.33] (interleaved)`` for an efficiency cell of an
    ``interleave: true`` protocol; empty otherwise."""
    m = cell.get("metrics") or {}
    ratio = fmt.number(m.get("latency.b1.p50_vs_ref"))
    ref = ((cell.get("details") or {}).get("interleave") or {}).get("reference")
    if ratio is None or not ref:
        return ""
    lo, hi = (fmt.number(m.get(f"latency.b1.p50_vs_ref_ci_{e}")) for e in ("low", "high"))
    ci = "" if lo is None or hi is None else f", CI [{lo:.2f}, {hi:.2f}]"
    return f"; {ratio:.2f}× {str(ref).split('@', 1)[0]}{ci} (interleaved)"


def _published_row(p: dict[str, Any]) -> list[Cell]:
    training = str(p.get("training") or "")
    note = (f"trained on {training}; " if training else "") + str(p.get("source") or "")
    row = [Cell(str(p.get("label")), str(p.get("label")), "model published", note),
           Cell(f"published: {p.get('test_set')}", "published", "published")]
    row += [text_cell(fmt.pct(p.get(k)), p.get(k)) for k in PAPER_FIVE]
    row += [text_cell(fmt.NA) for _ in range(3 + len(PAPER_COST))]
    return row


def paper_table(results: dict[str, Any]) -> dict[str, Any] | None:
    """The paper table (None unless the suite sets ``report.paper_table``): per model its
    verification cell's five confusion columns, FtA, published LFW accuracy and measured −
    published, and its cost on fp32 devices; each published row right after its model's."""
    options = paper_options(results)
    if options is None:
        return None
    protocol_ids = paper_protocols(results, options)
    models = paper_models(results, protocol_ids)
    cols = [Column("Model", numeric=False), Column("Row", numeric=False),
            Column("Accuracy (%)", help="k-fold mean ± std; bootstrap CI below"),
            Column("Precision (%)"), Column("Recall (%)"), Column("Specificity (%)"),
            Column("F1 (%)"), Column("FtA pairs", help=meaning("fta_pairs")),
            Column("Published LFW (%)", help="the model's reference.lfw_accuracy; source below"),
            Column("Measured − published", help="measured accuracy − published LFW accuracy")]
    cols += [Column(label, help=meaning(metric)) for label, metric in PAPER_COST]
    table = Table("paper-table", "Paper table — " + ", ".join(protocol_ids), cols)
    published = [p for p in options.get("published") or [] if isinstance(p, dict)]
    placed = {pm.model for pm in models}
    no_deltas = Deltas(None)
    robust = model_robustness(results)
    if robust:
        table.columns.append(Column("Relative robustness", help="mean over the degrade: "
                                    "corruptions of the area under accuracy vs severity over "
                                    "clean accuracy (Robustness section)"))
    for pm in models:
        table.rows.append(_paper_row(pm, no_deltas))
        if robust:
            value = robust.get(pm.model)
            table.rows[-1].append(text_cell("" if value is None else f"{value:.3f}", value))
        table.rows += [_published_row(p) for p in published if p.get("model") == pm.model]
    table.rows += [_published_row(p) for p in published if p.get("model") not in placed]
    if robust:
        for row in table.rows:
            if len(row) < len(table.columns):
                row.append(text_cell(fmt.NA))
    table.notes.append(
        "Measured rows: each model once, from the first of these protocols that ran it, on an "
        "fp32 device (other precisions: Precision variants). Rates in % at the per-fold CV "
        "thresholds; measured − published in percentage points. Cost: params and GMAC of the "
        "model; batch-1 p50 latency and peak RSS Δ on its fastest fp32 efficiency device. "
        f"{DASH} = not measured or undefined.")
    table.notes.append("Published rows (labelled 'published' with their test set) are the "
                       "publication's numbers, not measured here: a different test set or "
                       "training data makes them a reference, not a like-for-like comparison.")
    for pm in models:
        if pm.reference:
            table.notes.append(f"Published LFW accuracy of {pm.model}: "
                               f"{_reference_note(pm.reference)}.")
    note = bootstrap_note([pm.verification for pm in models if pm.verification is not None])
    if note:
        table.notes.append(note)
    return {"table": table, "protocols": protocol_ids}


def quantization_text(cell: dict[str, Any]) -> str:
    """``details["precision"]`` in a few words (mode, per-channel, types, calibration images,
    why a mode other than the one asked for was used); ``—`` when absent."""
    d = (cell.get("details") or {}).get("precision")
    if not isinstance(d, dict):
        return DASH if d in (None, "") else str(d)
    settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}

    def get(key: str) -> Any:
        return d.get(key, settings.get(key))

    words = [str(get("mode") or "")]
    if isinstance(get("per_channel"), bool):
        words.append("per-channel" if get("per_channel") else "per-tensor")
    if get("weight_type") or get("activation_type"):
        words.append(f"weights {get('weight_type') or '?'}, "
                     f"activations {get('activation_type') or '?'}")
    cal = get("calibration")
    if isinstance(cal, dict):
        n = fmt.number(cal.get("images_used", cal.get("images_sampled")))
        where = f" of {cal['protocol']}" if cal.get("protocol") else ""
    else:
        n, where = fmt.number(get("calibration_images")), ""
    if n is not None:
        words.append(f"{fmt.count(n)} calibration images{where}")
    if get("reason"):
        words.append(f"({get('reason')})")
    return ", ".join(w for w in words if w) or DASH


def _baseline_text(cell: dict[str, Any], precision: str) -> Cell:
    if precision == "fp32":
        return Cell("baseline", "")
    base = (cell.get("details") or {}).get("precision_baseline")
    if not isinstance(base, dict):
        return text_cell(fmt.NA, cls="")
    if base.get("cell"):
        return Cell(str(base["cell"]), str(base["cell"]))
    return Cell("none", "", note=str(base.get("reason") or ""))


def _status_cell(c: dict[str, Any]) -> Cell:
    status = str(c.get("status"))
    err = c.get("error") or {}
    why = str(c.get("reason") or err.get("message") or "") if status != "ok" else ""
    return Cell(status, status, f"status-{status}", why)


def variants_tables(results: dict[str, Any]) -> list[Table]:
    """Per protocol, the models with an fp16 or int8 variant: each precision's cells (fp32
    first) with accuracy or latency, the change vs the fp32 baseline and how it was made."""
    by_protocol: dict[str, list[VariantGroup]] = {}
    for g in variant_groups(results):
        by_protocol.setdefault(g.protocol, []).append(g)
    tables = []
    for protocol, groups in by_protocol.items():
        efficiency = groups[0].kind == "efficiency"
        cells = [c for g in groups for _, c in g.cells]
        batches = latency_batches(cells) if efficiency else []
        cols = [Column("Model", numeric=False), Column("Precision", numeric=False),
                Column("Device", numeric=False), Column("Status", numeric=False)]
        if efficiency:
            for b in batches:
                cols += [Column(f"p50 b{b}", help=meaning(f"latency.b{b}.p50_ms")),
                         Column(f"b{b} ÷ fp32", help=meaning(f"latency.b{b}.p50_vs_fp32"))]
            cols += [Column("Peak RSS", help=meaning("memory.peak_rss_bytes")),
                     Column("RSS Δ", help=meaning("memory.peak_rss_delta_bytes")),
                     Column("RSS Δ ÷ fp32", help=meaning("memory.peak_rss_delta_vs_fp32"))]
        else:
            cols += [Column("Accuracy (%)"),
                     Column("vs fp32", help=meaning("accuracy_vs_fp32"))]
        cols += [Column("Compared with", numeric=False, help="the fp32 baseline cell"),
                 Column("Quantization", numeric=False, help="details.precision")]
        table = Table(f"variants-{protocol}", f"Precision variants — {protocol}", cols)
        no_deltas = Deltas(None)
        for g in groups:
            for precision, c in g.cells:
                m = c.get("metrics") or {}
                row = [Cell(g.model, g.model, "model", title=str(c.get("id"))),
                       Cell(precision, precision),
                       Cell(str(c.get("device")), str(c.get("device"))), _status_cell(c)]
                if efficiency:
                    for b in batches:
                        row.append(dash(catalog_value(c, f"latency.b{b}.p50_ms", no_deltas)))
                        ratio = f"latency.b{b}.p50_vs_fp32"
                        row.append(dash(catalog_value(c, ratio, no_deltas)))
                    row += [dash(catalog_value(c, name, no_deltas)) for name in
                            ("memory.peak_rss_bytes", "memory.peak_rss_delta_bytes",
                             "memory.peak_rss_delta_vs_fp32")]
                else:
                    acc = dash(value_cell(c, "accuracy", fmt.pct, no_deltas,
                                          ci_text(c, "accuracy")))
                    row += [acc, dash(catalog_value(c, "accuracy_vs_fp32", no_deltas,
                                                      _catalog_ci(m, "accuracy_vs_fp32")))]
                row += [_baseline_text(c, precision),
                        text_cell(quantization_text(c), cls="")]
                table.rows.append(row)
        table.notes.append(
            "fp32 rows are the baselines; a variant is compared with the fp32 cell of the same "
            "model and protocol on the same engine and device type. "
            + ("Latency ratio: variant p50 / fp32 p50 (below 1: faster)."
               if efficiency else "vs fp32: variant − fp32 accuracy on the same pairs, "
               "percentage points, with its paired-bootstrap 95 % CI.")
            + f" {DASH} = not measured or undefined.")
        tables.append(table)
    return tables


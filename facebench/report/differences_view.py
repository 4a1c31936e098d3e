"""The report's "Which differences are real" section: one row per pair of models that scored
the same pairs (``results["comparisons"]``, written by ``runner.comparisons``), the winner of a
metric named only where the paired CI of the difference excludes 0."""

from __future__ import annotations

from typing import Any

from facebench.report import fmt
from facebench.report.cells import DASH, Cell, Column, Table, sort_key


def _dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else {} (an edited results.json never crashes)."""
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of a list, [] when ``value`` is no list."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _groups(results: dict[str, Any]) -> list[dict[str, Any]]:
    return _dicts(_dict(results.get("comparisons")).get("groups"))


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return _dicts(_dict(results.get("comparisons")).get("pairwise"))


def _difference_cell(d: Any, note: str = "") -> Cell:
    """``+0.42 pp`` with its CI below; green/red when the CI excludes 0."""
    if not isinstance(d, dict) or fmt.number(d.get("delta")) is None:
        return Cell(DASH, "", "num na", note)
    lo, hi = fmt.number(d.get("ci_low")), fmt.number(d.get("ci_high"))
    ci = f"CI [{fmt.signed_pp(lo)}, {fmt.signed_pp(hi)}]" if lo is not None and hi is not None \
        else "no CI"
    cls = "num" + (" better" if lo is not None and lo > 0 else
                   " worse" if hi is not None and hi < 0 else "")
    return Cell(fmt.signed_pp(d["delta"]), sort_key(d["delta"]), cls,
                "; ".join(t for t in (ci, note) if t))


def p_text(p: float | None) -> str:
    """A p-value in two significant digits (``0.032``, ``4.7e-10``)."""
    return fmt.NA if p is None else f"{p:.2g}"


def _mcnemar_cell(t: Any, alpha: float) -> Cell:
    if not isinstance(t, dict) or fmt.number(t.get("p_value")) is None:
        return Cell(DASH, "", "num na")
    p, adjusted = fmt.number(t.get("p_value")), fmt.number(t.get("p_holm"))
    text = p_text(adjusted if adjusted is not None else p)
    real = adjusted is not None and adjusted < alpha
    note = (f"unadjusted {p_text(p)}; discordant {fmt.count(t.get('a_only'))} : "
            f"{fmt.count(t.get('b_only'))}")
    return Cell(text + (" *" if real else ""), sort_key(adjusted), "num", note)


def _verdict(row: dict[str, Any], keys: list[str]) -> Cell:
    """The models ahead, by metric, where the CI excludes 0; else "no real difference"."""
    if row.get("reason"):
        return Cell("not compared", "", "na", str(row["reason"]))
    wins: dict[str, list[str]] = {}
    acc = row.get("accuracy")
    if isinstance(acc, dict) and acc.get("winner"):
        wins.setdefault(str(acc["winner"]), []).append("accuracy")
    tars = {str(t.get("key")): t for t in _dicts(row.get("tar_at_far"))}
    for k in keys:
        t = _dict(tars.get(k))
        if t.get("winner") and t.get("supported") is not False:
            wins.setdefault(str(t["winner"]), []).append(f"TAR@FAR={k}")
    if not wins:
        return Cell("no real difference", "", "", "every CI includes 0")
    text = "; ".join(f"{m} ({', '.join(ms)})" for m, ms in wins.items())
    return Cell(text, text, "model")


def _far_keys(rows: list[dict[str, Any]]) -> list[str]:
    keys: dict[str, float] = {}
    for r in rows:
        for t in _dicts(r.get("tar_at_far")):
            if fmt.number(t.get("far")) is not None:
                keys[str(t.get("key"))] = float(t["far"])
    return sorted(keys, key=lambda k: -keys[k])


def _side(row: dict[str, Any], side: str) -> str:
    return f"{row.get('model_' + side)} ({row.get('protocol_' + side)})"


def differences_tables(results: dict[str, Any]) -> list[Table]:
    """Per group of cells that scored the same pairs: one row per pair of models."""
    comparisons = _dict(results.get("comparisons"))
    alpha = fmt.number(comparisons.get("alpha")) or 0.05
    level = fmt.number(comparisons.get("level")) or 0.95
    rows = _rows(results)
    tables = []
    for g in _groups(results):
        mine = [r for r in rows if r.get("pairs_key") == g.get("pairs_key")]
        if not mine:
            continue
        keys = _far_keys(mine)
        listed = g.get("protocols")
        protocols = " · ".join(str(p) for p in listed) if isinstance(listed, list) else ""
        n = next((r.get("pairs") for r in mine if r.get("pairs")), None)
        methods = sorted({str(_dict(r.get("bootstrap")).get("method")) for r in mine
                          if _dict(r.get("bootstrap"))})
        cols = [Column("A vs B", numeric=False, help="model (protocol): A − B below"),
                Column("Precision", numeric=False),
                Column("Δ accuracy", help="accuracy(A) − accuracy(B), each at its own "
                       "thresholds; paired bootstrap CI below"),
                Column("McNemar p (Holm)", help="exact McNemar test at each model's own "
                       f"thresholds, Holm-adjusted across the run; * below {alpha:g}")]
        cols += [Column(f"Δ TAR @ FAR={k}", help="TAR(A) − TAR(B), each at its own threshold "
                        "for this FAR; paired bootstrap CI below") for k in keys]
        cols += [Column("Real difference", numeric=False,
                        help="the model ahead on each metric whose CI excludes 0")]
        table = Table(f"differences-{str(g.get('pairs_key'))[:12]}",
                      f"Which differences are real — {protocols}"
                      + (f" ({fmt.count(n)} pairs)" if n else ""), cols)
        for r in mine:
            acc = _dict(r.get("accuracy"))
            acc_note = f"{fmt.pct(acc.get('a'))} vs {fmt.pct(acc.get('b'))} %" if acc else ""
            row = [Cell(f"{_side(r, 'a')} vs {_side(r, 'b')}", f"{r.get('a')}|{r.get('b')}",
                        "model", title=f"{r.get('a')} vs {r.get('b')}"),
                   Cell(str(r.get("precision") or ""), str(r.get("precision") or "")),
                   _difference_cell(r.get("accuracy"), acc_note),
                   _mcnemar_cell(r.get("mcnemar"), alpha)]
            tars = {str(t.get("key")): t for t in _dicts(r.get("tar_at_far"))}
            for k in keys:
                t = tars.get(k)
                cell = _difference_cell(t)
                if isinstance(t, dict) and t.get("supported") is False:
                    cell.text += " †"
                    cell.cls = "num unsupported"
                row.append(cell)
            row.append(_verdict(r, keys))
            table.rows.append(row)
        how = " / ".join("identity bootstrap (an identity drawn brings all its pairs)"
                         if m == "identity" else "pair bootstrap" for m in methods)
        table.notes.append(
            f"Differences A − B in percentage points on the same pairs, with {level:.0%} paired "
            f"CIs ({how}: each resample weighs both models alike). A difference is real only "
            "where its CI excludes 0 (green: A ahead, red: B ahead). McNemar's exact test on "
            "the pairs the two models decide differently, its p-values Holm-adjusted across "
            f"all comparisons of this run (family-wise error {alpha:g}).")
        if any("unsupported" in c.cls for row in table.rows for c in row):
            table.notes.append("† unsupported by the data: N_imp × FAR < 10; never called a "
                               "winner.")
        tables.append(table)
    return tables

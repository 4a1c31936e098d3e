"""The "Identification (1:N)" section of the report's view model: per identification protocol,
closed-set rank-k rates and open-set FNIR at FPIR targets, and the note on template pooling that
template (IJB-style) verification tables carry."""

from __future__ import annotations

from typing import Any

from facebench.report import fmt
from facebench.report.cells import (
    Cell,
    Column,
    Deltas,
    Table,
    mark_best,
    model_cell,
    sort_key,
    value_cell,
)
from facebench.report.summary import (
    fnir_supported,
    fpir_targets,
    ok_cells,
    protocols,
    rank_keys,
)


def _flat(record: dict[str, Any], prefix: str = "") -> list[str]:
    """``key value`` words of a (nested) settings record; lists are left out."""
    words = []
    for k, v in record.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            words += _flat(v, f"{name}.")
        elif isinstance(v, bool):
            words.append(f"{name} {'on' if v else 'off'}")
        elif v is not None and not isinstance(v, list | tuple):
            words.append(f"{name} {v}")
    return words


#: The fields of a pooling record that say how templates were made.
POOLING_CHOICES = ("media", "detector_score", "norm", "flip")


def pooling_text(record: Any) -> str:
    """A template pooling record (``details.templates``) in one line:
    ``media mean, detector_score off, norm on``; "" when there is none. The choices only: the
    counts and the definition stay in results.json (docs/identification.md defines it)."""
    if isinstance(record, dict):
        return ", ".join(_flat({k: record[k] for k in POOLING_CHOICES if k in record}))
    return "" if record is None else str(record)


def templates_notes(cells: list[dict[str, Any]], what: str = "scores are template-to-template"
                    ) -> list[str]:
    """One note when any of ``cells`` compared templates (``details.templates``), naming each
    distinct pooling; none otherwise."""
    pooled = sorted({pooling_text(t) or "not recorded" for c in cells
                     if (t := (c.get("details") or {}).get("templates")) is not None})
    if not pooled:
        return []
    return [f"{what[:1].upper()}{what[1:]} (each template one pooled feature of its faces); "
            f"pooling: {'; '.join(pooled)}."]


def _open_set_rank(cells: list[dict[str, Any]]) -> str:
    ranks = sorted({str(r) for c in cells
                    if (r := (c.get("details") or {}).get("open_set_rank")) is not None})
    return " / ".join(ranks) if ranks else "?"


def _galleries_note(cells: list[dict[str, Any]]) -> str:
    """``Galleries: G1 1,772 (searched by 1,200 mated / 572 non-mated probes); G2 …`` (from
    the first cell listing them), "" when no cell has ``details.galleries``."""
    for c in cells:
        parts = [f"{g.get('name')} {fmt.count(g.get('gallery'))} (searched by "
                 f"{fmt.count(g.get('mated'))} mated / {fmt.count(g.get('nonmated'))} "
                 "non-mated probes)"
                 for g in (c.get("details") or {}).get("galleries") or [] if isinstance(g, dict)]
        if parts:
            return "Galleries: " + "; ".join(parts) + "."
    return ""


def identification_table(results: dict[str, Any], protocol: str, deltas: Deltas) -> Table:
    """Rank-k, FNIR at each FPIR target, searches, gallery size and FtA of one protocol."""
    cells = [c for c in ok_cells(results, "identification") if c.get("protocol") == protocol]
    cells.sort(key=lambda c: -(fmt.number((c.get("metrics") or {}).get("rank1")) or -1))
    ranks, targets = rank_keys(cells), fpir_targets(cells)
    cols = [Column("Model", numeric=False)]
    cols += [Column(f"Rank-{k[4:]} (%)", help="closed-set, over mated searches") for k in ranks]
    cols += [Column(f"FNIR @ FPIR={k} (%)", help="open-set; achieved FPIR below")
             for k in targets]
    cols += [Column("Searches (mated / non-mated)"),
             Column("Gallery", help="gallery entries; distractors below"),
             Column("FtA (probes)", help="probes without a face; gallery entries below")]
    table = Table(f"identification-{protocol}", f"Identification (1:N) — {protocol}", cols)
    unsupported = False
    for c in cells:
        m = c.get("metrics") or {}
        row = [model_cell(c)]
        row += [value_cell(c, k, fmt.pct, deltas) for k in ranks]
        for k in targets:
            achieved = fmt.number(m.get(f"fpir_achieved@fpir={k}"))
            cell = value_cell(c, f"fnir@fpir={k}", fmt.pct, deltas,
                              "" if achieved is None else f"FPIR {fmt.far_text(achieved)}")
            if fnir_supported(c, k) is False and cell.text != fmt.NA:
                unsupported = True
                cell.cls += " unsupported"
                cell.text += " †"
            row.append(cell)
        mated, nonmated = m.get("mated_searches"), m.get("nonmated_searches")
        row.append(Cell(f"{fmt.count(mated)} / {fmt.count(nonmated)}",
                        sort_key((fmt.number(mated) or 0) + (fmt.number(nonmated) or 0)), "num"))
        splits = (c.get("details") or {}).get("splits") or []
        extra = [f"{fmt.count(m['distractors'])} distractors"
                 if fmt.number(m.get("distractors")) else "",
                 " + ".join(f"{s.get('name')} {fmt.count(s.get('gallery'))}" for s in splits)
                 if len(splits) > 1 else ""]
        row.append(value_cell(c, "gallery", fmt.count, deltas, " · ".join(e for e in extra if e)))
        row.append(value_cell(c, "fta_probes", fmt.count, deltas,
                              f"gallery {fmt.count(m.get('fta_gallery'))}"))
        table.rows.append(row)
    marked = {1 + i: k for i, k in enumerate(ranks)}
    marked |= {1 + len(ranks) + i: f"fnir@fpir={k}" for i, k in enumerate(targets)}
    marked[len(cols) - 1] = "fta_probes"
    mark_best(table, marked)
    table.notes.append("Rank-k: closed-set identification rate over the mated searches (probes "
                       "whose identity is in the gallery): the mate is among the k best-scoring "
                       "gallery identities. Best value per column in bold; n/a = undefined.")
    if targets:
        rank = _open_set_rank(cells)
        table.notes.append(
            f"FNIR @ FPIR=x: open-set at rank {rank}: the share of mated searches whose mate is "
            f"not returned at rank ≤ {rank} with a score at or above the threshold t, the "
            "smallest score at which at most a fraction x of the non-mated searches return any "
            "candidate (achieved FPIR below); n/a without non-mated searches.")
    if unsupported:
        table.notes.append("† unsupported by the data: N_nonmated × FPIR < 10, too few non-mated "
                           "searches to measure this FPIR (docs/identification.md).")
    table.notes.append("Searches: probe searches whose identity is (mated) or is not "
                       "(non-mated) in the gallery. FtA: probes without a face, which count as "
                       "misses (gallery entries without a face below).")
    table.notes += [n for n in (_galleries_note(cells),) if n]
    table.notes += templates_notes(cells, "probes and gallery entries are templates")
    return table


def identification_tables(results: dict[str, Any], deltas: Deltas) -> list[Table] | None:
    """The tables of the identification protocols that have a successful cell; None when the
    run has no identification protocol (the report then leaves the section out)."""
    names = [p for p, k in protocols(results) if k == "identification"]
    if not names:
        return None
    return [t for p in names if (t := identification_table(results, p, deltas)).rows]

"""Score files: one row per pair with ``pair_id, score, label, fold, fta``.

CSV is always available; Parquet needs ``pyarrow``. The format follows the file name: ``.csv``
(optionally compressed, e.g. ``.csv.gz``) or ``.parquet``/``.pq``. Reading checks every column and
raises ``ValueError`` naming the file, the column and the first bad row. ``label`` is 1 for a
genuine pair and 0 for an impostor; ``fold`` may be empty (no protocol folds); ``fta`` marks a
failure to acquire, whose ``score`` may be empty (NaN). Writes are atomic (temp file + rename).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebench.io import atomic_path
from facebench.metrics.exhaustive import pair_identities

COLUMNS: tuple[str, ...] = ("pair_id", "score", "label", "fold", "fta")
REQUIRED: tuple[str, ...] = ("pair_id", "score", "label")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def parquet_available() -> bool:
    """True when ``pyarrow`` can be imported (Parquet read/write)."""
    return importlib.util.find_spec("pyarrow") is not None


@dataclass(frozen=True)
class ScoreTable:
    """Validated pair scores: ``pair_id`` (str), ``score`` (float64), ``label`` (int8 0/1),
    ``fold`` (int64, or ``None`` when the file has no folds), ``fta`` (bool)."""

    pair_id: np.ndarray
    score: np.ndarray
    label: np.ndarray
    fold: np.ndarray | None
    fta: np.ndarray

    def __post_init__(self) -> None:
        frame = pd.DataFrame(
            {
                "pair_id": self.pair_id,
                "score": self.score,
                "label": self.label,
                "fold": self.fold if self.fold is not None else pd.NA,
                "fta": self.fta,
            }
        )
        clean = _validate(frame, "<ScoreTable>")
        for name in COLUMNS:
            object.__setattr__(self, name, getattr(clean, name))

    def __len__(self) -> int:
        return int(self.score.shape[0])

    @classmethod
    def from_arrays(
        cls,
        pair_id: np.ndarray,
        score: np.ndarray,
        label: np.ndarray,
        fold: np.ndarray | None = None,
        fta: np.ndarray | None = None,
    ) -> ScoreTable:
        """Build from arrays; ``fta`` defaults to all False."""
        n = len(score)
        return cls(
            np.asarray(pair_id),
            np.asarray(score),
            np.asarray(label),
            None if fold is None else np.asarray(fold),
            np.zeros(n, dtype=bool) if fta is None else np.asarray(fta),
        )

    def to_frame(self) -> pd.DataFrame:
        """The table as a DataFrame with the file's columns (``fold`` nullable Int64)."""
        fold = (
            pd.array([pd.NA] * len(self), dtype="Int64")
            if self.fold is None
            else pd.array(self.fold, dtype="Int64")
        )
        return pd.DataFrame(
            {
                "pair_id": self.pair_id,
                "score": self.score,
                "label": self.label,
                "fold": fold,
                "fta": self.fta,
            }
        )


@dataclass(frozen=True)
class _Clean:
    pair_id: np.ndarray
    score: np.ndarray
    label: np.ndarray
    fold: np.ndarray | None
    fta: np.ndarray


def _fail(source: str, column: str, row: int | None, message: str) -> ValueError:
    where = f"column '{column}'" + (f", data row {row + 1}" if row is not None else "")
    return ValueError(f"{source}: {where}: {message}")


def _show(value: object) -> str:
    """A cell value as the user wrote it (numpy scalars unwrapped, NaN/NA as 'empty')."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "empty"
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and np.isnan(value):
            return "empty"
    return repr(value)


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _numbers(col: pd.Series, source: str, name: str) -> np.ndarray:
    """Column as float64; blanks become NaN; anything else non-numeric is an error."""
    if col.dtype == bool:
        raise _fail(source, name, None, "expected numbers, got true/false values")
    if pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    values = pd.to_numeric(col, errors="coerce")
    text = col.astype("string").str.strip()
    bad = values.isna().to_numpy() & ~(col.isna().to_numpy() | (text == "").fillna(True).to_numpy())
    if bad.any():
        i = _first(bad)
        raise _fail(source, name, i, f"{_show(col.iloc[i])} is not a number")
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _bools(col: pd.Series, source: str, name: str) -> np.ndarray:
    if col.dtype == bool:
        return col.to_numpy()
    text = col.astype("string").str.strip().str.lower().fillna("")
    is_true = text.isin(_TRUE).to_numpy()
    bad = ~(is_true | text.isin(_FALSE).to_numpy())
    if bad.any():
        i = _first(bad)
        raise _fail(
            source, name, i, f"{_show(col.iloc[i])} is not a boolean (use true/false or 1/0)"
        )
    return is_true


def _validate(frame: pd.DataFrame, source: str) -> _Clean:
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{source}: missing required column(s) {', '.join(repr(c) for c in missing)}; a score "
            f"file needs columns {', '.join(COLUMNS)} (fold and fta optional); "
            f"found {', '.join(map(str, frame.columns)) or 'none'}"
        )
    n = len(frame)
    ids = frame["pair_id"]
    blank = ids.isna().to_numpy() | (ids.astype("string").str.strip() == "").fillna(True).to_numpy()
    if blank.any():
        raise _fail(source, "pair_id", _first(blank), "empty pair_id; every pair needs an id")
    pair_id = ids.astype(str).to_numpy(dtype=object)
    dup = pd.Series(pair_id).duplicated().to_numpy()
    if dup.any():
        i = _first(dup)
        raise _fail(source, "pair_id", i, f"duplicate pair_id {pair_id[i]!r}; ids must be unique")

    fta = _bools(frame["fta"], source, "fta") if "fta" in frame.columns else np.zeros(n, dtype=bool)
    score = _numbers(frame["score"], source, "score")
    bad = ~np.isfinite(score) & ~fta
    if bad.any():
        i = _first(bad)
        raise _fail(
            source,
            "score",
            i,
            f"value {_show(frame['score'].iloc[i])}: every pair needs a finite score unless "
            "fta=true (failure to acquire)",
        )
    label_f = _numbers(frame["label"], source, "label")
    bad = ~np.isin(label_f, (0.0, 1.0))
    if bad.any():
        i = _first(bad)
        raise _fail(
            source,
            "label",
            i,
            f"{_show(frame['label'].iloc[i])} is not 0 or 1 (1 = genuine, 0 = impostor)",
        )
    fold = None
    if "fold" in frame.columns:
        fold_f = _numbers(frame["fold"], source, "fold")
        empty = np.isnan(fold_f)
        if empty.all():
            fold = None
        elif empty.any():
            raise _fail(source, "fold", _first(empty), "empty fold; give every row a fold or none")
        else:
            bad = fold_f != np.round(fold_f)
            if bad.any():
                i = _first(bad)
                shown = _show(frame["fold"].iloc[i])
                raise _fail(source, "fold", i, f"{shown} is not an integer")
            fold = fold_f.astype(np.int64)
    return _Clean(pair_id, score, label_f.astype(np.int8), fold, fta)


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if ".csv" in suffixes:
        return "csv"
    raise ValueError(f"{path}: unknown score-file format; use a .csv(.gz) or .parquet name")


def _need_pyarrow(path: Path) -> None:
    if not parquet_available():
        raise ValueError(f"{path}: Parquet needs pyarrow (pip install pyarrow), or use a .csv file")


def read_scores(path: str | os.PathLike[str]) -> ScoreTable:
    """Read and validate a score file (CSV or Parquet, chosen by the file name)."""
    p = Path(path)
    kind = _kind(p)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: score file not found")
    try:
        if kind == "parquet":
            _need_pyarrow(p)
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, dtype={"pair_id": str}, keep_default_na=False, na_values=[""])
    except (pd.errors.EmptyDataError, pd.errors.ParserError, OSError, ValueError) as exc:
        raise ValueError(f"{p}: cannot read as {kind}: {exc}") from exc
    return _trusted(_validate(frame, str(p)))


def _trusted(clean: _Clean) -> ScoreTable:
    """A ScoreTable from already-validated columns (skips validating twice)."""
    table = object.__new__(ScoreTable)
    for name in COLUMNS:
        object.__setattr__(table, name, getattr(clean, name))
    return table


def write_scores(path: str | os.PathLike[str], table: ScoreTable, *,
                 root: str | os.PathLike[str] | None = None,
                 extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write ``table`` atomically as CSV or Parquet (by file name); return the path. ``root``:
    the output folder holding ``path`` (no symbolic link between: :func:`atomic_path`).
    ``extra``: further columns after the standard ones (e.g. :data:`IDENTITY_COLUMNS`)."""
    p = Path(path)
    kind = _kind(p)
    if kind == "parquet":
        _need_pyarrow(p)
    frame = table.to_frame()
    for name, values in (extra or {}).items():
        frame[name] = values
    with atomic_path(p, root=root) as tmp:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            compression = _csv_compression(p.suffix.lstrip(".").lower())
            frame.to_csv(tmp, index=False, compression=compression)
    return p


def _csv_compression(suffix: str) -> str | None:
    return {"gz": "gzip", "bz2": "bz2", "xz": "xz", "zip": "zip", "zst": "zstd"}.get(suffix)


# ---- every verification cell's pairs as arrays (comparisons of models on the same pairs) ------

#: Identity columns a verification cell's scores.csv adds (the identity of each side's image).
IDENTITY_COLUMNS: tuple[str, str] = ("identity_a", "identity_b")
#: An exhaustive cell's compact binary files, in its cell folder (docs/results.md).
EXHAUSTIVE_SCORES = "scores.npy"
EXHAUSTIVE_PAIRS = "pairs.npz"


@dataclass(frozen=True)
class PairArrays:
    """A verification cell's pairs in file order: ``score`` (float, NaN where ``fta``),
    ``label`` (int8, 1 = genuine), ``fold`` (int64 or None), ``fta`` (bool), and the integer
    identity code of each side (``id_a``/``id_b``; None when the cell does not know them).
    Codes index the sorted identity names, so two cells of equal ``pairs_key`` agree on them."""

    score: np.ndarray
    label: np.ndarray
    fold: np.ndarray | None
    fta: np.ndarray
    id_a: np.ndarray | None
    id_b: np.ndarray | None

    @property
    def identities(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(id_a, id_b)`` for the identity bootstrap, or None."""
        return None if self.id_a is None or self.id_b is None else (self.id_a, self.id_b)


def _exhaustive_arrays(cell_dir: Path) -> PairArrays:
    score = np.load(cell_dir / EXHAUSTIVE_SCORES, allow_pickle=False)
    with np.load(cell_dir / EXHAUSTIVE_PAIRS, allow_pickle=False) as z:
        identity = z["image_identity"].astype(np.int32)
        ranks = z["ranks"] if "ranks" in z.files else None
    n_img = identity.size
    n_pairs = n_img * (n_img - 1) // 2 if ranks is None else ranks.size
    if n_pairs != score.size:
        raise ValueError(f"{cell_dir}: {score.size} scores in {EXHAUSTIVE_SCORES} for "
                         f"{n_pairs} pairs in {EXHAUSTIVE_PAIRS}; the cell's files disagree")
    id_a, id_b = pair_identities(identity, ranks)
    fta = np.isnan(score)
    return PairArrays(score, (id_a == id_b).astype(np.int8), None, fta, id_a, id_b)


def _csv_identities(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    head = pd.read_csv(path, nrows=0).columns
    if not all(c in head for c in IDENTITY_COLUMNS):
        return None
    frame = pd.read_csv(path, usecols=list(IDENTITY_COLUMNS), dtype=str, keep_default_na=False)
    a, b = (frame[c].to_numpy(dtype=object) for c in IDENTITY_COLUMNS)
    _, codes = np.unique(np.concatenate((a, b)).astype(str), return_inverse=True)
    codes = codes.astype(np.int32)
    return codes[: a.size], codes[a.size:]


def load_pair_arrays(cell_dir: Path, details: dict) -> PairArrays:  # type: ignore[type-arg]
    """The pairs of a verification cell (folder ``cell_dir``, record ``details``): an
    exhaustive cell's ``scores.npy`` + ``pairs.npz``, else its ``scores.csv`` (identity
    columns when the cell wrote them). Errors name the file."""
    cell_dir = Path(cell_dir)
    if isinstance(details.get("exhaustive"), dict):
        return _exhaustive_arrays(cell_dir)
    path = cell_dir / "scores.csv"
    table = read_scores(path)
    ids = _csv_identities(path)
    score = np.where(table.fta, np.nan, table.score)
    return PairArrays(score, table.label, table.fold, table.fta,
                      None if ids is None else ids[0], None if ids is None else ids[1])

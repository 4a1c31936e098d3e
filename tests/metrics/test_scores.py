"""Score files: CSV/Parquet round trips and clear errors for malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebench.metrics import compute_verification_metrics
from facebench.scores import ScoreTable, parquet_available, read_scores, write_scores


def table(fold: bool = True) -> ScoreTable:
    rng = np.random.default_rng(0)
    n = 50
    fta = np.zeros(n, dtype=bool)
    fta[[3, 17]] = True
    score = rng.normal(size=n).astype(np.float32).astype(np.float64)
    score[3] = np.nan
    return ScoreTable.from_arrays(
        pair_id=np.array([f"p{i:03d}" for i in range(n)]),
        score=score,
        label=np.tile([1, 0], n // 2),
        fold=np.repeat(np.arange(5), 10) if fold else None,
        fta=fta,
    )


def assert_same(a: ScoreTable, b: ScoreTable) -> None:
    assert a.pair_id.tolist() == b.pair_id.tolist()
    np.testing.assert_array_equal(a.score, b.score)  # exact, NaN == NaN
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.fta, b.fta)
    if a.fold is None:
        assert b.fold is None
    else:
        np.testing.assert_array_equal(a.fold, b.fold)


@pytest.mark.parametrize("name", ["scores.csv", "scores.csv.gz"])
@pytest.mark.parametrize("fold", [True, False])
def test_csv_round_trip(tmp_path: Path, name: str, fold: bool) -> None:
    t = table(fold)
    path = write_scores(tmp_path / "sub" / name, t)
    assert_same(t, read_scores(path))
    assert not list(path.parent.glob(".*tmp"))  # atomic write leaves no temp file


def test_csv_header_is_the_contract(tmp_path: Path) -> None:
    path = write_scores(tmp_path / "s.csv", table())
    assert path.read_text().splitlines()[0] == "pair_id,score,label,fold,fta"


@pytest.mark.skipif(not parquet_available(), reason="pyarrow not installed")
@pytest.mark.parametrize("fold", [True, False])
def test_parquet_round_trip(tmp_path: Path, fold: bool) -> None:
    t = table(fold)
    assert_same(t, read_scores(write_scores(tmp_path / "scores.parquet", t)))


def test_numeric_pair_ids_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("pair_id,score,label\n007,0.5,1\n8,0.25,0\n")
    t = read_scores(path)
    assert t.pair_id.tolist() == ["007", "8"] and t.fold is None and not t.fta.any()


def test_scores_feed_the_metrics(tmp_path: Path) -> None:
    t = read_scores(write_scores(tmp_path / "s.csv", table()))
    m = compute_verification_metrics(t.score, t.label, t.fold, t.fta).metrics
    assert m["pairs"] == 50 and m["fta_pairs"] == 2


BAD = {
    "missing column": ("pair_id,score\na,0.5\n", "label", "missing required column"),
    "non-numeric score": ("pair_id,score,label\na,0.5,1\nb,abc,0\n", "score", "data row 2"),
    "label not 0/1": ("pair_id,score,label\na,0.5,1\nb,0.4,2\n", "label", "not 0 or 1"),
    "text label": ("pair_id,score,label\na,0.5,yes\n", "label", "not a number"),
    "blank score": ("pair_id,score,label,fta\na,,1,false\n", "score", "unless fta=true"),
    "bad fta": ("pair_id,score,label,fta\na,0.1,1,maybe\n", "fta", "not a boolean"),
    "duplicate id": ("pair_id,score,label\na,0.1,1\na,0.2,0\n", "pair_id", "duplicate"),
    "partial folds": ("pair_id,score,label,fold\na,0.1,1,0\nb,0.2,0,\n", "fold", "empty fold"),
    "fractional fold": ("pair_id,score,label,fold\na,0.1,1,0.5\n", "fold", "not an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_files_name_file_and_column(tmp_path: Path, case: str) -> None:
    text, column, hint = BAD[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        read_scores(path)
    msg = str(info.value)
    assert str(path) in msg and f"'{column}'" in msg and hint in msg, msg


def test_fta_pair_may_have_blank_score(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_text("pair_id,score,label,fold,fta\na,,1,0,true\nb,0.3,0,1,False\n")
    t = read_scores(path)
    assert np.isnan(t.score[0]) and t.fta.tolist() == [True, False]


def test_empty_and_unknown_files(tmp_path: Path) -> None:
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"e\.csv"):
        read_scores(empty)
    with pytest.raises(ValueError, match="format"):
        read_scores(tmp_path / "x.txt")
    with pytest.raises(FileNotFoundError):
        read_scores(tmp_path / "nope.csv")


def test_invalid_table_in_memory() -> None:
    with pytest.raises(ValueError, match="'label'"):
        ScoreTable.from_arrays(np.array(["a"]), np.array([0.1]), np.array([3]))


@pytest.mark.skipif(not parquet_available(), reason="pyarrow not installed")
def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not a parquet file")
    with pytest.raises(ValueError, match=r"broken\.parquet"):
        read_scores(path)

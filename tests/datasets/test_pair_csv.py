"""Pair CSV: real paths load; traversal, absolute paths and bad rows are named by file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebench.datasets.pair_csv import load_pair_csv
from facebench.datasets.pairs import DatasetError

GOOD = ("path1,path2,label,fold\n"
        "Abel_Pacheco/Abel_Pacheco_0001.jpg,Abel_Pacheco/Abel_Pacheco_0004.jpg,1,0\n"
        "Abel_Pacheco/Abel_Pacheco_0001.jpg,Ahmed_Ahmed/Ahmed_Ahmed_0001.jpg,0,1\n")


def test_real_pairs(tmp_path: Path, lfw_dir: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(GOOD)
    ps = load_pair_csv(path, lfw_dir / "images")
    assert ps.n_pairs == 2 and ps.labels.tolist() == [1, 0] and ps.folds.tolist() == [0, 1]
    assert len(ps.images) == 3 and all(p.is_file() for p in ps.images)


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ("../../etc/passwd,Abel_Pacheco/Abel_Pacheco_0001.jpg,0,0", "escapes the image root"),
        ("Abel_Pacheco/Abel_Pacheco_0001.jpg,/etc/passwd,0,0", "absolute path"),
        ("a.jpg,b.jpg,2,0", "must be 0 or 1"),
        ("a.jpg,b.jpg,1,x", "not an integer"),
    ],
)
def test_bad_rows_name_the_line(tmp_path: Path, lfw_dir: Path, row: str, words: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(GOOD + row + "\n")
    with pytest.raises(DatasetError) as err:
        load_pair_csv(path, lfw_dir / "images")
    assert f"{path}:4:" in str(err.value) and words in str(err.value)


def test_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text("a,b\nx,y\n")
    with pytest.raises(DatasetError, match="missing column"):
        load_pair_csv(path, tmp_path)

"""LFW pairs.txt parsing: real View 2, and malformed files named by file:line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facebench.datasets.lfw import load_lfw_pairs
from facebench.datasets.pairs import DatasetError


def test_view2_parses(lfw_dir: Path) -> None:
    ps = load_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images")
    assert ps.n_pairs == 6000
    assert len(ps.images) == 7701
    assert np.unique(ps.folds).tolist() == list(range(10))
    assert np.bincount(ps.folds).tolist() == [600] * 10
    for f in range(10):  # 300 genuine then 300 impostor per fold
        labels = ps.labels[ps.folds == f]
        assert labels[:300].all() and not labels[300:].any()
    assert all(p.is_file() for p in ps.images[:50])
    assert ps.images[ps.left[0]].name == "Abel_Pacheco_0001.jpg"
    assert len(ps.checksum) == 64


def test_max_folds(lfw_dir: Path) -> None:
    ps = load_lfw_pairs(lfw_dir / "pairs.txt", lfw_dir / "images", max_folds=2)
    assert ps.n_pairs == 1200 and np.unique(ps.folds).tolist() == [0, 1]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", None, "empty file"),
        ("10 300 7\nA 1 2\n", ":1", "header"),
        ("x y\nA 1 2\n", ":1", "header"),
        ("1 1\nA 1 2\nB 1\n", ":3", "expected 'name i j'"),
        ("1 1\nA 1 2\nB one C 2\n", ":3", "not an integer"),
        ("1 1\nA 1 2\n", None, "announces 2 pairs"),
        ("1 1\nA 1 2\n../../etc 1 passwd 2\n", ":3", "escapes the image root"),
    ],
)
def test_malformed_pairs_file(tmp_path: Path, text: str, line: str | None, words: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(DatasetError) as err:
        load_lfw_pairs(path, tmp_path)
    msg = str(err.value)
    assert str(path) in msg and words in msg
    if line:
        assert f"{path}{line}:" in msg

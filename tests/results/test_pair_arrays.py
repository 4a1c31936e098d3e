"""load_pair_arrays / read_identities: a View 2-style scores.csv with identity columns, the
same in Parquet, an exhaustive cell's scores.npy + pairs.npz, and `facebench metrics
--bootstrap-method` reading the identities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from facebench.metrics.exhaustive import layout, pair_labels
from facebench.scores import (
    EXHAUSTIVE_PAIRS,
    EXHAUSTIVE_SCORES,
    ScoreTable,
    load_pair_arrays,
    parquet_available,
    read_identities,
    write_scores,
)

ROOT = Path(__file__).resolve().parents[2]
NAMES_A = np.array(["Bo", "Bo", "Al", "Cy", "Al", "Cy"], dtype=object)
NAMES_B = np.array(["Bo", "Al", "Al", "Bo", "Cy", "Cy"], dtype=object)


def _write(path: Path) -> None:
    rng = np.random.default_rng(0)
    label = (NAMES_A == NAMES_B).astype(np.int8)
    score = rng.normal(size=6) + label
    fta = np.array([False, False, False, True, False, False])
    score[3] = np.nan
    table = ScoreTable.from_arrays(np.arange(6).astype(str), score, label,
                                   np.array([0, 0, 0, 1, 1, 1]), fta)
    write_scores(path, table, extra={"identity_a": NAMES_A, "identity_b": NAMES_B})


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet"])
def test_score_file_with_identities(tmp_path: Path, name: str) -> None:
    if name.endswith(".parquet") and not parquet_available():
        pytest.skip("pyarrow not installed")
    _write(tmp_path / name)
    ids = read_identities(tmp_path / name)
    assert ids is not None
    codes = ["Al", "Bo", "Cy"]  # sorted names
    assert [codes[k] for k in ids[0]] == list(NAMES_A)
    assert [codes[k] for k in ids[1]] == list(NAMES_B)
    if name == "scores.csv":
        p = load_pair_arrays(tmp_path, {})
        assert np.array_equal(p.id_a, ids[0]) and np.array_equal(p.id_b, ids[1])
        assert np.isnan(p.score[3]) and p.fta[3] and p.fold is not None
        assert p.identities is not None


def test_exhaustive_files(tmp_path: Path) -> None:
    ident = np.array([0, 0, 0, 1, 2, 2])
    pairs = layout(ident)
    score = np.linspace(-1, 1, pairs.n_pairs).astype(np.float32)
    np.save(tmp_path / EXHAUSTIVE_SCORES, score)
    np.savez(tmp_path / EXHAUSTIVE_PAIRS, image_identity=ident.astype(np.int32))
    p = load_pair_arrays(tmp_path, {"exhaustive": {"scores_file": EXHAUSTIVE_SCORES}})
    label, a, b = pair_labels(pairs)
    assert np.array_equal(p.label, label) and np.array_equal(p.id_a, a)
    assert np.array_equal(p.id_b, b) and p.fold is None and not p.fta.any()
    np.save(tmp_path / EXHAUSTIVE_SCORES, score[:-1])
    with pytest.raises(ValueError, match="disagree"):
        load_pair_arrays(tmp_path, {"exhaustive": {}})


def _metrics(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "facebench.cli", "metrics", str(path),
                           "--bootstrap", "50", "--json", *args], cwd=ROOT,
                          capture_output=True, text=True, check=True)


def test_cli_metrics_bootstrap_method(tmp_path: Path) -> None:
    _write(tmp_path / "scores.csv")
    ident = json.loads(_metrics(tmp_path / "scores.csv").stdout)
    pair = json.loads(_metrics(tmp_path / "scores.csv", "--bootstrap-method", "pair").stdout)
    assert ident["details"]["bootstrap"]["resampling_method"] == "identity"
    assert pair["details"]["bootstrap"]["resampling_method"] == "pair"
    plain = tmp_path / "plain.csv"
    plain.write_text("\n".join(",".join(line.split(",")[:5]) for line in
                               (tmp_path / "scores.csv").read_text().splitlines()) + "\n")
    res = _metrics(plain)
    assert json.loads(res.stdout)["details"]["bootstrap"]["resampling_method"] == "pair"
    assert "no identity_a/identity_b columns" in res.stderr

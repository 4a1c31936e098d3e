"""``degrade:`` through the real CLI on 20 real LFW pairs (MobileFaceNet, YuNet): each level is
its own cell and row, a severity-0 level scores bit-identically to the clean protocol, a
second run is warm and identical, and bad parameters are refused at validation, located."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.faults.kit import (
    LFW,
    MFN,
    SHARED,
    YUNET,
    cells_by_id,
    facebench,
    lfw_rows,
    model,
    suite,
    tidy_without_run_id,
    verification,
    verification_result,
    write_pair_csv,
    write_suite,
)

SOURCE = {"stage": "source", "sides": "probe", "seed": 0,
          "corruptions": [{"name": "blur", "levels": [0]}, {"name": "occlusion",
                                                           "levels": ["mask"]},
                          {"name": "jpeg", "levels": [10]}]}
ALIGNED = {"stage": "aligned", "sides": "both",
           "corruptions": [{"name": "resolution", "levels": [16]}]}


def env_for(d: Path) -> dict[str, str]:
    return {**os.environ, "FACEBENCH_SHARED": str(SHARED), "FACEBENCH_CACHE": str(d / "cache"),
            "FACEBENCH_HISTORY": f"sqlite:///{d}/history.db", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    if not MFN.is_file():
        pytest.skip(f"{MFN} not found")
    d = tmp_path_factory.mktemp("degrade")
    pairs = write_pair_csv(d / "pairs.csv", lfw_rows(per_fold=5, folds=2))
    s = write_suite(d / "suite.yaml", suite("deg", [model("mfn")], [
        verification("lfw", pairs, LFW / "images", degrade=SOURCE),
        verification("al", pairs, LFW / "images", degrade=ALIGNED)]))
    env = env_for(d)
    outs = []
    for name in ("cold", "warm"):
        res = facebench(["run", str(s), "--out", str(d / name), "--no-progress"], env, d,
                        timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        outs.append(d / name)
    return outs[0], outs[1], env


def test_each_level_is_its_own_cell_beside_the_clean_one(two_runs) -> None:  # noqa: ANN001
    cold, _, _ = two_runs
    cells = cells_by_id(cold)
    assert sorted(cells) == sorted(f"mfn@cpu@{p}" for p in (
        "lfw", "lfw+blur-0", "lfw+occlusion-mask", "lfw+jpeg-10", "al", "al+resolution-16"))
    assert all(c["status"] == "ok" for c in cells.values())
    mask = cells["mfn@cpu@lfw+occlusion-mask"]["details"]["degrade"]
    assert mask["name"] == "occlusion" and mask["level"] == "mask"
    assert mask["stage"] == "source" and mask["sides"] == "probe" and mask["base"] == "lfw"
    assert "degrade" not in cells["mfn@cpu@lfw"]["details"]
    # a level changes the scores: the masked probes score lower against their clean mates
    clean = (cold / cells["mfn@cpu@lfw"]["artifacts"]["scores"]).read_text()
    for level in ("lfw+occlusion-mask", "lfw+jpeg-10", "al+resolution-16"):
        assert (cold / cells[f"mfn@cpu@{level}"]["artifacts"]["scores"]).read_text() != clean


def test_severity_zero_scores_bit_identically_to_the_clean_protocol(two_runs) -> None:  # noqa: ANN001
    cold, _, _ = two_runs
    cells = cells_by_id(cold)
    zero, clean = cells["mfn@cpu@lfw+blur-0"], cells["mfn@cpu@lfw"]
    assert (cold / zero["artifacts"]["scores"]).read_bytes() == \
        (cold / clean["artifacts"]["scores"]).read_bytes()
    assert zero["metrics"]["accuracy"] == clean["metrics"]["accuracy"]


def test_second_run_is_warm_and_identical(two_runs) -> None:  # noqa: ANN001
    cold, warm, _ = two_runs
    got, want = cells_by_id(warm), cells_by_id(cold)
    assert sorted(got) == sorted(want)
    for ident, c in got.items():
        assert c["details"]["acquire"].pop("embedding_cache")["hit"] is True, ident
        want[ident]["details"]["acquire"].pop("embedding_cache")
        assert (warm / c["artifacts"]["scores"]).read_bytes() == \
            (cold / want[ident]["artifacts"]["scores"]).read_bytes(), ident
        assert verification_result(c) == verification_result(want[ident]), ident
    assert tidy_without_run_id(warm) == tidy_without_run_id(cold)
    # every level's crops are cached apart from the clean ones, one folder per level
    cache = Path(two_runs[2]["FACEBENCH_CACHE"]) / "align"
    (detector,) = list(cache.iterdir())
    assert len(list((detector / "degraded").iterdir())) == 4


def refused(tmp_path: Path, degrade: dict[str, Any], **extra: Any) -> str:
    s = write_suite(tmp_path / "suite.yaml", suite("bad", [model("mfn")], [
        verification("lfw", tmp_path / "pairs.csv", LFW / "images", degrade=degrade,
                     **extra)]))
    write_pair_csv(tmp_path / "pairs.csv", lfw_rows(per_fold=1, folds=2))
    res = facebench(["validate", str(s)], env_for(tmp_path), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    return res.stderr


@pytest.mark.parametrize("corruption,where,what", [
    ({"name": "blur", "levels": [-1.0]}, "corruptions[0].levels[0]", "greater than or equal"),
    ({"name": "noise", "levels": [5, -2]}, "corruptions[0].levels[1]",
     "greater than or equal"),
    ({"name": "jpeg", "levels": [0]}, "corruptions[0].levels[0]", "greater than or equal"),
    ({"name": "fog", "levels": [1]}, "corruptions[0]", "unknown corruption"),
    ({"name": "occlusion", "levels": ["scarf"]}, "corruptions[0].levels[0]", "mask"),
    ({"name": "gamma", "levels": [0]}, "corruptions[0].levels[0]", "greater than"),
])
def test_bad_parameters_are_refused_with_the_field_named(tmp_path: Path, corruption: dict,
                                                         where: str, what: str) -> None:
    err = refused(tmp_path, {"corruptions": [corruption]})
    line = next((ln for ln in err.splitlines() if f"protocols[0].degrade.{where}" in ln), None)
    assert line is not None, err
    assert what in line, line


def test_a_resolution_larger_than_the_aligned_face_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, {"stage": "aligned",
                             "corruptions": [{"name": "resolution", "levels": [16, 64]}]})
    line = next(ln for ln in err.splitlines()
                if "protocols[0].degrade.corruptions[0].levels[1]" in ln)
    assert "resolution 64 px is larger than the face" in line and "35.2 px" in line
    assert "levels[0]" not in err  # 16 px fits in the 35 px of a 112×112 ArcFace crop


def test_a_level_id_that_clashes_with_a_protocol_is_refused(tmp_path: Path) -> None:
    pairs = write_pair_csv(tmp_path / "pairs.csv", lfw_rows(per_fold=1, folds=2))
    s = write_suite(tmp_path / "suite.yaml", suite("bad", [model("mfn")], [
        verification("lfw", pairs, LFW / "images",
                     degrade={"corruptions": [{"name": "jpeg", "levels": [10]}]}),
        verification("lfw+jpeg-10", pairs, LFW / "images")]))
    res = facebench(["run", str(s), "--out", str(tmp_path / "o"), "--dry-run"],
                    env_for(tmp_path), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "lfw+jpeg-10" in res.stderr and "Traceback" not in res.stderr


def test_each_level_scores_its_own_pairs_key(two_runs) -> None:  # noqa: ANN001
    """A level is compared only with cells of the same level: its ``pairs_key`` is the clean
    protocol's pair list plus the level and sides, so no clean-vs-degraded pair is compared."""
    cold, _, _ = two_runs
    keys = {ident: c["details"]["pairs_key"] for ident, c in cells_by_id(cold).items()}
    clean = keys.pop("mfn@cpu@lfw")
    assert keys.pop("mfn@cpu@al") == clean  # the same pairs, clean: comparable
    assert len(set(keys.values())) == len(keys) and clean not in keys.values(), keys


def test_degrade_on_an_exhaustive_protocol_is_refused(tmp_path: Path) -> None:
    s = write_suite(tmp_path / "suite.yaml", suite("bad", [model("mfn")], [{
        "id": "all", "kind": "verification",
        "dataset": {"kind": "identity_folder", "images": str(LFW / "images"), "pairs": "all"},
        "detector": {"name": "yunet", "model": str(YUNET)},
        "far_targets": [0.1], "degrade": {"corruptions": [{"name": "jpeg", "levels": [10]}]}}]))
    res = facebench(["validate", str(s)], env_for(tmp_path), tmp_path)
    assert res.returncode == 2, res.stdout + res.stderr
    line = next(ln for ln in res.stderr.splitlines() if "protocols[0].degrade" in ln)
    assert "pairs: all" in line and "Traceback" not in res.stderr

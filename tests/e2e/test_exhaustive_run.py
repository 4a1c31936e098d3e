"""Exhaustive verification through `facebench run` on real LFW images (a fixed subset copied
into an identity folder): every pair scored, TAR@FAR and EER equal to a brute-force evaluation
from the definitions, the compact binary score file read back by load_pair_arrays; broken
identity folders say which rates are undefined; View 2 cells carry identities and pairs_key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facebench.metrics import far_key
from facebench.scores import PairArrays, load_pair_arrays
from tests.e2e.conftest import facebench

SUITE = """
name: exhaustive
models:
  - id: mfn
    source: onnx
    path: {models}/mobilefacenet_128d.onnx
    preprocess: {{color: RGB, mean: 127.5, std: 128.0}}
devices:
  - id: cpu-ort
    engine: onnxruntime
    threads: {{intra_op: 1}}
protocols:
  - id: all
    kind: verification
    dataset:
      kind: identity_folder
      images: {images}
      pairs: all
    detector:
      name: yunet
      model: {models}/face_detection_yunet.onnx
    far_targets: [0.1, 0.01, 0.001]
    bootstrap: {bootstrap}
    workers: 1
"""

TARGETS = (0.1, 0.01, 0.001)


@pytest.fixture(scope="module")
def people(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 200 real images: 25 identities with 4+ images (at most 6 each) and 40 people with
    one image, copied (the dataset root confines paths)."""
    root = tmp_path_factory.mktemp("exh") / "people"
    many = single = 0
    for person in sorted((lfw_dir / "images").iterdir()):
        images = sorted(person.glob("*.jpg"))
        if len(images) >= 4 and many < 25:
            many += 1
        elif len(images) == 1 and single < 40:
            single += 1
        else:
            continue
        (root / person.name).mkdir(parents=True)
        for f in images[:6]:
            shutil.copy(f, root / person.name / f.name)
    return root


def _run(folder: Path, tmp: Path, models: Path, env: dict[str, str], bootstrap: int = 0,
         extra: str = "") -> tuple[dict, Path, str]:  # type: ignore[type-arg]
    suite = tmp / f"suite-{folder.name}.yaml"
    suite.write_text(SUITE.format(models=models, images=folder, bootstrap=bootstrap) + extra)
    out = tmp / f"out-{folder.name}"
    res = facebench("run", str(suite), "--out", str(out), "--no-progress", env=env, check=False)
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    return cell, out, res.stdout + res.stderr


def _brute(p: PairArrays) -> tuple[dict[float, float], float]:
    """TAR@FAR and EER from the definitions: accept s >= t, FtA pairs never accepted but
    counted; candidates are the distinct scores plus +inf; TAR@FAR at the smallest candidate
    with FAR <= x; EER = (FAR + FRR) / 2 at the candidate minimising |FAR - FRR| (ties: the
    smallest candidate), every rate counted by comparing each score with each candidate."""
    s, gen, fta = p.score, p.label == 1, p.fta
    cands = np.concatenate((np.unique(s[~fta]), [np.inf]))
    n_gen, n_imp = gen.sum(), (~gen).sum()
    far = np.empty(cands.size)
    tar = np.empty(cands.size)
    for lo in range(0, cands.size, 256):
        acc = (s[None, :] >= cands[lo:lo + 256, None]) & ~fta[None, :]
        far[lo:lo + 256] = (acc & ~gen).sum(axis=1) / n_imp
        tar[lo:lo + 256] = (acc & gen).sum(axis=1) / n_gen
    tars = {x: float(tar[np.flatnonzero(far <= x)[0]]) for x in TARGETS}
    gap = np.abs(far - (1 - tar))[:-1]  # +inf is not a candidate of the EER
    k = int(np.flatnonzero(gap == gap.min())[0])
    return tars, float((far[k] + 1 - tar[k]) / 2)


def test_exhaustive_cell_equals_brute_force(people: Path, models_dir: Path,
                                            run_env: dict[str, str]) -> None:
    cell, out, _ = _run(people, people.parent, models_dir, run_env, bootstrap=200)
    assert cell["status"] == "ok", cell.get("error")
    m, d = cell["metrics"], cell["details"]
    counts = [len(list(p.iterdir())) for p in people.iterdir()]
    n = sum(counts)
    assert m["pairs"] == n * (n - 1) // 2
    assert d["n_genuine"] == sum(c * (c - 1) // 2 for c in counts)
    assert d["exhaustive"]["scores_file"] == "scores.npy"
    assert len(d["pairs_key"]) == 64
    assert d["bootstrap"]["resampling_method"] == "identity"
    p = load_pair_arrays(out / "cells" / cell["id"], d)
    assert p.score.dtype == np.float32 and p.score.size == m["pairs"]
    assert int(p.label.sum()) == d["n_genuine"] and p.id_a is not None
    assert np.array_equal(p.label == 1, p.id_a == p.id_b)
    tars, eer = _brute(p)
    for x in TARGETS:
        key = far_key(x)
        assert m[f"tar@far={key}"] == pytest.approx(tars[x], abs=1e-12)
        assert m[f"fnmr@fmr={key}"] == pytest.approx(1 - tars[x], abs=1e-12)
        lo, hi = m[f"tar@far={key}_ci_low"], m[f"tar@far={key}_ci_high"]
        assert lo <= m[f"tar@far={key}"] <= hi
    assert m["eer"] == pytest.approx(eer, abs=1e-12)
    rows = {r["far"]: r for r in d["tar_at_far"]}
    imp = d["n_impostor"]
    for x in TARGETS:
        r = rows[x]
        assert r["supported"] == (imp * x >= 10)
        assert r["false_accepts"] == round(r["far_achieved"] * imp)
        assert r["rule_of_30"] == (min(r["false_accepts"], r["false_rejects"]) >= 30)


@pytest.mark.parametrize("layout", ["one_identity", "one_image_each", "one_image"])
def test_broken_identity_folders(layout: str, people: Path, models_dir: Path,
                                 run_env: dict[str, str]) -> None:
    folder = people.parent / layout
    shutil.rmtree(folder, ignore_errors=True)
    persons = sorted(people.iterdir())
    if layout == "one_identity":
        many = next(p for p in persons if len(list(p.iterdir())) >= 4)
        shutil.copytree(many, folder / many.name)
    else:
        for person in persons[: (1 if layout == "one_image" else 5)]:
            (folder / person.name).mkdir(parents=True)
            f = sorted(person.iterdir())[0]
            shutil.copy(f, folder / person.name / f.name)
    cell, _, text = _run(folder, people.parent, models_dir, run_env, bootstrap=50)
    assert "Traceback" not in text
    if layout == "one_image":
        assert cell["status"] == "failed"
        assert "no pair at all" in cell["error"]["message"]
        assert "traceback" not in cell["error"]
        return
    assert cell["status"] == "ok", cell.get("error")
    why = cell["details"]["undefined"]
    assert ("no impostor pair" if layout == "one_identity" else "no genuine pair") in why
    assert cell["metrics"]["eer"] is None and cell["metrics"]["tar@far=1e-2"] is None


LFW_PAIRS = """2 3
{g}
"""


def test_view2_cells_carry_identities_and_pairs_key(lfw_dir: Path, models_dir: Path,
                                                    run_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    """A small LFW-style pairs file (2 folds x 3 + 3 pairs) over the real images: scores.csv
    names each side's identity, the identity bootstrap is the default and `pair` available."""
    lines = (lfw_dir / "pairs.txt").read_text().splitlines()[1:]
    picked = lines[0:3] + lines[300:303] + lines[600:603] + lines[900:903]
    (tmp_path / "pairs.txt").write_text(LFW_PAIRS.format(g="\n".join(picked)))
    suite = SUITE.replace("""      kind: identity_folder
      images: {images}
      pairs: all""", f"""      kind: lfw_pairs
      pairs: {tmp_path / 'pairs.txt'}
      images: {lfw_dir / 'images'}""")
    suite += """  - id: pairboot
    kind: verification
    dataset:
      kind: lfw_pairs
      pairs: {pairs}
      images: {lfw}
    detector:
      name: yunet
      model: {models}/face_detection_yunet.onnx
    bootstrap: 50
    bootstrap_method: pair
    workers: 1
""".replace("{pairs}", str(tmp_path / "pairs.txt")).replace("{lfw}", str(lfw_dir / "images"))
    (tmp_path / "s.yaml").write_text(suite.format(models=models_dir, images="", bootstrap=50))
    out = tmp_path / "out"
    facebench("run", str(tmp_path / "s.yaml"), "--out", str(out), "--no-progress", env=run_env)
    cells = {c["protocol"]: c for c in json.loads((out / "results.json").read_text())["cells"]}
    a, b = cells["all"], cells["pairboot"]
    assert a["status"] == b["status"] == "ok"
    assert a["details"]["bootstrap"]["resampling_method"] == "identity"
    assert b["details"]["bootstrap"]["resampling_method"] == "pair"
    assert a["details"]["pairs_key"] == b["details"]["pairs_key"]
    pa = load_pair_arrays(out / "cells" / a["id"], a["details"])
    pb = load_pair_arrays(out / "cells" / b["id"], b["details"])
    assert np.array_equal(pa.score, pb.score, equal_nan=True) and pa.fold is not None
    names = [ln.split() for ln in picked]
    want_a = [n[0] for n in names]
    want_b = [n[0] if len(n) == 3 else n[2] for n in names]
    assert pa.id_a is not None and pa.id_b is not None
    codes = sorted(set(want_a + want_b))
    assert [codes[k] for k in pa.id_a] == want_a and [codes[k] for k in pa.id_b] == want_b

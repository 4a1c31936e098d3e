"""1:N identification through `facebench run` on a real identity folder (LFW people with
several images): gallery = first image per identity, probes = the rest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import facebench

SUITE = """
name: ident
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
  - id: lfw-1n
    kind: identification
    dataset:
      kind: identity_folder
      images: people
    detector:
      name: yunet
      model: {models}/face_detection_yunet.onnx
    ranks: [1, 5]
    max_rank: 10
"""


@pytest.fixture(scope="module")
def people(lfw_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 identities with at least 3 images each, copied (the dataset root confines paths)."""
    root = tmp_path_factory.mktemp("ident")
    chosen = 0
    for person in sorted((lfw_dir / "images").iterdir()):
        images = sorted(person.glob("*.jpg"))
        if len(images) < 3:
            continue
        shutil.copytree(person, root / "people" / person.name)
        chosen += 1
        if chosen == 20:
            break
    return root


def test_identification_cell(people: Path, models_dir: Path, run_env: dict[str, str]) -> None:
    suite = people / "suite.yaml"
    suite.write_text(SUITE.format(models=models_dir))
    out = people / "out"
    facebench("run", str(suite), "--out", str(out), "--no-progress", env=run_env)
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["status"] == "ok", cell.get("error")
    m = cell["metrics"]
    n_images = sum(1 for _ in (people / "people").rglob("*.jpg"))
    assert m["images"] == n_images and m["gallery"] == 20 and m["probes"] == n_images - 20
    assert 0.8 <= m["rank1"] <= m["rank5"] <= 1.0  # chance would be 1/20
    cmc = cell["details"]["cmc"]
    assert len(cmc) == 10 and cmc[0] == m["rank1"] and cmc[4] == m["rank5"]
    assert all(a <= b for a, b in zip(cmc, cmc[1:], strict=False))


OPEN_SET = SUITE.replace("    ranks: [1, 5]\n    max_rank: 10\n", """    ranks: [1, 5, 10]
    max_rank: 10
    unenrolled: 0.25
    seed: 3
    distractors: [distractors]
    fpir_targets: [0.1, 0.25]
""")


def test_open_set_split_with_distractors(people: Path, lfw_dir: Path, models_dir: Path,
                                         run_env: dict[str, str]) -> None:
    """A declared open-set split: 5 of the 20 identities unenrolled (their images are non-mated
    probes), and a distractor folder of 30 other LFW people's images in the gallery only."""
    distractors = people / "distractors"
    distractors.mkdir(exist_ok=True)
    taken = {p.name for p in (people / "people").iterdir()}
    for person in sorted((lfw_dir / "images").iterdir()):
        if person.name not in taken and len(list(distractors.iterdir())) < 30:
            first = sorted(person.glob("*.jpg"))[0]
            shutil.copyfile(first, distractors / first.name)
    suite = people / "open-set.yaml"
    suite.write_text(OPEN_SET.format(models=models_dir))
    out = people / "open-out"
    facebench("run", str(suite), "--out", str(out), "--no-progress", env=run_env)
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["status"] == "ok", cell.get("error")
    m, d = cell["metrics"], cell["details"]
    per_id = {p.name: len(list(p.glob("*.jpg"))) for p in (people / "people").iterdir()}
    n_images = sum(per_id.values())
    assert m["images"] == n_images + 30
    assert m["gallery"] == 15 + 30 and m["distractors"] == 30
    assert m["probes"] == n_images - 15
    assert m["mated_searches"] + m["nonmated_searches"] == m["probes"]
    unenrolled_images = m["nonmated_searches"]
    assert unenrolled_images >= 5 * 3  # five identities with >= 3 images each
    for x in ("1e-1", "2.5e-1"):
        assert 0.0 <= m[f"fnir@fpir={x}"] <= 1.0
        assert m[f"fpir_achieved@fpir={x}"] <= float(x)
    assert m["rank1"] >= 0.7  # trained model; 45 gallery identities (chance ~ 0.02)
    assert d["splits"][0]["distractors"] == 30 and d["det_1n"]["fpir"]
    dataset = next(iter(results_dataset(out).values()))
    assert dataset["unenrolled"] == 0.25 and dataset["distractor_images"] == 30


def results_dataset(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["datasets"]

"""MTCNN on real LFW images: against facenet-pytorch's own cascade, RetinaFace, awkward inputs.

The weights are facenet-pytorch 2.6.0's (installed with ``--no-deps`` by scripts/setup.sh). The
reference cascade is facenet-pytorch's ``detect_face`` run in a subprocess with a stand-in for
the one torchvision function it needs (``batched_nms``), written here independently of ours.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from facebench.faces.detect import create_detector, select_face
from facebench.faces.detect.mtcnn import MTCNN, WEIGHT_FILES, default_weights_dir, nms


@pytest.fixture(scope="module")
def weights_dir() -> Path:
    folder = default_weights_dir()
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail("facenet-pytorch weights missing in CI: scripts/setup.sh installs them")
        pytest.skip("MTCNN weights not installed (pip install --no-deps facenet-pytorch==2.6.0)")
    return folder


@pytest.fixture(scope="module")
def mtcnn(weights_dir: Path) -> MTCNN:
    return MTCNN(weights_dir, threads=1)


def iod(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[1] - landmarks[0]))


def test_central_face_and_landmark_order(mtcnn, lfw_sample):
    for name, image in lfw_sample:
        face = select_face(mtcnn.detect(image), image.shape, "closest_to_center")
        assert face is not None, name
        assert face.score > 0.9, name
        cx, cy = (face.box[0] + face.box[2]) / 2, (face.box[1] + face.box[3]) / 2
        assert abs(cx - 125) < 30 and abs(cy - 125) < 40, f"{name}: centre {cx:.0f},{cy:.0f}"
        le, re, nose, lm, rm = face.landmarks
        assert le[0] < nose[0] < re[0] and lm[0] < rm[0], name
        assert max(le[1], re[1]) < nose[1] < min(lm[1], rm[1]), name
        assert 25 < iod(face.landmarks) < 70, name
        assert face.landmarks.dtype == np.float32 and face.landmarks.shape == (5, 2)


def test_agrees_with_retinaface(mtcnn, retinaface, lfw_sample):
    """Measured on 52 LFW images: mean gap 0.065 of the inter-ocular distance."""
    gaps = []
    for name, image in lfw_sample:
        m = select_face(mtcnn.detect(image), image.shape)
        r = select_face(retinaface.detect(image), image.shape)
        assert m is not None and r is not None, name
        gaps.append(float(np.linalg.norm(m.landmarks - r.landmarks, axis=1).mean()) / iod(
            r.landmarks))
    assert np.mean(gaps) < 0.1 and max(gaps) < 0.2, gaps


REFERENCE = r"""
import json, sys, types
import numpy as np, torch

def batched_nms(boxes, scores, groups, threshold):  # torchvision semantics: IoU, no +1
    keep = []
    for g in groups.unique():
        idx = torch.nonzero(groups == g).flatten()
        b, order = boxes[idx], torch.argsort(scores[idx], descending=True)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        while order.numel():
            i, rest = order[0], order[1:]
            keep.append(idx[i])
            lo, hi = torch.maximum(b[i, :2], b[rest, :2]), torch.minimum(b[i, 2:], b[rest, 2:])
            inter = (hi - lo).clamp(min=0).prod(dim=1)
            order = rest[inter / (area[i] + area[rest] - inter) <= threshold]
    keep = torch.stack(keep) if keep else torch.zeros(0, dtype=torch.long)
    return keep[torch.argsort(scores[keep], descending=True)]

mods = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.ops", "torchvision.ops.boxes",
        "torchvision.transforms", "torchvision.transforms.functional")}
mods["torchvision.ops.boxes"].batched_nms = batched_nms
sys.modules.update(mods)
torch.set_num_threads(1)
from facenet_pytorch import MTCNN
import cv2
ref = MTCNN(keep_all=True, device="cpu")
out = {}
for path in json.loads(sys.argv[1]):
    rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    boxes, probs, points = ref.detect(rgb, landmarks=True)
    out[path] = [] if boxes is None else [
        {"box": np.asarray(b, float).tolist(), "score": float(p),
         "landmarks": np.asarray(pt.tolist(), float).tolist()}
        for b, p, pt in zip(boxes, probs, points)]
print(json.dumps(out))
"""


def test_matches_facenet_pytorch_reference(mtcnn, lfw_paths):
    """The same weights through facenet-pytorch's cascade: the central face's landmarks agree
    to 0.05 inter-ocular distances (mean 0.021 measured on 26 images). They are not identical:
    facenet-pytorch resizes with torch's area mode and clips crops at the image border, where
    the original cascade, and ours, zero-pads; small border faces near a threshold may differ."""
    paths = [str(p) for p in lfw_paths[:40:2]]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", REFERENCE, json.dumps(paths)],
                          capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref = json.loads(proc.stdout.strip().splitlines()[-1])
    from facebench.faces.images import load_image

    gaps, offsets, shifts = [], [], []
    for path in paths:
        image = load_image(Path(path))
        ours = select_face(mtcnn.detect(image), image.shape, "closest_to_center")
        faces = ref[path]
        assert faces and ours is not None, path
        centre = np.array([125.0, 125.0])
        theirs = min(faces, key=lambda f: np.linalg.norm(
            (np.array(f["box"][:2]) + np.array(f["box"][2:])) / 2 - centre))
        lm = np.array(theirs["landmarks"])
        gap = float(np.linalg.norm(ours.landmarks - lm, axis=1).mean()) / iod(lm)
        gaps.append(gap)
        shifts.append((ours.landmarks - lm).mean(axis=0))
        assert ours.score == pytest.approx(theirs["score"], abs=0.05), path
        # Boxes: ours are 0-based edges, theirs the 1-based corner convention.
        box = np.array(theirs["box"]) - np.array([1, 1, 0, 0])
        offsets.append(ours.box - box)
        assert np.abs(offsets[-1]).max() < 0.2 * iod(lm), (path, ours.box, box)
    assert max(gaps) < 0.05 and np.mean(gaps) < 0.03, gaps
    # Same pixel convention: no systematic landmark shift (measured: under 0.1 px).
    assert np.abs(np.mean(shifts, axis=0)).max() < 0.4, np.mean(shifts, axis=0)
    # Box noise (±6 px from the resizing) but no systematic offset (measured: under 0.5 px).
    assert np.abs(np.mean(offsets, axis=0)).max() < 1.5, np.mean(offsets, axis=0)


def test_no_face_in_noise_black_or_tiny_images(mtcnn):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert all(d.score < 0.99 for d in mtcnn.detect(noise))
    assert mtcnn.detect(np.zeros((200, 200, 3), np.uint8)) == []
    assert mtcnn.detect(np.full((5, 7, 3), 128, np.uint8)) == []  # below one pyramid level
    assert mtcnn.scales(19, 400) == []
    with pytest.raises(ValueError, match="BGR uint8"):
        mtcnn.detect(np.zeros((50, 50), np.uint8))


def test_face_cut_by_the_border_is_padded_not_stretched(mtcnn, lfw_sample):
    """Cropping the left 30 % off a face keeps the remaining landmarks where they were."""
    name, image = lfw_sample[0]
    full = select_face(mtcnn.detect(image), image.shape)
    assert full is not None
    cut = int(full.box[0] + 0.3 * (full.box[2] - full.box[0]))
    part = np.ascontiguousarray(image[:, cut:])
    found = mtcnn.detect(part)
    assert found, name
    best = max(found, key=lambda d: d.score)
    shift = np.array([cut, 0], np.float32)
    right_eye_gap = np.linalg.norm(best.landmarks[1] + shift - full.landmarks[1])
    assert right_eye_gap < 0.25 * iod(full.landmarks), (best, full)


def test_nms_by_hand():
    # 1-based inclusive boxes: a 10×10 box; a shifted copy sharing 5×10 pixels (IoU 50/150,
    # min-overlap 0.5); a 4×4 box inside the first (IoU 0.16, min-overlap 1).
    boxes = np.array([[1, 1, 10, 10], [6, 1, 15, 10], [3, 3, 6, 6]], float)
    scores = np.array([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]
    assert nms(boxes, scores, 0.5).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.5, mode="min").tolist() == [0, 1]
    assert nms(boxes, scores[::-1].copy(), 0.3).tolist() == [2, 1]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []


def test_weights_errors_name_the_file(tmp_path, weights_dir):
    with pytest.raises(FileNotFoundError, match="lacks pnet.pt, rnet.pt, onet.pt"):
        MTCNN(tmp_path)
    for f in WEIGHT_FILES:
        (tmp_path / f).write_bytes((weights_dir / f).read_bytes())
    (tmp_path / "rnet.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="rnet.pt: not a loadable"):
        MTCNN(tmp_path)
    state = torch.load(weights_dir / "rnet.pt", weights_only=True)
    del state["dense4.bias"]
    torch.save(state, tmp_path / "rnet.pt")
    with pytest.raises(ValueError, match=r"rnet.pt: does not match MTCNN RNet.*dense4.bias"):
        MTCNN(tmp_path)
    torch.save({("module." + k): v for k, v in torch.load(
        weights_dir / "rnet.pt", weights_only=True).items()}, tmp_path / "rnet.pt")
    with pytest.warns(UserWarning, match="differ from facenet-pytorch"):
        det = MTCNN(tmp_path)
    assert det.settings() != MTCNN(weights_dir).settings()  # other bytes, other cache key


def test_suite_names_it(weights_dir, lfw_sample):
    det = create_detector("mtcnn", threads=1, score_threshold=0.95, min_face_size=40)
    assert det.thresholds == (0.6, 0.7, 0.95)
    s = det.settings()
    assert s["min_face_size"] == 40 and s["implementation"].startswith("facebench-mtcnn")
    with pytest.raises(ValueError, match="three values"):
        create_detector("mtcnn", thresholds=(0.6, 0.7))

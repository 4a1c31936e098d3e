"""Draw docs/robustness.jpg: one LFW face under every corruption of ``degrade:`` at each severity.

    python scripts/degrade_strip.py [IMAGE] [--out docs/robustness.jpg]

IMAGE defaults to the first image of LFW's pairs.txt under $FACEBENCH_SHARED (../shared). The
face is found by YuNet; each row is a corruption, each tile the face's neighbourhood of the
degraded source image (what the detector sees at ``stage: source``), first tile clean. Prints
the face's inter-ocular distance (LFW faces: about 40 px, so ``resolution: 64`` leaves them
as they are).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from facebench.faces.degrade import (  # noqa: E402
    Blur,
    FacePoints,
    Gamma,
    Jpeg,
    Level,
    MotionBlur,
    Noise,
    Occlusion,
    Resolution,
)
from facebench.faces.detect import create_detector, select_face  # noqa: E402
from facebench.faces.images import load_image  # noqa: E402

ROWS = [Resolution(levels=[64, 32, 16, 8]), Blur(levels=[1, 2, 4]),
        MotionBlur(levels=[5, 9, 15], angle=30), Jpeg(levels=[50, 20, 10]),
        Noise(levels=[10, 20, 40]), Gamma(levels=[2, 3, 4]),
        Occlusion(levels=["mask", "sunglasses"])]
TILE = 96
LABEL_W = 110


def _first_lfw_image(shared: Path) -> Path:
    lines = (shared / "data" / "lfw" / "pairs.txt").read_text().splitlines()
    name, number = lines[1].split()[:2]
    return shared / "data" / "lfw" / "images" / name / f"{name}_{int(number):04d}.jpg"


def _tile(image: np.ndarray, points: FacePoints) -> np.ndarray:
    """A square of 2.8 inter-ocular distances around the face, ``TILE`` px."""
    centre = (points.left_eye + points.right_eye + points.mouth.sum(axis=0)) / 4
    half = 1.4 * points.inter_ocular
    x0, y0 = (centre - half).astype(int)
    x1, y1 = (centre + half).astype(int)
    h, w = image.shape[:2]
    crop = image[max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)]
    return cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA)


def _label(text: str, width: int) -> np.ndarray:
    canvas = np.full((18, width, 3), 255, np.uint8)
    cv2.putText(canvas, text, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas


def strip(image: np.ndarray, points: FacePoints, digest: str) -> np.ndarray:
    """The grid: a row per corruption, clean first, then each level with its label."""
    cols = 1 + max(len(r.levels) for r in ROWS)
    rows = []
    for corruption in ROWS:
        tiles = [np.vstack([_label("clean", TILE), _tile(image, points)])]
        for value in corruption.levels:
            level = Level(corruption, value)
            tiles.append(np.vstack([_label(level.name, TILE),
                                    _tile(level.apply(image, digest, points), points)]))
        while len(tiles) < cols:
            tiles.append(np.full_like(tiles[0], 255))
        rows.append(np.hstack([np.full((TILE + 18, 4, 3), 255, np.uint8), *tiles]))
    return np.vstack(rows)


def main() -> int:
    shared = Path(os.environ.get("FACEBENCH_SHARED", ROOT.parent / "shared"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "robustness.jpg")
    args = ap.parse_args()
    path = args.image or _first_lfw_image(shared)
    image = load_image(path)
    det = create_detector("yunet", model=shared / "models" / "face_detection_yunet.onnx")
    face = select_face(det.detect(image), image.shape, "closest_to_center")
    if face is None:
        print(f"{path}: no face detected", file=sys.stderr)
        return 2
    points = FacePoints.from_landmarks(face.landmarks)
    grid = strip(image, points, "docs")
    ok, buf = cv2.imencode(".jpg", grid, [cv2.IMWRITE_JPEG_QUALITY, 75])
    assert ok
    args.out.write_bytes(buf.tobytes())
    print(f"{args.out}: {grid.shape[1]}x{grid.shape[0]}, {len(buf) // 1024} KB; face in "
          f"{path.name}: inter-ocular distance {points.inter_ocular:.1f} px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

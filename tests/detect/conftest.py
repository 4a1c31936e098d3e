"""Fixtures for detector tests: the real detectors (one thread each) and a fixed LFW sample."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facebench.faces.images import load_image

cv2.setNumThreads(1)
torch.set_num_threads(1)

RETINAFACE_FILE = "retinaface_mobilenet0.25.pth"
YUNET_FILE = "face_detection_yunet.onnx"


def pair_images(pairs_txt: Path) -> list[tuple[str, int]]:
    """Distinct ``(name, number)`` images of an LFW pairs file, in first-appearance order."""
    seen: dict[tuple[str, int], None] = {}
    for line in pairs_txt.read_text().splitlines()[1:]:
        parts = line.split()
        if len(parts) == 3:
            seen.update({(parts[0], int(parts[1])): None, (parts[0], int(parts[2])): None})
        elif len(parts) == 4:
            seen.update({(parts[0], int(parts[1])): None, (parts[2], int(parts[3])): None})
    return list(seen)


def lfw_path(lfw_dir: Path, name: str, number: int) -> Path:
    return lfw_dir / "images" / name / f"{name}_{number:04d}.jpg"


@pytest.fixture(scope="session")
def retinaface(models_dir: Path):
    from facebench.faces.detect.retinaface import RetinaFace

    return RetinaFace(models_dir / RETINAFACE_FILE, threads=1)


@pytest.fixture(scope="session")
def yunet(models_dir: Path):
    from facebench.faces.detect.yunet import YuNet

    return YuNet(models_dir / YUNET_FILE, threads=1)


@pytest.fixture(scope="session")
def lfw_sample(lfw_dir: Path) -> list[tuple[str, np.ndarray]]:
    """The first 10 distinct images named by pairs.txt (all 250×250 BGR)."""
    names = pair_images(lfw_dir / "pairs.txt")[:10]
    return [(f"{n}_{i:04d}", load_image(lfw_path(lfw_dir, n, i))) for n, i in names]


@pytest.fixture(scope="session")
def lfw_paths(lfw_dir: Path) -> list[Path]:
    """Files of the distinct images named by pairs.txt, in first-appearance order."""
    return [lfw_path(lfw_dir, n, i) for n, i in pair_images(lfw_dir / "pairs.txt")]

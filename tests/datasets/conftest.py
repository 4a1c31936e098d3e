"""Helpers for dataset tests: YuNet-aligned real LFW crops and small LFW identity folders."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from facebench.faces.align import align_face


@pytest.fixture(scope="session")
def align_lfw(models_dir: Path) -> Callable[[Path], np.ndarray]:
    """``path -> 112×112 BGR crop`` (YuNet, highest-score face, ArcFace template)."""
    from facebench.faces.detect import create_detector, select_face

    det = create_detector("yunet", model=models_dir / "face_detection_yunet.onnx")

    def align(path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert image is not None, path
        face = select_face(det.detect(image), image.shape)
        assert face is not None, f"no face in {path}"
        return align_face(image, face.landmarks, 112)

    return align


@pytest.fixture(scope="session")
def lfw_people(lfw_dir: Path) -> Callable[[int, int], list[str]]:
    """``(min_images, count) ->`` the first ``count`` LFW identities (sorted) with at least
    ``min_images`` images."""
    sizes = {d.name: len(list(d.glob("*.jpg"))) for d in sorted((lfw_dir / "images").iterdir())}

    def people(min_images: int, count: int) -> list[str]:
        names = [n for n, k in sizes.items() if k >= min_images][:count]
        assert len(names) == count
        return names

    return people


@pytest.fixture(scope="session")
def copy_identities(lfw_dir: Path) -> Callable[..., Path]:
    """``(dest, names, max_images=None) ->`` a folder ``dest/<name>/<file>`` of copies of real
    LFW images (copies, not symlinks: ``confine`` resolves links and refuses targets outside
    the image root)."""

    def link(dest: Path, names: list[str], max_images: int | None = None) -> Path:
        for name in names:
            (dest / name).mkdir(parents=True)
            for f in sorted((lfw_dir / "images" / name).glob("*.jpg"))[:max_images]:
                shutil.copyfile(f, dest / name / f.name)
        return dest

    return link

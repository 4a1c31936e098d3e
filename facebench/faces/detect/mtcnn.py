"""MTCNN (Zhang et al. 2016): an image pyramid through P-Net, then R-Net and O-Net on crops.

Weights: the Caffe-converted ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` state dicts that ship
inside the ``facenet-pytorch`` wheel. facebench only reads those files (``torch.load(...,
weights_only=True)``); it never imports ``facenet_pytorch``, whose import needs torchvision.
Install them with ``pip install --no-deps facenet-pytorch==2.6.0`` or point ``model`` at a
folder holding the three files.

Box arithmetic follows the trained models' 1-based MATLAB convention (a box's corners are
inclusive pixel indices counted from 1) until the end, where boxes become 0-based
``(x1, y1, x2, y2)`` edges and landmarks 0-based pixel coordinates. Crops that reach past the
image are zero-padded, as in the original cascade. NMS is a small numpy loop because the
cascade's last step needs the "intersection over the smaller box" overlap, which OpenCV's
``NMSBoxes`` does not offer.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch

from facebench.faces.detect._mtcnn_net import ONet, PNet, RNet
from facebench.faces.detect._weights import load_strict, read_strict
from facebench.faces.detect.base import (
    Detection,
    check_bgr_image,
    folder_problem,
    register_detector,
)

#: The three weight files, in cascade order.
WEIGHT_FILES = ("pnet.pt", "rnet.pt", "onet.pt")
#: sha256 of facenet-pytorch 2.6.0's files, against which this cascade was verified.
VERIFIED_SHA256 = {
    "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
#: Bump when a code change alters outputs, so cached detections are invalidated.
IMPLEMENTATION = "facebench-mtcnn/1"
#: IoU thresholds: within one pyramid scale, across scales, after R-Net, after O-Net ("min").
NMS_THRESHOLDS = (0.5, 0.7, 0.7, 0.7)
INSTALL_HINT = (
    "install the weights with `pip install --no-deps facenet-pytorch==2.6.0` (facebench reads "
    "only its pnet.pt/rnet.pt/onet.pt) or set the detector's model to a folder holding them"
)


def default_weights_dir() -> Path | None:
    """``facenet_pytorch/data`` of an installed facenet-pytorch, found without importing it."""
    try:
        spec = importlib.util.find_spec("facenet_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if all((folder / f).is_file() for f in WEIGHT_FILES) else None


def weights_folder(model: Path | None) -> Path:
    """The folder holding the three weight files: ``model`` (a folder, or a file in it), else
    the installed facenet-pytorch's; ``FileNotFoundError`` saying what is missing."""
    folder = model if model is not None else default_weights_dir()
    if folder is None:
        raise FileNotFoundError(f"MTCNN weights not found; {INSTALL_HINT}")
    folder, problem = folder_problem(folder, WEIGHT_FILES, INSTALL_HINT)
    if problem is not None:
        raise FileNotFoundError(f"MTCNN weights: {problem}")
    return folder


def _what(net: torch.nn.Module) -> str:
    return f"MTCNN {type(net).__name__}"


def check_model_folder(model: Path | None) -> str | None:
    """Why ``model`` (``None``: the default) is not a folder of the three MTCNN state dicts
    (read with ``weights_only=True``, keys and shapes checked; they are small), or ``None``."""
    try:
        folder = weights_folder(model)
        for fname, net in zip(WEIGHT_FILES, (PNet(), RNet(), ONet()), strict=True):
            read_strict(folder / fname, net, _what(net), INSTALL_HINT)
    except (FileNotFoundError, ValueError) as exc:
        return str(exc).removeprefix("MTCNN weights: ")
    return None


def nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    mode: Literal["union", "min"] = "union",
) -> np.ndarray:
    """Greedy NMS on 1-based inclusive boxes; indices kept, by descending score.

    ``union`` is IoU; ``min`` divides the intersection by the smaller box's area.
    """
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = iw * ih
        denom = np.minimum(area[i], area[rest]) if mode == "min" else area[i] + area[rest] - inter
        order = rest[inter / denom <= threshold]
    return np.asarray(keep, dtype=np.int64)


def _square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square about its centre (the cascade's ``rerec``)."""
    out = boxes.copy()
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(w, h)
    out[:, 0] = boxes[:, 0] + (w - side) / 2
    out[:, 1] = boxes[:, 1] + (h - side) / 2
    out[:, 2] = out[:, 0] + side
    out[:, 3] = out[:, 1] + side
    return out


def _calibrate(boxes: np.ndarray, reg: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Apply the regressed corner offsets (fractions of the box size)."""
    d = 1.0 if plus_one else 0.0
    wh = np.stack([boxes[:, 2] - boxes[:, 0] + d, boxes[:, 3] - boxes[:, 1] + d], axis=1)
    return boxes + reg[:, :4] * np.tile(wh, 2)


@register_detector("mtcnn", check_model=check_model_folder, folder_files=WEIGHT_FILES)
class MTCNN:
    """MTCNN with facenet-pytorch's converted weights.

    ``min_face_size`` (pixels) sets the pyramid's first scale 12/min_face_size, ``factor`` its
    step. ``thresholds`` are the face-probability cut-offs of P-, R- and O-Net; a suite's
    ``score_threshold`` replaces the last. ``model`` is the folder holding the three weight
    files (default: the installed facenet-pytorch's). ``threads`` sets torch's intra-op
    threads (process-wide); ``None`` leaves it alone.
    """

    name = "mtcnn"
    landmarks_scheme = "arcface5"

    def __init__(
        self,
        model: str | Path | None = None,
        min_face_size: int = 20,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        score_threshold: float | None = None,
        threads: int | None = 1,
        device: str = "cpu",
    ) -> None:
        thresholds = [float(t) for t in thresholds]
        if score_threshold is not None:
            thresholds[2] = float(score_threshold)
        if len(thresholds) != 3 or not all(0.0 <= t <= 1.0 for t in thresholds):
            raise ValueError(f"MTCNN thresholds must be three values in [0, 1], got {thresholds}")
        if min_face_size < 12 or not 0.0 < factor < 1.0:
            raise ValueError("MTCNN needs min_face_size >= 12 and 0 < factor < 1")
        self.folder = weights_folder(Path(model) if model is not None else None)
        self._nets = (PNet(), RNet(), ONet())
        self.sha256 = {fname: load_strict(self.folder / fname, net, _what(net), INSTALL_HINT)
                       for fname, net in zip(WEIGHT_FILES, self._nets, strict=True)}
        if threads is not None:
            torch.set_num_threads(threads)
        self.min_face_size = int(min_face_size)
        self.thresholds = tuple(thresholds)
        self.factor = float(factor)
        self.device = torch.device(device)
        for net in self._nets:
            net.eval().to(self.device)
        if self.sha256 != VERIFIED_SHA256:
            warnings.warn(
                f"{self.folder}: MTCNN weights differ from facenet-pytorch 2.6.0's; "
                "check landmarks before use",
                stacklevel=2,
            )

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (for result records and cache keys)."""
        digest = hashlib.sha256("".join(self.sha256[f] for f in WEIGHT_FILES).encode())
        return {
            "implementation": IMPLEMENTATION,
            "weights_sha256": digest.hexdigest()[:16],
            "min_face_size": self.min_face_size,
            "thresholds": list(self.thresholds),
            "factor": self.factor,
            "nms_thresholds": list(NMS_THRESHOLDS),
        }

    def scales(self, h: int, w: int) -> list[float]:
        """The pyramid: scale factors until the shorter side drops below 12 px."""
        out, s = [], 12.0 / self.min_face_size
        side = min(h, w) * s
        while side >= 12:
            out.append(s)
            s *= self.factor
            side *= self.factor
        return out

    @torch.inference_mode()
    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in one BGR uint8 image, in its coordinates, sorted by descending score."""
        check_bgr_image(image_bgr, "MTCNN")
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        boxes = self._propose(rgb)
        if len(boxes):
            boxes = self._refine(rgb, boxes)
        if not len(boxes):
            return []
        boxes, points = self._output(rgb, boxes)
        return [
            Detection(
                box=np.array([b[0] - 1, b[1] - 1, b[2], b[3]], dtype=np.float32),
                score=float(b[4]),
                landmarks=p.astype(np.float32),
            )
            for b, p in zip(boxes, points, strict=True)
        ]

    def _tensor(self, images: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB → normalized (N, 3, H, W) float on the device."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        return x.permute(0, 3, 1, 2).float().sub_(127.5).mul_(1.0 / 128.0)

    def _propose(self, rgb: np.ndarray) -> np.ndarray:
        """P-Net over the pyramid → squared candidate boxes ``(N, 5)``: x1, y1, x2, y2, score."""
        h, w = rgb.shape[:2]
        found = []
        for s in self.scales(h, w):
            small = cv2.resize(rgb, (int(w * s + 1), int(h * s + 1)), interpolation=cv2.INTER_AREA)
            reg, prob = self._nets[0](self._tensor(small[None]))
            p = prob[0, 1].cpu().numpy()
            ys, xs = np.nonzero(p >= self.thresholds[0])
            if not ys.size:
                continue
            # Each output cell sees a 12×12 window at stride 2 of the scaled image.
            cand = np.stack(
                [
                    np.floor((2 * xs + 1) / s),
                    np.floor((2 * ys + 1) / s),
                    np.floor((2 * xs + 12) / s),
                    np.floor((2 * ys + 12) / s),
                    p[ys, xs],
                ],
                axis=1,
            )
            cand = np.concatenate([cand, reg[0][:, ys, xs].cpu().numpy().T], axis=1)
            found.append(cand[nms(cand, cand[:, 4], NMS_THRESHOLDS[0])])
        if not found:
            return np.zeros((0, 5))
        cand = np.concatenate(found)
        cand = cand[nms(cand, cand[:, 4], NMS_THRESHOLDS[1])]
        boxes = _calibrate(cand[:, :4], cand[:, 5:9], plus_one=False)
        return np.concatenate([_square(boxes), cand[:, 4:5]], axis=1)

    def _refine(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """R-Net on 24×24 crops: keep, suppress, calibrate, square."""
        crops, boxes = _crops(rgb, boxes, 24)
        if not len(boxes):
            return boxes
        reg, prob = self._nets[1](self._tensor(crops))
        score = prob[:, 1].cpu().numpy()
        keep = score > self.thresholds[1]
        boxes, reg = boxes[keep], reg.cpu().numpy()[keep]
        boxes[:, 4] = score[keep]
        pick = nms(boxes, boxes[:, 4], NMS_THRESHOLDS[2])
        boxes, reg = boxes[pick], reg[pick]
        return np.concatenate([_square(_calibrate(boxes[:, :4], reg)), boxes[:, 4:5]], axis=1)

    def _output(self, rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """O-Net on 48×48 crops → final boxes ``(N, 5)`` and landmarks ``(N, 5, 2)``."""
        crops, boxes = _crops(rgb, boxes, 48)
        if not len(boxes):
            return boxes, np.zeros((0, 5, 2))
        reg, marks, prob = (t.cpu().numpy() for t in self._nets[2](self._tensor(crops)))
        keep = prob[:, 1] > self.thresholds[2]
        boxes, reg, marks = boxes[keep], reg[keep], marks[keep]
        boxes[:, 4] = prob[keep, 1]
        size = np.stack([boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1], axis=1)
        # Landmarks are fractions of the (inclusive) box; its first pixel is 0-based x1 - 1.
        points = np.stack([marks[:, :5], marks[:, 5:]], axis=2) * size[:, None, :]
        points += boxes[:, None, :2] - 1
        boxes[:, :4] = _calibrate(boxes[:, :4], reg)
        pick = nms(boxes, boxes[:, 4], NMS_THRESHOLDS[3], mode="min")
        return boxes[pick], points[pick]


def _crops(rgb: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded crops of the (truncated, inclusive, 1-based) boxes resized to size×size;
    boxes that are empty after truncation are dropped (returned boxes match the crops)."""
    h, w = rgb.shape[:2]
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    out, kept = [], []
    for i, (x1, y1, x2, y2) in enumerate(corners):
        bw, bh = x2 - x1 + 1, y2 - y1 + 1
        if bw < 1 or bh < 1:
            continue
        patch = np.zeros((bh, bw, 3), dtype=np.uint8)
        sx1, sy1 = max(x1 - 1, 0), max(y1 - 1, 0)  # source window, 0-based, clipped
        sx2, sy2 = min(x2, w), min(y2, h)
        if sx2 > sx1 and sy2 > sy1:
            dx, dy = sx1 - (x1 - 1), sy1 - (y1 - 1)
            patch[dy : dy + sy2 - sy1, dx : dx + sx2 - sx1] = rgb[sy1:sy2, sx1:sx2]
        out.append(cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA))
        kept.append(i)
    if not kept:
        return np.zeros((0, size, size, 3), np.uint8), boxes[:0]
    return np.stack(out), boxes[kept].copy()

"""RetinaFace (MobileNet-0.25) in PyTorch: boxes, scores and five landmarks.

Input is BGR minus the per-channel mean (104, 117, 123) at the image's own size (optionally
downscaled to ``max_size``). Network: :mod:`._retinaface_net` (ReLU variant); priors and decoding:
:mod:`._priors` (anchors 10/20, 32/64, 128/256 at strides 8/16/32, variances 0.1/0.2): both as
the shared weights were trained, which differs from shared/README.md (see those modules). NMS is
``cv2.dnn.NMSBoxes``. Landmarks come out in :mod:`facebench.faces.detect.base` order (left eye,
right eye, nose, left and right mouth corner, "left" as seen in the image).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from facebench.faces.detect._priors import (
    MIN_SIZES,
    STEPS,
    VARIANCE,
    decode_boxes,
    decode_landmarks,
    priors_for,
)
from facebench.faces.detect._retinaface_net import RetinaFaceNet
from facebench.faces.detect._weights import load_strict, read_strict
from facebench.faces.detect.base import (
    Detection,
    check_bgr_image,
    file_problem,
    register_detector,
)

#: BGR channel means subtracted from the input (the training preprocessing).
MEAN_BGR = (104.0, 117.0, 123.0)
#: Default face-probability threshold (see :class:`RetinaFace`).
DEFAULT_SCORE_THRESHOLD = 0.9
#: Candidates kept by score before NMS (the reference evaluation setting).
PRE_NMS_TOP_K = 5000
#: Most pixels in one batched forward (16 VGA frames), bounding activation memory.
MAX_BATCH_PIXELS = 16 * 640 * 480
#: sha256 of the weights this configuration was verified against (shared/models). Other files
#: with the same keys (e.g. Pytorch_Retinaface's LeakyReLU model) load but decode wrongly.
VERIFIED_SHA256 = "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1"
#: Bump when a code change alters outputs, so cached detections are invalidated.
IMPLEMENTATION = "facebench-retinaface-mnet025-relu/1"


def load_weights(path: str | Path, model: torch.nn.Module) -> str:
    """Strictly load a RetinaFace state dict into ``model``; return the file's sha256 hex.

    Uses ``torch.load(weights_only=True)``; strips ``module.`` (DataParallel) prefixes. Any
    missing, unexpected or wrongly shaped key raises ``ValueError`` naming the keys and file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"RetinaFace weights not found: {path} (expected retinaface_mobilenet0.25.pth; "
            "pass weights=<path> or set FACEBENCH_SHARED)"
        )
    return load_strict(path, model, WHAT, HINT)


WHAT = "RetinaFace MobileNet-0.25"
HINT = ("use shared/models/retinaface_mobilenet0.25.pth (keys body.*, fpn.*, ssh1..3.*, "
        "ClassHead/BboxHead/LandmarkHead.*)")
NEEDS = ("RetinaFace needs its PyTorch weights (a torch.save file such as "
         "retinaface_mobilenet0.25.pth)")


def check_model_file(model: Path | None) -> str | None:
    """Why ``model`` is not RetinaFace MobileNet-0.25 weights, or ``None``: the state dict is
    read with ``weights_only=True`` and its keys and shapes checked, as the detector loads it."""
    if model is None:
        return None  # no default file: the suite schema requires 'model'
    problem = file_problem(model, "torch", NEEDS)
    if problem is not None:
        return problem
    try:
        read_strict(model, RetinaFaceNet(), WHAT, HINT)
    except ValueError as exc:
        return str(exc)
    return None


def fuse_conv_bn(model: torch.nn.Module) -> torch.nn.Module:
    """Fold each eval-mode BatchNorm into the conv before it, in place (with channels_last
    memory this about halves CPU time per image)."""
    for seq in model.modules():
        if isinstance(seq, torch.nn.Sequential):
            for i in range(len(seq) - 1):
                conv, bn = seq[i], seq[i + 1]
                if isinstance(conv, torch.nn.Conv2d) and isinstance(bn, torch.nn.BatchNorm2d):
                    seq[i] = fuse_conv_bn_eval(conv, bn)
                    seq[i + 1] = torch.nn.Identity()
    return model


@register_detector("retinaface", check_model=check_model_file)
class RetinaFace:
    """RetinaFace with a MobileNet-0.25 backbone.

    ``score_threshold`` (face probability) defaults to 0.9: every one of LFW's 7,701 images has
    a face scoring >= 0.9 (typically > 0.99), while uniform-noise images reach 0.5-0.77 (so the
    softmax boundary 0.5 would report faces in noise) and black or white frames stay < 0.02.
    The reference repos' 0.02 is for AP sweeps, not for picking one face to align. ``top_k``
    caps the faces kept after NMS. ``max_size`` downscales images whose longer side exceeds it
    (results are mapped back to original coordinates). ``threads`` sets torch's intra-op threads
    (process-wide); ``None`` leaves it alone. ``batch_size`` bounds one forward in
    :meth:`detect_batch`. ``model`` is an alias of ``weights`` (suites name every detector's
    file ``model``).
    """

    name = "retinaface"
    landmarks_scheme = "arcface5"

    def __init__(
        self,
        weights: str | Path | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        nms_threshold: float = 0.4,
        top_k: int = 750,
        max_size: int | None = None,
        threads: int | None = 1,
        device: str = "cpu",
        batch_size: int = 16,
        *,
        model: str | Path | None = None,
    ) -> None:
        if (weights is None) == (model is None):
            raise ValueError("RetinaFace needs its weights file: pass weights=<path> (or model=)")
        if not 0.0 <= score_threshold <= 1.0 or not 0.0 <= nms_threshold <= 1.0:
            raise ValueError("score_threshold and nms_threshold must lie in [0, 1]")
        if top_k < 1 or batch_size < 1 or (max_size is not None and max_size < 32):
            raise ValueError("top_k and batch_size must be >= 1 and max_size >= 32 (or None)")
        if threads is not None:
            torch.set_num_threads(threads)
        self.weights = Path(weights if weights is not None else model)  # type: ignore[arg-type]
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self.max_size = max_size
        self.batch_size = batch_size
        self.device = torch.device(device)
        net = RetinaFaceNet()
        self.sha256 = load_weights(self.weights, net)
        if self.sha256 != VERIFIED_SHA256:
            warnings.warn(
                f"{self.weights}: sha256 {self.sha256[:16]} is not the verified "
                f"{VERIFIED_SHA256[:16]}; this RetinaFace assumes ReLU activations and anchors "
                f"{MIN_SIZES} (Face-Detector-1MB training config): check landmarks before use",
                stacklevel=2,
            )
        self._net = fuse_conv_bn(net.eval()).to(self.device, memory_format=torch.channels_last)
        self._mean = torch.tensor(MEAN_BGR, dtype=torch.float32, device=self.device)

    def settings(self) -> dict[str, Any]:
        """Everything that changes the output (for result records and cache keys)."""
        return {
            "implementation": IMPLEMENTATION,
            "weights": self.weights.name,
            "weights_sha256": self.sha256[:16],
            "score_threshold": self.score_threshold,
            "nms_threshold": self.nms_threshold,
            "top_k": self.top_k,
            "pre_nms_top_k": PRE_NMS_TOP_K,
            "max_size": self.max_size,
            "mean_bgr": list(MEAN_BGR),
            "min_sizes": [list(s) for s in MIN_SIZES],
            "steps": list(STEPS),
            "variance": list(VARIANCE),
        }

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """Faces in one BGR uint8 image, in its coordinates, sorted by descending score."""
        return self.detect_batch([image_bgr])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Faces in many images; same-size inputs share one forward pass per ``batch_size``.

        Images are grouped by (resized) shape rather than padded, so each result equals
        :meth:`detect` on that image alone up to float rounding (padding would move detections
        near the padded edges). A forward holds at most ``batch_size`` images and, for large
        images, at most :data:`MAX_BATCH_PIXELS` pixels.
        """
        prepared = [self._prepare(im) for im in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (small, _) in enumerate(prepared):
            groups.setdefault(small.shape[:2], []).append(i)
        results: list[list[Detection]] = [[] for _ in images]
        for (h, w), idx in groups.items():
            priors = priors_for(h, w)
            step = max(1, min(self.batch_size, MAX_BATCH_PIXELS // (h * w)))
            for start in range(0, len(idx), step):
                chunk = idx[start : start + step]
                loc, conf, lms = self._forward(np.stack([prepared[i][0] for i in chunk]))
                for j, i in enumerate(chunk):
                    scale = prepared[i][1]
                    results[i] = self._postprocess(loc[j], conf[j], lms[j], priors, w, h, scale)
        return results

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
        """Downscale to ``max_size`` if needed; return image and (x, y) scale factors."""
        check_bgr_image(image, "RetinaFace")
        h, w = image.shape[:2]
        if self.max_size is None or max(h, w) <= self.max_size:
            return image, (1.0, 1.0)
        f = self.max_size / max(h, w)
        nw, nh = max(1, round(w * f)), max(1, round(h * f))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        return small, (nw / w, nh / h)

    @torch.inference_mode()
    def _forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # (B, H, W, 3) memory viewed as NCHW is exactly channels_last: no copy needed.
        x = torch.from_numpy(batch).to(self.device).float().sub_(self._mean)
        loc, conf, lms = self._net(x.permute(0, 3, 1, 2))
        return loc.cpu().numpy(), conf.cpu().numpy(), lms.cpu().numpy()

    def _postprocess(
        self,
        loc: np.ndarray,
        conf: np.ndarray,
        lms: np.ndarray,
        priors: np.ndarray,
        w: int,
        h: int,
        scale: tuple[float, float],
    ) -> list[Detection]:
        keep = np.flatnonzero(conf >= self.score_threshold)
        if keep.size == 0:
            return []
        keep = keep[np.argsort(-conf[keep], kind="stable")[:PRE_NMS_TOP_K]]
        to_px = np.array([w / scale[0], h / scale[1]], dtype=np.float32)
        boxes = decode_boxes(loc[keep], priors[keep]) * np.tile(to_px, 2)
        points = decode_landmarks(lms[keep], priors[keep]) * to_px
        scores = conf[keep]
        xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        # OpenCV's own top_k caps candidates *before* NMS; ours caps the faces kept after it.
        chosen = cv2.dnn.NMSBoxes(
            xywh.astype(np.float64).tolist(),
            scores.astype(np.float64).tolist(),
            self.score_threshold,
            self.nms_threshold,
        )
        chosen = np.asarray(chosen, dtype=np.int64).ravel()
        order = sorted(chosen, key=lambda i: -scores[i])[: self.top_k]
        return [
            Detection(
                box=boxes[i].astype(np.float32),
                score=float(scores[i]),
                landmarks=points[i].astype(np.float32),
            )
            for i in order
        ]

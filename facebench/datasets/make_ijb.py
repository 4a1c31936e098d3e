"""Write a small IJB-format dataset (docs/ijb.md) from LFW identities: ``facebench make-ijb``.

Seeded and deterministic: the same LFW folder, settings and detector give the same bytes. For
each chosen subject, a detector finds the face closest to the image centre; its box grown
:data:`LOOSE_SCALE` times around its centre (clipped to the image) is saved as a loose crop
(JPEG quality :data:`JPEG_QUALITY`) with the five landmarks in crop pixels and the detector
score. Images without a face, or whose landmarks fall outside the crop, are left out (listed in
``manifest.json``); a subject keeps going only with at least 3 faces.

Templates: per subject a gallery template (its first 2 faces) and probe templates of 1-3 faces
(seeded sizes) from the rest; a template's faces form media of up to 2 consecutive faces. 1:1:
every genuine template pair within a subject and a seeded draw of impostor template pairs.
1:N: the subjects split in two halves, galleries G1 and G2 (their gallery templates), and
``probe_mixed`` = every probe template (mated in one gallery, non-mated in the other).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facebench.datasets.identity import IMAGE_EXTENSIONS
from facebench.datasets.pairs import DatasetError
from facebench.faces.detect import create_detector, select_face
from facebench.faces.images import load_image
from facebench.io import atomic_write_json, read_json, sha256_file

__all__ = ["DETECTORS", "JPEG_QUALITY", "LOOSE_SCALE", "PREFIX", "make_ijb_from_lfw"]

PREFIX = "lfwijb"
#: The detection box is grown this many times around its centre for the loose crop.
LOOSE_SCALE = 1.6
JPEG_QUALITY = 95
DETECTORS = ("yunet", "retinaface", "mtcnn")
GENERATOR = "facebench make-ijb"
#: Faces a subject needs: a 2-face gallery template and at least one probe face.
_MIN_FACES = 3


@dataclass(frozen=True)
class _Face:
    source: str  # path relative to the LFW folder
    jpeg: bytes
    landmarks: np.ndarray  # (5, 2) crop pixels
    score: float


def _model_sha256(path: Path | None) -> str | None:
    if path is None:
        return None
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(f"{f.name}\t{sha256_file(f)}\n".encode())
        return digest.hexdigest()
    return sha256_file(path)


def _identities(lfw_images: Path, min_images: int) -> list[tuple[str, list[Path]]]:
    """``(name, sorted images)`` of every identity folder with at least ``min_images`` images."""
    if not lfw_images.is_dir():
        raise DatasetError(f"{lfw_images}: not a folder; give LFW's image folder "
                           "(<Name>/<Name>_<NNNN>.jpg)")
    out = []
    for sub in sorted(p for p in lfw_images.iterdir() if p.is_dir()
                      and not p.name.startswith(".")):
        files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS
                       and not f.name.startswith(".") and f.is_file())
        if len(files) >= min_images:
            out.append((sub.name, files))
    return out


def _loose_crop(image: np.ndarray, box: np.ndarray, landmarks: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | str:
    """(crop, landmarks in crop pixels), or why the face cannot be used."""
    h, w = image.shape[:2]
    cx, cy = (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0
    half_w, half_h = LOOSE_SCALE * (box[2] - box[0]) / 2.0, LOOSE_SCALE * (box[3] - box[1]) / 2.0
    x0, y0 = max(0, math.floor(cx - half_w)), max(0, math.floor(cy - half_h))
    x1, y1 = min(w, math.ceil(cx + half_w)), min(h, math.ceil(cy + half_h))
    if x1 - x0 < 16 or y1 - y0 < 16:
        return "face box too small for a loose crop"
    points = landmarks.astype(np.float64) - np.array([x0, y0], dtype=np.float64)
    if not ((points >= 0).all() and (points[:, 0] < x1 - x0).all()
            and (points[:, 1] < y1 - y0).all()):
        return "landmarks outside the loose crop"
    return image[y0:y1, x0:x1], points


def _faces(det: Any, lfw_images: Path, files: list[Path],
           skipped: list[dict[str, str]]) -> list[_Face]:
    out = []
    for f in files:
        rel = f.relative_to(lfw_images).as_posix()
        image = load_image(f)
        face = select_face(det.detect(image), image.shape, "closest_to_center")
        if face is None:
            skipped.append({"image": rel, "reason": "no face found"})
            continue
        crop = _loose_crop(image, face.box, face.landmarks)
        if isinstance(crop, str):
            skipped.append({"image": rel, "reason": crop})
            continue
        pixels, points = crop
        ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise DatasetError(f"{f}: the loose crop could not be encoded as JPEG")
        out.append(_Face(rel, jpeg.tobytes(), points, float(face.score)))
    return out


def _chunks(items: list[_Face], sizes: list[int]) -> list[list[_Face]]:
    out, start = [], 0
    for k in sizes:
        out.append(items[start:start + k])
        start += k
    return out


def _csv(rows: list[tuple[int, int, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["TEMPLATE_ID", "SUBJECT_ID", "FILENAME"])
    w.writerows(rows)
    return buf.getvalue()


def _inventory(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {bytes, sha256}}`` of the files make-ijb wrote into ``folder`` (every
    file but ``manifest.json``, which lists them)."""
    files = sorted(f for f in folder.rglob("*") if f.is_file())
    return {rel: {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
            for f in files if (rel := f.relative_to(folder).as_posix()) != "manifest.json"}


def _not_ours(out: Path) -> str | None:
    """Why ``out`` (an existing folder) is not exactly an earlier make-ijb output, or ``None``.

    Ours means: a ``manifest.json`` of make-ijb that lists every other file with its size and
    sha256, and nothing else there (no other file, folder or link; listed files may be
    missing). Only such a folder is ever replaced, so a copied manifest deletes nothing."""
    manifest = out / "manifest.json"
    try:
        data = read_json(manifest) if manifest.is_file() and not manifest.is_symlink() else None
    except (OSError, ValueError):
        data = None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or data.get("generator") != GENERATOR:
        return "it has no make-ijb manifest.json listing its files"
    for entry in sorted(out.rglob("*")):
        rel = entry.relative_to(out).as_posix()
        if entry.is_symlink():
            return f"{rel} is a symbolic link"
        if entry.is_dir():
            if rel not in ("loose_crop", "meta"):
                return f"{rel}/ is not a folder make-ijb writes"
            continue
        if rel == "manifest.json":
            continue
        want = files.get(rel)
        if not isinstance(want, dict) or not entry.is_file():
            return f"{rel} is not listed in its manifest.json"
        if (entry.stat().st_size != want.get("bytes")
                or sha256_file(entry) != want.get("sha256")):
            return f"{rel} changed since make-ijb wrote it"
    return None


def _check_out(out: Path) -> None:
    """``out`` must be absent, an empty folder, or exactly an earlier make-ijb output
    (:func:`_not_ours`; replaced when the new one is complete)."""
    if not out.exists():
        return
    if not out.is_dir() or out.is_symlink():
        raise DatasetError(f"{out}: exists and is not a folder; choose a new output folder")
    if not any(out.iterdir()):
        return
    why = _not_ours(out)
    if why is not None:
        raise DatasetError(f"{out}: folder is not empty and is not an earlier make-ijb output "
                           f"({why}); make-ijb replaces only its own output, so nothing there "
                           "was touched: choose a new or empty output folder")


def _sibling(out: Path, tag: str) -> Path:
    """A new, unused name beside ``out`` (``.NAME.<random>.TAG``): never one that exists."""
    while True:
        path = out.parent / f".{out.name}.{secrets.token_hex(4)}.{tag}"
        if not path.exists() and not path.is_symlink():
            return path


def _stage(out: Path) -> Path:
    """A new staging folder beside ``out`` with loose_crop/ and meta/."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = _sibling(out, "partial")
    stage.mkdir()
    (stage / "loose_crop").mkdir()
    (stage / "meta").mkdir()
    return stage


def _publish(stage: Path, out: Path) -> None:
    """Put ``stage`` at ``out``; an earlier output there is checked again (ours, unchanged)
    and only then removed."""
    _check_out(out)
    old = None
    if out.exists():
        old = _sibling(out, "old")
        out.rename(old)
    stage.rename(out)
    if old is not None:
        shutil.rmtree(old)


@dataclass
class _Layout:
    """Faces, templates and media numbered in output order (subjects by name)."""

    face_lines: list[str]
    lmk_lines: list[str]
    sources: list[str]
    subject_of: np.ndarray  # subject id of template t at index t - 1
    gallery_of: dict[int, int]  # subject id → its gallery template
    probes: list[int]
    template_files: dict[int, list[str]]
    media: int


def _layout(stage: Path, chosen: dict[str, list[_Face]], rng: np.random.Generator) -> _Layout:
    """Number faces (1.jpg, ...), templates and media; write the loose crops."""
    out = _Layout([], [], [], np.zeros(0, np.int64), {}, [], {}, 0)
    subject_of: list[int] = []
    for sid, name in enumerate(sorted(chosen), start=1):
        faces = chosen[name]
        sizes, rest = [2], len(faces) - 2
        while rest > 0:
            sizes.append(min(rest, int(rng.integers(1, 4))))
            rest -= sizes[-1]
        for t, members in enumerate(_chunks(faces, sizes)):
            subject_of.append(sid)
            tid = len(subject_of)
            if t == 0:
                out.gallery_of[sid] = tid
            else:
                out.probes.append(tid)
            for m, face in enumerate(members):
                if m % 2 == 0:  # media of up to 2 consecutive faces
                    out.media += 1
                file = f"{len(out.face_lines) + 1}.jpg"
                (stage / "loose_crop" / file).write_bytes(face.jpeg)
                out.template_files.setdefault(tid, []).append(file)
                out.face_lines.append(f"{file} {tid} {out.media}\n")
                points = " ".join(f"{v:.3f}" for v in face.landmarks.reshape(-1))
                out.lmk_lines.append(f"{file} {points} {face.score:.6f}\n")
                out.sources.append(f"{face.source}\t{hashlib.sha256(face.jpeg).hexdigest()}\n")
    out.subject_of = np.asarray(subject_of, dtype=np.int64)
    return out


def _pairs(subject_of: np.ndarray, rng: np.random.Generator,
           impostors_per_genuine: int) -> tuple[list[tuple[int, int, int]], int, int]:
    """(sorted ``(t1, t2, label)`` lines, genuine count, impostor count): every same-subject
    template pair, and impostor pairs drawn uniformly without replacement."""
    a, b = np.triu_indices(subject_of.size, 1)
    same = subject_of[a] == subject_of[b]
    cross = np.flatnonzero(~same)
    n_gen = int(same.sum())
    n_imp = min(impostors_per_genuine * n_gen, int(cross.size))
    keep = np.sort(np.concatenate([np.flatnonzero(same),
                                   rng.choice(cross, size=n_imp, replace=False)]))
    lines = [(int(x) + 1, int(y) + 1, int(g)) for x, y, g in zip(a[keep], b[keep], same[keep],
                                                               strict=True)]
    return lines, n_gen, n_imp


def make_ijb_from_lfw(lfw_images: str | Path, out: str | Path, *, detector: str = "yunet",
                      detector_model: str | Path | None = None, subjects: int = 40,
                      min_images: int = 4, seed: int = 0, impostors_per_genuine: int = 10,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write an IJB-format dataset (prefix :data:`PREFIX`) from ``subjects`` LFW identities
    with at least ``min_images`` images each, picked with ``seed``; returns the manifest
    (also written as ``out/manifest.json``). ``progress(done, subjects)`` after each subject.
    Impostor template pairs: ``impostors_per_genuine`` × the genuine count, at most all."""
    lfw_images, out = Path(lfw_images), Path(out).resolve()
    model = Path(detector_model) if detector_model is not None else None
    if detector not in DETECTORS:
        raise ValueError(f"detector {detector!r}: choose one of {', '.join(DETECTORS)}")
    if subjects < 2 or min_images < _MIN_FACES or impostors_per_genuine < 1:
        raise ValueError(f"need subjects >= 2 (got {subjects}), min_images >= {_MIN_FACES} (got "
                         f"{min_images}: a 2-image gallery template and a probe) and "
                         f"impostors_per_genuine >= 1 (got {impostors_per_genuine})")
    if model is not None and not model.exists():
        raise DatasetError(f"{model}: detector model not found")
    if detector == "yunet" and model is None:
        raise ValueError("YuNet needs its ONNX file: pass --detector-model "
                         "face_detection_yunet.onnx")
    _check_out(out)
    eligible = _identities(lfw_images, min_images)
    if len(eligible) < subjects:
        raise DatasetError(f"{lfw_images}: {len(eligible)} identities have >= {min_images} "
                           f"images, {subjects} asked for; lower --subjects or --min-images")
    det = create_detector(detector, **({"model": model} if model is not None else {}))
    rng = np.random.default_rng(seed)

    skipped_images: list[dict[str, str]] = []
    skipped_subjects: list[dict[str, str]] = []
    chosen: dict[str, list[_Face]] = {}
    for k in rng.permutation(len(eligible)).tolist():
        name, files = eligible[k]
        faces = _faces(det, lfw_images, files, skipped_images)
        if len(faces) < _MIN_FACES:
            skipped_subjects.append({"name": name, "reason": f"{len(faces)} face(s) detected, "
                                     f"needs {_MIN_FACES}"})
            continue
        chosen[name] = faces
        if progress is not None:
            progress(len(chosen), subjects)
        if len(chosen) == subjects:
            break
    if len(chosen) < subjects:
        raise DatasetError(f"{lfw_images}: only {len(chosen)} identities have >= {_MIN_FACES} "
                           f"detected faces ({subjects} asked for); lower --subjects")

    stage = _stage(out)
    try:
        manifest = _write(stage, chosen, rng, impostors_per_genuine)
        manifest.update({
            "source": str(lfw_images), "seed": seed, "subjects_requested": subjects,
            "min_images": min_images, "impostors_per_genuine": impostors_per_genuine,
            "detector": {"name": detector, "select": "closest_to_center",
                         "model": model.name if model is not None else None,
                         "model_sha256": _model_sha256(model), "settings": det.settings()},
            "loose_crop": {"scale": LOOSE_SCALE, "jpeg_quality": JPEG_QUALITY},
            "skipped_images": skipped_images, "skipped_subjects": skipped_subjects,
        })
        manifest["files"] = _inventory(stage)
        atomic_write_json(stage / "manifest.json", manifest)
        _publish(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage)
    return manifest


def _write(stage: Path, chosen: dict[str, list[_Face]], rng: np.random.Generator,
           impostors_per_genuine: int) -> dict[str, Any]:
    """Write the crops and meta files into ``stage``; the manifest's dataset part."""
    lay = _layout(stage, chosen, rng)
    pairs, n_gen, n_imp = _pairs(lay.subject_of, rng, impostors_per_genuine)
    order = rng.permutation(np.arange(1, len(chosen) + 1))
    half = (order.size + 1) // 2
    split = {"G1": sorted(order[:half].tolist()), "G2": sorted(order[half:].tolist())}

    def rows(templates: list[int]) -> list[tuple[int, int, str]]:
        return [(t, int(lay.subject_of[t - 1]), f) for t in sorted(templates)
                for f in lay.template_files[t]]

    files = {
        f"{PREFIX}_face_tid_mid.txt": "".join(lay.face_lines),
        f"{PREFIX}_name_5pts_score.txt": "".join(lay.lmk_lines),
        f"{PREFIX}_template_pair_label.txt": "".join(f"{x} {y} {g}\n" for x, y, g in pairs),
        **{f"{PREFIX}_1N_gallery_{g}.csv": _csv(rows([lay.gallery_of[s] for s in members]))
           for g, members in split.items()},
        f"{PREFIX}_1N_probe_mixed.csv": _csv(rows(lay.probes)),
    }
    for fname, text in files.items():
        (stage / "meta" / fname).write_text(text, encoding="utf-8", newline="\n")
    names = dict(enumerate(sorted(chosen), start=1))
    return {
        "generator": GENERATOR,
        "format": "ijb (docs/ijb.md)",
        "prefix": PREFIX,
        "source_sha256": hashlib.sha256("".join(lay.sources).encode()).hexdigest(),
        "counts": {"subjects": len(chosen), "faces": len(lay.face_lines),
                   "templates": int(lay.subject_of.size), "media": lay.media,
                   "gallery_templates": len(lay.gallery_of),
                   "probe_templates": len(lay.probes), "genuine_pairs": n_gen,
                   "impostor_pairs": n_imp, "galleries": {g: len(m) for g, m in split.items()}},
        "subjects": {str(s): n for s, n in names.items()},
        "galleries": {g: [names[s] for s in m] for g, m in split.items()},
        "meta_sha256": {f: hashlib.sha256(t.encode()).hexdigest() for f, t in files.items()},
    }

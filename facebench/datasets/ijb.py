"""IJB-B/C-style template datasets in the community ``IJB_release`` layout (docs/ijb.md).

``<root>/<images>/<name>`` are loose face crops; ``<root>/meta/`` holds, for a prefix ``<p>``:

* ``<p>_face_tid_mid.txt``: ``name template_id media_id`` per face (required);
* ``<p>_name_5pts_score.txt``: ``name x1 y1 … x5 y5 score`` per face (required): five landmarks
  in crop pixels (left eye, right eye, nose, left mouth, right mouth) and the detector score;
* ``<p>_template_pair_label.txt``: ``template_id template_id label`` (1:1; optional);
* ``<p>_1N_gallery_<G>.csv`` and ``<p>_1N_probe_<P>.csv``: CSV with a header naming
  ``TEMPLATE_ID`` and ``SUBJECT_ID`` columns, one row per face (1:N; optional, both or none).

The whitespace tables are parsed with pandas (IJB-C: 470k faces, 15.6M pairs) and checked with
vectorised tests; a problem is then located by a line scan and reported as ``file:line``.
Landmark rows of faces the face table does not list are ignored (counted in ``info``), so a
shortened face table can reuse the full landmark file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebench.datasets.pairs import (
    DatasetError,
    confine,
    confine_listed,
    read_text,
    sha256_file,
)

__all__ = ["IjbSet", "detect_prefix", "load_ijb", "meta_file"]

#: ``(field name, kind)`` of each whitespace table; kind is name, int or float.
_FACES = (("name", "name"), ("template_id", "int"), ("media_id", "int"))
_LANDMARKS = (("name", "name"),
              *((f"{axis}{k}", "float") for k in range(1, 6) for axis in "xy"),
              ("score", "float"))
_PAIRS = (("template_id_1", "int"), ("template_id_2", "int"), ("label", "int"))
_INT = re.compile(r"[+-]?[0-9]+")
_INT64 = np.iinfo(np.int64)


@dataclass
class IjbSet:
    """Faces (one loose crop each) grouped in templates and media, with 1:1 template pairs and
    1:N gallery/probe template lists. Per-face arrays follow the face table's order."""

    name: str
    root: Path
    images: list[Path]
    landmarks: np.ndarray  # float32 (n, 5, 2), loose-crop pixels
    det_scores: np.ndarray  # float32 (n,)
    template_ids: np.ndarray  # int64 (n,)
    media_ids: np.ndarray  # int64 (n,)
    pairs: np.ndarray  # int64 (m, 2) template ids; (0, 2) without a pair file
    pair_labels: np.ndarray  # int64 (m,), 1 genuine
    galleries: dict[str, tuple[np.ndarray, np.ndarray]]  # set → (template ids, subject ids)
    probes: tuple[np.ndarray, np.ndarray] | None  # (template ids, subject ids)
    checksum: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_faces(self) -> int:
        return len(self.images)

    def describe(self) -> dict[str, Any]:
        genuine = int(self.pair_labels.sum())
        return {
            "name": self.name,
            "root": str(self.root),
            "faces": self.n_faces,
            "templates": int(np.unique(self.template_ids).size),
            "media": int(np.unique(self.media_ids).size),
            "pairs": int(self.pair_labels.size),
            "genuine": genuine,
            "impostor": int(self.pair_labels.size) - genuine,
            "galleries": {k: int(t.size) for k, (t, _) in self.galleries.items()},
            "probes": None if self.probes is None else int(self.probes[0].size),
            "sha256": self.checksum,
            **self.info,
        }


# ---- files -------------------------------------------------------------------------------------


def meta_file(root: Path, prefix: str, suffix: str) -> Path:
    """``<root>/meta/<prefix>_<suffix>``."""
    return root / "meta" / f"{prefix}_{suffix}"


def detect_prefix(root: Path) -> str:
    """The ``<p>`` of the single ``<root>/meta/<p>_face_tid_mid.txt``."""
    meta = root / "meta"
    if not meta.is_dir():
        raise DatasetError(f"{meta}: not a folder; an ijb dataset root holds meta/ (the face, "
                           "landmark, pair and 1:N files) and loose_crop/ (see docs/ijb.md)")
    found = sorted(p.name[: -len("_face_tid_mid.txt")] for p in meta.glob("*_face_tid_mid.txt"))
    if len(found) != 1:
        what = "no" if not found else f"{len(found)} ({', '.join(found)})"
        raise DatasetError(f"{meta}: {what} *_face_tid_mid.txt face table(s); "
                           + ("add <prefix>_face_tid_mid.txt (see docs/ijb.md)" if not found
                              else "set the dataset's prefix: to one of them"))
    return found[0]


def _split(line: str) -> list[str]:
    """Fields of a whitespace-table line, as pandas' ``sep=r"\\s+"`` splits it (spaces and
    tabs only)."""
    return [f for f in re.split(r"[ \t]+", line.rstrip("\n")) if f]


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of every non-blank line (universal newlines, as pandas),
    streamed: the pair file of IJB-C has 15.6M lines."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            for lineno, line in enumerate(f, start=1):
                if parts := _split(line):
                    yield lineno, parts
    except UnicodeDecodeError:
        read_text(path)  # raises the error naming the line and byte
        raise


def _layout(fields: Sequence[tuple[str, str]]) -> str:
    return " ".join(n for n, _ in fields)


def _bad_token(token: str, kind: str) -> str | None:
    """Why ``token`` is not a value of ``kind``, or ``None``."""
    if kind == "int":
        if not _INT.fullmatch(token) or not _INT64.min <= int(token) <= _INT64.max:
            return "is not an integer"
    elif kind == "float":
        try:
            value = float(token)
        except ValueError:
            return "is not a number"
        if not np.isfinite(value):
            return "is not a finite number"
    return None


def _scan(path: Path, fields: Sequence[tuple[str, str]]) -> None:
    """Raise a :class:`DatasetError` at the first line of ``path`` that is not ``fields``."""
    for lineno, parts in _lines(path):
        if len(parts) != len(fields):
            raise DatasetError(f"{path}:{lineno}: expected {len(fields)} fields "
                               f"'{_layout(fields)}', got {len(parts)}: {' '.join(parts)!r}")
        for (name, kind), token in zip(fields, parts, strict=True):
            if why := _bad_token(token, kind):
                raise DatasetError(f"{path}:{lineno}: {name} {token!r} {why} (line format "
                                   f"'{_layout(fields)}')")


def _line_of(path: Path, row: int) -> int:
    """The line number of the ``row``-th (0-based) non-blank line of ``path``."""
    for k, (lineno, _) in enumerate(_lines(path)):
        if k == row:
            return lineno
    raise IndexError(f"{path} has no row {row}")


def _column_ok(values: pd.Series, kind: str) -> bool:
    if kind == "int":
        return values.dtype == np.int64
    if kind == "float":
        return values.dtype.kind in "if" and bool(np.isfinite(values.to_numpy()).all())
    return True


def _read_table(path: Path, fields: Sequence[tuple[str, str]]) -> list[np.ndarray]:
    """A whitespace-separated table, one array per field (names: object, int: int64, float:
    float64). Blank lines are skipped; any malformed line is a ``file:line`` error."""
    names = {i: str for i, (_, kind) in enumerate(fields) if kind == "name"}
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=names or None, na_filter=False,
                         quoting=csv.QUOTE_NONE, encoding="utf-8-sig", engine="c")
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: no lines; expected '{_layout(fields)}' per line") from None
    except UnicodeDecodeError:
        read_text(path)  # raises the error naming the line and byte
        raise
    except pd.errors.ParserError as exc:
        _scan(path, fields)
        raise DatasetError(f"{path}: cannot be read as '{_layout(fields)}' per line: "
                           f"{exc}") from None
    if df.shape[1] != len(fields) or not all(
            _column_ok(df[i], kind) for i, (_, kind) in enumerate(fields)):
        _scan(path, fields)
        raise DatasetError(f"{path}: cannot be read as '{_layout(fields)}' per line")
    return [df[i].to_numpy(dtype=object if kind == "name" else None)
            for i, (_, kind) in enumerate(fields)]


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _duplicate_names(path: Path, names: np.ndarray, what: str) -> None:
    dup = pd.Series(names).duplicated(keep="first").to_numpy()
    if dup.any():
        row = _first(dup)
        first = _first(names == names[row])
        raise DatasetError(f"{path}:{_line_of(path, row)}: {what} {names[row]!r} is already on "
                           f"line {_line_of(path, first)}; each face is listed once")


# ---- 1:N lists ---------------------------------------------------------------------------------


def _read_list(path: Path) -> tuple[np.ndarray, np.ndarray, dict[int, int]]:
    """A 1:N CSV (header with TEMPLATE_ID and SUBJECT_ID; one row per face) →
    ``(template ids, subject ids, template → line)``, unique templates in ascending order."""
    subject: dict[int, tuple[int, int]] = {}
    reader = csv.reader(io.StringIO(read_text(path), newline=""), skipinitialspace=True)
    cols: tuple[int, int] | None = None
    for row in reader:
        lineno = reader.line_num
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if cols is None:
            head = [c.upper() for c in cells]
            if "TEMPLATE_ID" not in head or "SUBJECT_ID" not in head:
                raise DatasetError(f"{path}:{lineno}: header {','.join(cells)!r} lacks the "
                                   "TEMPLATE_ID and SUBJECT_ID columns; a 1:N list is CSV with "
                                   "a header row such as 'TEMPLATE_ID,SUBJECT_ID,FILENAME'")
            cols = (head.index("TEMPLATE_ID"), head.index("SUBJECT_ID"))
            continue
        if len(cells) <= max(cols):
            raise DatasetError(f"{path}:{lineno}: {len(cells)} field(s), but the header puts "
                               f"TEMPLATE_ID and SUBJECT_ID in columns {cols[0] + 1} and "
                               f"{cols[1] + 1}")
        values = []
        for col, name in zip(cols, ("TEMPLATE_ID", "SUBJECT_ID"), strict=True):
            if _bad_token(cells[col], "int"):
                raise DatasetError(f"{path}:{lineno}: {name} {cells[col]!r} is not an integer")
            values.append(int(cells[col]))
        tid, sid = values
        seen = subject.setdefault(tid, (sid, lineno))
        if seen[0] != sid:
            raise DatasetError(f"{path}:{lineno}: template {tid} has subject {sid}, but line "
                               f"{seen[1]} gives it subject {seen[0]}; a template shows one "
                               "subject")
    if cols is None:
        raise DatasetError(f"{path}: empty; expected a CSV header 'TEMPLATE_ID,SUBJECT_ID,...' "
                           "and one row per face")
    if not subject:
        raise DatasetError(f"{path}: a header but no rows; list the 1:N templates, one row per "
                           "face")
    tids = np.asarray(sorted(subject), dtype=np.int64)
    sids = np.asarray([subject[t][0] for t in tids.tolist()], dtype=np.int64)
    return tids, sids, {t: line for t, (_, line) in subject.items()}


def _one_n(root: Path, prefix: str, galleries: Sequence[str] | None,
           probes: str) -> tuple[dict[str, Path], Path | None]:
    """The gallery files by set name and the probe file (both present, or neither)."""
    meta = root / "meta"
    if galleries is None:
        head = f"{prefix}_1N_gallery_"
        names = sorted(p.name[len(head):-4] for p in meta.glob(f"{head}*.csv"))
        files = {g: meta / f"{head}{g}.csv" for g in names}
    else:
        files = {g: meta_file(root, prefix, f"1N_gallery_{g}.csv") for g in galleries}
        for g, path in files.items():
            if not path.is_file():
                raise DatasetError(f"{path}: gallery set {g!r} not found; name gallery sets "
                                   f"that exist as meta/{prefix}_1N_gallery_<G>.csv")
    probe = meta_file(root, prefix, f"1N_probe_{probes}.csv")
    if files and not probe.is_file():
        raise DatasetError(f"{probe}: not found, but there are gallery lists "
                           f"({', '.join(files)}); 1:N needs both: add the probe list or set "
                           "probes: to the probe set that exists")
    if not files and probe.is_file():
        raise DatasetError(f"{probe}: a probe list but no meta/{prefix}_1N_gallery_<G>.csv; "
                           "1:N needs both: add the gallery lists")
    return files, probe if files else None


def _unknown_template(path: Path, line: int, tid: int, faces: Path) -> DatasetError:
    return DatasetError(f"{path}:{line}: template {tid} has no face in {faces}; every "
                        "template must be built from faces of the face table")


# ---- loader ------------------------------------------------------------------------------------


def _at_line(faces: Path, k: int, check: Callable[[str], Path]) -> Path:
    """``check(where)`` naming the face table; a :class:`DatasetError` is raised again naming
    the line of face ``k`` (found only then: the table may have 470k lines)."""
    try:
        return check(str(faces))
    except DatasetError:
        return check(f"{faces}:{_line_of(faces, k)}")


def _image_paths(faces: Path, image_root: Path, names: np.ndarray,
                 check_exists: bool) -> list[Path]:
    """Face names → paths under the image root (confined); missing files are an error naming
    the first one and the count."""
    paths: list[Path] = []
    nested: set[int] = set()
    for k, name in enumerate(names.tolist()):
        if "/" in name or "\\" in name or name in (".", ".."):
            paths.append(_at_line(faces, k, lambda where, n=name: confine(image_root, n, where)))
            nested.add(k)
        else:
            paths.append(image_root / name)
    if not check_exists:
        return paths
    if not image_root.is_dir():
        raise DatasetError(f"{image_root}: image folder not found (faces listed in {faces}); "
                           "set images: to the folder of the loose crops under the root")
    with os.scandir(image_root) as it:
        entries = list(it)
    present = {e.name for e in entries if e.is_file()}
    links = {e.name for e in entries if e.is_symlink()}
    for k, name in enumerate(names.tolist()):
        if name in links:  # a link out of the image root is refused, as in a pair list
            _at_line(faces, k, lambda where, p=paths[k]: confine_listed(image_root, p, where))
    missing = [k for k, name in enumerate(names.tolist())
               if not (paths[k].is_file() if k in nested else name in present)]
    if missing:
        k = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"{faces}:{_line_of(faces, k)}: image {names[k]!r} not found in "
                           f"{image_root}{more}; fix the root/images setting or remove the line")
    return paths


def load_ijb(root: str | Path, prefix: str | None = None, images: str = "loose_crop",
             galleries: Sequence[str] | None = None, probes: str = "mixed",
             check_exists: bool = True) -> IjbSet:
    """Read an ijb dataset (module docstring; docs/ijb.md). ``galleries`` default: every
    ``meta/<p>_1N_gallery_*.csv``, sorted. ``checksum`` is the sha256 over the meta files read
    (name and sha256 of each). Every problem is a :class:`DatasetError` naming ``file:line``."""
    root = Path(root)
    prefix = prefix if prefix is not None else detect_prefix(root)
    faces_path = meta_file(root, prefix, "face_tid_mid.txt")
    lmk_path = meta_file(root, prefix, "name_5pts_score.txt")
    for path, what in ((faces_path, "face table 'name template_id media_id'"),
                       (lmk_path, "landmark table 'name x1 y1 ... x5 y5 score'")):
        if not path.is_file():
            raise DatasetError(f"{path}: {what} not found; an ijb dataset needs it (see "
                               "docs/ijb.md; set prefix: if the files use another one)")
    image_root = confine(root, images, f"images: {images!r}")

    names, tids, mids = _read_table(faces_path, _FACES)
    _duplicate_names(faces_path, names, "face")
    tids, mids = tids.astype(np.int64, copy=False), mids.astype(np.int64, copy=False)

    lm = _read_table(lmk_path, _LANDMARKS)
    lm_names = lm[0]
    _duplicate_names(lmk_path, lm_names, "landmark row of face")
    row = pd.Index(lm_names).get_indexer(names)
    if (row < 0).any():
        k = _first(row < 0)
        raise DatasetError(f"{faces_path}:{_line_of(faces_path, k)}: face {names[k]!r} has no "
                           f"landmark row in {lmk_path}; add its 'name x1 y1 ... x5 y5 score' "
                           "line or remove the face")
    points = np.stack(lm[1:11], axis=1)[row].astype(np.float32).reshape(-1, 5, 2)
    scores = lm[11][row].astype(np.float32)

    paths = _image_paths(faces_path, image_root, names, check_exists)
    known = np.unique(tids)
    read = [faces_path, lmk_path]

    pair_path = meta_file(root, prefix, "template_pair_label.txt")
    pairs = np.zeros((0, 2), dtype=np.int64)
    labels = np.zeros(0, dtype=np.int64)
    if pair_path.is_file():
        read.append(pair_path)
        t1, t2, labels = (a.astype(np.int64, copy=False)
                          for a in _read_table(pair_path, _PAIRS))
        pairs = np.stack([t1, t2], axis=1)
        _check_pairs(pair_path, pairs, labels, known, faces_path)

    gallery_files, probe_file = _one_n(root, prefix, galleries, probes)
    lists: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    subject_of: dict[int, tuple[int, Path, int]] = {}
    probe_lines: dict[int, int] = {}
    for label, path in [*gallery_files.items(), *(("", p) for p in [probe_file] if p)]:
        read.append(path)
        t, s, line_of = _read_list(path)
        probe_lines = line_of
        if (absent := _template_rows(known, t) < 0).any():
            bad = int(t[_first(absent)])
            raise _unknown_template(path, line_of[bad], bad, faces_path)
        for tid, sid in zip(t.tolist(), s.tolist(), strict=True):
            prev = subject_of.setdefault(tid, (sid, path, line_of[tid]))
            if prev[0] != sid:
                raise DatasetError(f"{path}:{line_of[tid]}: template {tid} has subject {sid}, "
                                   f"but {prev[1]}:{prev[2]} gives it subject {prev[0]}; a "
                                   "template shows one subject")
        lists[label] = (t, s)
    probe_lists = lists.pop("", None)
    if not pair_path.is_file() and not lists:
        raise DatasetError(f"{root / 'meta'}: neither a 1:1 pair file ({pair_path.name}) nor "
                           f"1:N lists ({prefix}_1N_gallery_<G>.csv and "
                           f"{prefix}_1N_probe_{probes}.csv): nothing to evaluate")
    if probe_lists is not None and probe_file is not None:
        shared = np.intersect1d(probe_lists[0], np.concatenate([t for t, _ in lists.values()]))
        if shared.size:
            tid = int(shared[0])
            raise DatasetError(f"{probe_file}:{probe_lines[tid]}: template {tid} "
                               f"is also a gallery template ({subject_of[tid][1]}); probes "
                               "and galleries must be different templates")

    digest = hashlib.sha256()
    for path in read:
        digest.update(f"{path.name}\t{sha256_file(path)}\n".encode())
    info: dict[str, Any] = {"kind": "ijb", "prefix": prefix, "images_dir": images}
    if unused := int(lm_names.size - names.size):
        info["unused_landmark_rows"] = unused
    return IjbSet(name=prefix, root=root, images=paths, landmarks=points, det_scores=scores,
                  template_ids=tids, media_ids=mids, pairs=pairs, pair_labels=labels,
                  galleries=lists, probes=probe_lists, checksum=digest.hexdigest(), info=info)


def _template_rows(known: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row of each of ``ids`` in the sorted unique ``known``, -1 where absent: a lookup table
    over the id range when it is small (IJB-C: 15.6M pairs in ~0.1 s), else a binary search."""
    lo, hi = int(known[0]), int(known[-1])
    if hi - lo < 64 * known.size + 1_000_000:
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[known - lo] = np.arange(known.size)
        inside = (ids >= lo) & (ids <= hi)
        return np.where(inside, table[np.where(inside, ids - lo, 0)], -1)
    pos = np.minimum(np.searchsorted(known, ids), known.size - 1)
    return np.where(known[pos] == ids, pos, -1)


def _check_pairs(path: Path, pairs: np.ndarray, labels: np.ndarray, known: np.ndarray,
                 faces: Path) -> None:
    """Labels 0/1, templates of the face table, no self pair, no pair twice (either order)."""
    if labels.size == 0:
        return
    bad = (labels != 0) & (labels != 1)
    if bad.any():
        k = _first(bad)
        raise DatasetError(f"{path}:{_line_of(path, k)}: label {labels[k]} is not 0 (impostor) "
                           "or 1 (genuine)")
    pos = _template_rows(known, pairs)
    unknown = pos < 0
    if unknown.any():
        k = _first(unknown.any(axis=1))
        tid = int(pairs[k][unknown[k]][0])
        raise _unknown_template(path, _line_of(path, k), tid, faces)
    same = pairs[:, 0] == pairs[:, 1]
    if same.any():
        k = _first(same)
        raise DatasetError(f"{path}:{_line_of(path, k)}: template {pairs[k, 0]} is paired with "
                           "itself; remove the line")
    key = np.minimum(pos[:, 0], pos[:, 1]) * known.size + np.maximum(pos[:, 0], pos[:, 1])
    ordered = np.sort(key)
    if (ordered[1:] == ordered[:-1]).any():
        dup = pd.Series(key).duplicated(keep="first").to_numpy()
        k = _first(dup)
        first = _first(key == key[k])
        raise DatasetError(f"{path}:{_line_of(path, k)}: pair {pairs[k, 0]} {pairs[k, 1]} "
                           f"duplicates line {_line_of(path, first)} (the same two templates, "
                           "in either order); each pair may appear once")

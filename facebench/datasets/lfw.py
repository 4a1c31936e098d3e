"""LFW-style ``pairs.txt``: View 2 (``10 300`` header) and the dev train/test files."""

from __future__ import annotations

from pathlib import Path

from facebench.datasets.pairs import (
    DatasetError,
    PairSet,
    build,
    check_unique_pairs,
    confine,
    read_text,
    sha256_file,
)


def _image(root: Path, name: str, number: str, ext: str, where: str) -> tuple[Path, str]:
    if not (number.isascii() and number.isdigit()):
        raise DatasetError(f"{where}: image number {number!r} is not an integer")
    rel = f"{name}/{name}_{int(number):04d}{ext}"
    return confine(root, rel, where), rel


def _header(pairs: Path, header: list[str]) -> tuple[int, int]:
    """``(folds, pairs of each label per fold)`` from line 1: ``folds per_fold`` (View 2) or
    ``count`` (a dev file, one fold); every number a positive integer."""
    if len(header) in (1, 2) and all(h.isascii() and h.isdigit() and int(h) > 0
                                     for h in header):
        return (int(header[0]), int(header[1])) if len(header) == 2 else (1, int(header[0]))
    raise DatasetError(f"{pairs}:1: header {' '.join(header)!r} is not 'folds per_fold' "
                       "(View 2: '10 300') or 'count' (a dev file) with positive integers")


def load_lfw_pairs(pairs: str | Path, images: str | Path, ext: str = ".jpg",
                   max_folds: int | None = None) -> PairSet:
    """Parse an LFW pairs file. Folds are the protocol's own: consecutive blocks of
    ``2 × per_fold`` pairs in file order (View 2: 10 × 600), ``per_fold`` genuine then
    ``per_fold`` impostor. A dev file (``pairsDevTrain.txt``, a single count header) is one
    fold: ``folds`` is ``None`` and one threshold serves all its pairs. The whole file is
    checked (header counts against the body, line format, the genuine/impostor layout, no pair
    twice) before ``max_folds`` takes the first folds."""
    pairs, root = Path(pairs), Path(images)
    lines = [ln.split() for ln in read_text(pairs).splitlines()]
    if not lines or not lines[0]:
        raise DatasetError(f"{pairs}: empty file; expected an LFW pairs file")
    n_folds, per_fold = _header(pairs, lines[0])
    body = [(i + 2, p) for i, p in enumerate(lines[1:]) if p]
    expected = 2 * n_folds * per_fold
    layout = (f"the header (line 1) announces {expected} pairs: {n_folds} fold(s) of {per_fold} "
              f"genuine then {per_fold} impostor lines")
    if len(body) > expected:
        raise DatasetError(f"{pairs}:{body[expected][0]}: pair {expected + 1}, but {layout}; "
                           "fix the header or remove the extra lines")
    if len(body) < expected:
        end = body[-1][0] if body else 1
        raise DatasetError(f"{pairs}:{end}: the file ends after {len(body)} pairs, but "
                           f"{layout}; fix the header or restore the missing lines")
    out, names = [], []
    identity_of: dict[Path, str] = {}
    for k, (lineno, parts) in enumerate(body):
        where = f"{pairs}:{lineno}"
        if len(parts) == 3:
            (a, ra), (b, rb) = (_image(root, parts[0], n, ext, where) for n in parts[1:])
            label = 1
            identity_of[a] = identity_of[b] = parts[0]
        elif len(parts) == 4:
            a, ra = _image(root, parts[0], parts[1], ext, where)
            b, rb = _image(root, parts[2], parts[3], ext, where)
            label = 0
            identity_of[a], identity_of[b] = parts[0], parts[2]
        else:
            raise DatasetError(f"{where}: expected 'name i j' or 'name1 i name2 j', "
                               f"got {' '.join(parts)!r}")
        if label != (k % (2 * per_fold) < per_fold):
            want = "a genuine ('name i j')" if label == 0 else "an impostor ('name1 i name2 j')"
            raise DatasetError(f"{where}: expected {want} pair here: {layout}")
        fold = k // (2 * per_fold)
        out.append((a, b, label, fold))
        names.append((lineno, ra, rb))
    check_unique_pairs(pairs, names)
    if max_folds is not None:
        out = [p for p in out if p[3] < max_folds]
    info = {"kind": "lfw_pairs", "pairs_file": str(pairs), "max_folds": max_folds}
    return build(pairs.stem, root, out, sha256_file(pairs), info, identity_of)

"""LFW-style ``pairs.txt``: View 2 (``10 300`` header) and the dev train/test files."""

from __future__ import annotations

from pathlib import Path

from facebench.datasets.pairs import DatasetError, PairSet, build, confine, sha256_file


def _image(root: Path, name: str, number: str, ext: str, where: str) -> Path:
    if not number.isdigit():
        raise DatasetError(f"{where}: image number {number!r} is not an integer")
    return confine(root, f"{name}/{name}_{int(number):04d}{ext}", where)


def load_lfw_pairs(pairs: str | Path, images: str | Path, ext: str = ".jpg",
                   max_folds: int | None = None) -> PairSet:
    """Parse an LFW pairs file. Folds are the protocol's own: consecutive blocks of
    ``2 × per_fold`` pairs in file order (View 2: 10 × 600). A dev file (``pairsDevTrain.txt``,
    a single count header) is one fold."""
    pairs, root = Path(pairs), Path(images)
    lines = [ln.split() for ln in pairs.read_text(encoding="utf-8").splitlines()]
    if not lines or not lines[0]:
        raise DatasetError(f"{pairs}: empty file; expected an LFW pairs file")
    header = lines[0]
    try:
        if len(header) == 2:
            n_folds, per_fold = int(header[0]), int(header[1])
        elif len(header) == 1:
            n_folds, per_fold = 1, int(header[0])
        else:
            raise ValueError
    except ValueError:
        raise DatasetError(f"{pairs}:1: header {' '.join(header)!r} is not 'folds per_fold' "
                           "or 'count'") from None
    body = [(i + 2, p) for i, p in enumerate(lines[1:]) if p]
    if len(body) != 2 * n_folds * per_fold:
        raise DatasetError(f"{pairs}: header announces {2 * n_folds * per_fold} pairs, "
                           f"file has {len(body)}")
    out = []
    for k, (lineno, parts) in enumerate(body):
        where = f"{pairs}:{lineno}"
        fold = k // (2 * per_fold)
        if max_folds is not None and fold >= max_folds:
            break
        if len(parts) == 3:
            a = _image(root, parts[0], parts[1], ext, where)
            b = _image(root, parts[0], parts[2], ext, where)
            label = 1
        elif len(parts) == 4:
            a = _image(root, parts[0], parts[1], ext, where)
            b = _image(root, parts[2], parts[3], ext, where)
            label = 0
        else:
            raise DatasetError(f"{where}: expected 'name i j' or 'name1 i name2 j', "
                               f"got {' '.join(parts)!r}")
        out.append((a, b, label, fold))
    info = {"kind": "lfw_pairs", "pairs_file": str(pairs), "max_folds": max_folds}
    return build(pairs.stem, root, out, sha256_file(pairs), info)

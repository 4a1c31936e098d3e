"""Generic pair CSV: ``path1,path2,label[,fold]`` with paths relative to an image root."""

from __future__ import annotations

import csv
import io
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


def load_pair_csv(pairs: str | Path, images: str | Path) -> PairSet:
    """Read a pair CSV (header required, UTF-8). Without a ``fold`` column all pairs are in
    one fold (``folds=None``: one threshold over all pairs). A pair listed twice (the same two
    images, in either order) is an error."""
    pairs, root = Path(pairs), Path(images)
    reader = csv.DictReader(io.StringIO(read_text(pairs), newline=""))
    cols = set(reader.fieldnames or [])
    missing = {"path1", "path2", "label"} - cols
    if missing:
        raise DatasetError(f"{pairs}: missing column(s) {sorted(missing)}; "
                           "expected header path1,path2,label[,fold]")
    out, names = [], []
    for row in reader:
        lineno = reader.line_num
        where = f"{pairs}:{lineno}"
        if row["label"] not in ("0", "1"):
            raise DatasetError(f"{where}: label {row['label']!r} must be 0 or 1")
        try:
            fold = int(row.get("fold") or 0)
        except ValueError:
            raise DatasetError(f"{where}: fold {row['fold']!r} is not an integer") from None
        out.append((confine(root, row["path1"], where), confine(root, row["path2"], where),
                    int(row["label"]), fold))
        names.append((lineno, row["path1"], row["path2"]))
    if not out:
        raise DatasetError(f"{pairs}: no pairs")
    check_unique_pairs(pairs, names)
    return build(pairs.stem, root, out, sha256_file(pairs), {"kind": "pair_csv"})

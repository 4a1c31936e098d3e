"""Identity-labelled images: loading, drawing verification pairs, and the 1:N split.

Two layouts are read into an :class:`IdentitySet`:

* an image **folder** with one subfolder per identity (``root/<identity>/<image>``);
* an **identity file** (CelebA style): ``image_name identity`` per line, names relative to an
  image root (blank lines and ``#`` comments skipped; the identity is the last field).

Images are ordered by identity, then by relative path ("sorted file order").

:func:`draw_pairs` draws a balanced, seeded verification protocol and :func:`write_pair_csv`
saves it as a ``pair_csv`` file, so any draw can be audited and reused.
:func:`enrollment_split` splits the images for 1:N identification (gallery, mated and
non-mated probes) and :func:`load_distractors` lists gallery-only distractor images.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebench.datasets.pairs import (
    DatasetError,
    PairSet,
    build,
    confine,
    confine_listed,
    read_text,
    sha256_file,
)
from facebench.io import atomic_write_text

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class IdentitySet:
    """Images with identity labels: ``identities[labels[i]]`` is the identity of ``images[i]``."""

    name: str
    root: Path
    images: list[Path]
    labels: np.ndarray
    identities: list[str]
    checksum: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_images(self) -> int:
        return len(self.images)

    @property
    def counts(self) -> np.ndarray:
        """Images per identity, indexed like ``identities``."""
        return np.bincount(self.labels, minlength=len(self.identities))

    def describe(self) -> dict[str, Any]:
        counts = self.counts
        return {"name": self.name, "root": str(self.root), "images": self.n_images,
                "identities": len(self.identities),
                "identities_2plus": int(np.count_nonzero(counts >= 2)),
                "sha256": self.checksum, **self.info}


def _make(name: str, root: Path, items: list[tuple[str, str, Path]], checksum: str,
          info: dict[str, Any], min_images: int) -> IdentitySet:
    """``items`` = (identity, relative path, path); sorts, drops identities below min_images."""
    items = sorted(items, key=lambda t: (t[0], t[1]))
    per: dict[str, int] = {}
    for ident, _, _ in items:
        per[ident] = per.get(ident, 0) + 1
    dropped = sorted(i for i, n in per.items() if n < min_images)
    if dropped:
        gone = set(dropped)
        items = [t for t in items if t[0] not in gone]
        info = {**info, "dropped_identities": len(dropped), "min_images": min_images}
    if not items:
        raise DatasetError(f"{root}: no identity has at least {min_images} image(s)")
    identities = sorted({t[0] for t in items})
    code = {ident: k for k, ident in enumerate(identities)}
    labels = np.asarray([code[t[0]] for t in items], dtype=np.int64)
    return IdentitySet(name, root, [t[2] for t in items], labels, identities, checksum, info)


def load_identity_folder(images: str | Path, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                         min_images: int = 1) -> IdentitySet:
    """One subfolder per identity; image files directly inside it (hidden entries skipped).

    ``checksum`` is the sha256 of the listing (relative path and size of every image)."""
    root = Path(images)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; expected an image root with one subfolder "
                           "per identity")
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    items: list[tuple[str, str, Path]] = []
    stray = 0
    listing = hashlib.sha256()
    for sub in sorted(root.iterdir()):
        if sub.name.startswith("."):
            continue
        if not sub.is_dir():
            stray += sub.suffix.lower() in exts
            continue
        confine_listed(root, sub, str(sub))  # a linked identity folder must stay in the root
        for f in sorted(sub.iterdir()):
            if f.name.startswith(".") or f.suffix.lower() not in exts:
                continue
            if not confine_listed(root, f, str(f)).is_file():
                continue
            rel = f"{sub.name}/{f.name}"
            items.append((sub.name, rel, f))
            listing.update(f"{rel}\t{f.stat().st_size}\n".encode())
    if not items:
        hint = (f"; found {stray} image(s) directly in it: put each identity's images in its "
                "own subfolder" if stray else "")
        raise DatasetError(f"{root}: no images with extensions {sorted(exts)} in identity "
                           f"subfolders{hint}")
    info = {"kind": "identity_folder", "stray_files": stray} if stray else {
        "kind": "identity_folder"}
    return _make(root.name, root, items, listing.hexdigest(), info, min_images)


def load_identity_file(identities: str | Path, images: str | Path, min_images: int = 1,
                       check_exists: bool = True) -> IdentitySet:
    """``image_name identity`` per line (CelebA ``identity_CelebA.txt``), names under ``images``.

    Absolute names, ``..`` escapes, duplicates and (with ``check_exists``) missing files are
    errors naming ``file:line``. ``checksum`` is the identity file's sha256."""
    path, root = Path(identities), Path(images)
    if not root.is_dir():
        raise DatasetError(f"{root}: image root is not a folder (identity file {path})")
    items: list[tuple[str, str, Path]] = []
    seen: dict[str, int] = {}
    missing: list[tuple[int, str]] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        parts = text.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DatasetError(f"{where}: expected 'image_name identity', got {text!r}")
        name, ident = parts
        full = confine(root, name, where)
        rel = Path(name).as_posix()
        if rel in seen:
            raise DatasetError(f"{where}: image {name!r} already listed on line {seen[rel]}; "
                               "each image has exactly one identity")
        seen[rel] = lineno
        if check_exists and not full.is_file():
            missing.append((lineno, name))
        items.append((ident, rel, full))
    if missing:
        lineno, name = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DatasetError(f"{path}:{lineno}: image {name!r} not found under {root}{more}; fix "
                           "the image root or remove the line")
    if not items:
        raise DatasetError(f"{path}: no 'image_name identity' lines")
    return _make(path.stem, root, items, sha256_file(path), {"kind": "identity_file"},
                 min_images)


def load_identities(images: str | Path, identity_file: str | Path | None = None, *,
                    extensions: Sequence[str] = IMAGE_EXTENSIONS,
                    min_images: int = 1) -> IdentitySet:
    """An identity folder (``identity_file=None``) or an identity file over ``images``."""
    if identity_file is None:
        return load_identity_folder(images, extensions, min_images)
    return load_identity_file(identity_file, images, min_images)


# ---- verification pairs ------------------------------------------------------------------------


def _quota(n: int, k: int) -> list[int]:
    return [n // k + (f < n % k) for f in range(k)]


def _partition(rng: np.random.Generator, counts: np.ndarray, k: int) -> list[np.ndarray]:
    """Identities into k folds: random order, then by size, dealt boustrophedon (0..k-1, k-1..0)."""
    order = rng.permutation(counts.size)
    order = order[np.argsort(-counts[order], kind="stable")]
    pos = np.arange(order.size)
    fold = np.where((pos // k) % 2 == 0, pos % k, k - 1 - pos % k)
    return [np.sort(order[fold == f]) for f in range(k)]


def _capacity(counts: np.ndarray) -> tuple[int, int]:
    """(possible genuine pairs, possible impostor pairs) among identities with these counts."""
    c = counts.astype(np.int64)
    n = int(c.sum())
    same = int((c * (c - 1) // 2).sum())
    return same, n * (n - 1) // 2 - same


def _waterfill(rng: np.random.Generator, caps: np.ndarray, q: int) -> np.ndarray:
    """Spread ``q`` over identities as evenly as their capacities allow (max-min fair)."""
    lo, hi = 0, int(caps.max())
    while lo < hi:  # largest level L with sum(min(caps, L)) <= q
        mid = (lo + hi + 1) // 2
        if int(np.minimum(caps, mid).sum()) <= q:
            lo = mid
        else:
            hi = mid - 1
    alloc = np.minimum(caps, lo)
    rest = q - int(alloc.sum())
    if rest:
        alloc[rng.choice(np.flatnonzero(caps > lo), size=rest, replace=False)] += 1
    return alloc


def _unrank(ranks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pair ranks in [0, n(n-1)/2) → (i, j), i < j, row-major over the upper triangle."""
    i_all = np.arange(n, dtype=np.int64)
    starts = i_all * n - i_all * (i_all + 1) // 2
    i = np.searchsorted(starts, ranks, side="right") - 1
    return i, i + 1 + (ranks - starts[i])


def _genuine(rng: np.random.Generator, members: list[np.ndarray], q: int) -> list[tuple[int, int]]:
    """``q`` distinct same-identity pairs, spread evenly over identities (``members`` = image
    indices of each identity)."""
    sizes = np.asarray([m.size for m in members], dtype=np.int64)
    alloc = _waterfill(rng, sizes * (sizes - 1) // 2, q)
    out: list[tuple[int, int]] = []
    for m, a in zip(members, alloc, strict=True):
        if a:
            i, j = _unrank(rng.choice(m.size * (m.size - 1) // 2, size=int(a), replace=False),
                           m.size)
            out.extend(zip(m[i].tolist(), m[j].tolist(), strict=True))
    return out


def _impostor_exact(rng: np.random.Generator, members: list[np.ndarray],
                    q: int) -> list[tuple[int, int]]:
    """``q`` pairs uniform over all different-identity image pairs (for dense draws)."""
    sizes = np.asarray([m.size for m in members], dtype=np.int64)
    a, b = np.triu_indices(sizes.size, 1)
    block = sizes[a] * sizes[b]
    ends = np.cumsum(block)
    ranks = rng.choice(int(ends[-1]), size=q, replace=False)
    blk = np.searchsorted(ends, ranks, side="right")
    off = ranks - (ends[blk] - block[blk])
    ia, ib = np.divmod(off, sizes[b][blk])
    return [(int(members[x][u]), int(members[y][v]))
            for x, y, u, v in zip(a[blk], b[blk], ia, ib, strict=True)]


def _impostor(rng: np.random.Generator, members: list[np.ndarray], q: int,
              capacity: int) -> list[tuple[int, int]]:
    """``q`` distinct different-identity pairs: two identities uniformly, then an image of each
    uniformly (duplicates redrawn). Dense cases (capacity < 2q, or too many redraws) fall back
    to uniform sampling over all impostor image pairs."""
    if capacity < 2 * q:
        return _impostor_exact(rng, members, q)
    chosen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    budget = 50 * q + 1000
    while len(out) < q and budget:
        budget -= 1
        x, y = rng.choice(len(members), size=2, replace=False)
        u = int(members[x][rng.integers(members[x].size)])
        v = int(members[y][rng.integers(members[y].size)])
        pair = (min(u, v), max(u, v))
        if pair not in chosen:
            chosen.add(pair)
            out.append(pair)
    return out if len(out) == q else _impostor_exact(rng, members, q)


def _draw_group(rng: np.random.Generator, members: list[np.ndarray], n_gen: int,
                n_imp: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    _, imp_cap = _capacity(np.asarray([m.size for m in members]))
    gen = _genuine(rng, members, n_gen) if n_gen else []
    imp = _impostor(rng, members, n_imp, imp_cap) if n_imp else []
    return gen, imp


def draw_pairs(ids: IdentitySet, n_genuine: int, n_impostor: int, folds: int = 10,
               seed: int = 0, out: str | Path | None = None) -> PairSet:
    """A seeded verification protocol over ``ids``: ``folds`` folds, each with ``n_genuine / k``
    genuine and ``n_impostor / k`` impostor pairs (± 1), no self pairs, no duplicate pairs.

    Folds are identity-disjoint when possible (as LFW View 2): identities are dealt to folds
    (random order within equal sizes, balanced by image count; up to 20 tries) and each fold's
    pairs use only its own identities. When no tried split can supply every fold's quota, pairs
    are drawn over all identities and dealt to folds at random; ``info["identity_disjoint"]``
    records which. Genuine pairs are spread as evenly as possible over identities; impostor
    pairs pick two identities uniformly, then an image of each. Within a fold, genuine pairs come
    first, each group sorted; a pair is (earlier, later) in sorted file order.

    ``checksum`` is the sha256 of the pair CSV text; with ``out`` the CSV is written there (see
    :func:`write_pair_csv`), and reloading it with the ``pair_csv`` kind gives the same pairs.
    """
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    if n_genuine < folds or n_impostor < folds:
        raise ValueError(f"need at least one genuine and one impostor pair per fold: "
                         f"n_genuine={n_genuine}, n_impostor={n_impostor}, folds={folds}")
    rng = np.random.default_rng(seed)
    counts = ids.counts
    by_id = [np.flatnonzero(ids.labels == k) for k in range(counts.size)]
    g_quota, i_quota = _quota(n_genuine, folds), _quota(n_impostor, folds)
    split = None
    if counts.size >= 2 * folds:
        for _ in range(20):
            part = _partition(rng, counts, folds)
            caps = [_capacity(counts[p]) for p in part]
            if all(g <= gc and i <= ic for g, i, (gc, ic)
                   in zip(g_quota, i_quota, caps, strict=True)):
                split = part
                break
    rows: list[tuple[int, int, int, int]] = []
    if split is not None:
        for f, part in enumerate(split):
            gen, imp = _draw_group(rng, [by_id[k] for k in part], g_quota[f], i_quota[f])
            rows += [(a, b, 1, f) for a, b in gen] + [(a, b, 0, f) for a, b in imp]
    else:
        gen_cap, imp_cap = _capacity(counts)
        if n_genuine > gen_cap or n_impostor > imp_cap:
            raise DatasetError(
                f"{ids.root}: only {gen_cap} genuine and {imp_cap} impostor pairs exist among "
                f"{ids.n_images} images of {counts.size} identities; asked for {n_genuine} and "
                f"{n_impostor}: lower n_genuine/n_impostor or add identities")
        gen, imp = _draw_group(rng, by_id, n_genuine, n_impostor)
        for label, drawn in ((1, gen), (0, imp)):
            fold_of = rng.permutation(np.arange(len(drawn)) % folds)
            rows += [(a, b, label, int(f)) for (a, b), f in zip(drawn, fold_of, strict=True)]
    rows = [(min(a, b), max(a, b), lab, f) for a, b, lab, f in rows]
    rows.sort(key=lambda r: (r[3], -r[2], r[0], r[1]))
    pairs = [(ids.images[a], ids.images[b], lab, f) for a, b, lab, f in rows]
    info = {"kind": "identity_pairs", "source_kind": ids.info.get("kind"), "source": ids.name,
            "source_sha256": ids.checksum, "seed": seed, "identity_disjoint": split is not None,
            "identities_used": len({int(ids.labels[i]) for r in rows for i in r[:2]})}
    identity_of = {ids.images[i]: ids.identities[ids.labels[i]] for r in rows for i in r[:2]}
    pairset = build(ids.name, ids.root, pairs, "", info, identity_of)
    pairset.checksum = hashlib.sha256(pair_csv_text(pairset).encode("utf-8")).hexdigest()
    if out is not None:
        write_pair_csv(pairset, out)
        pairset.info["pairs_csv"] = str(out)
    return pairset


def pair_csv_text(pairs: PairSet) -> str:
    """The ``path1,path2,label,fold`` CSV of a pair set, paths relative to its root (POSIX)."""
    rel: list[str] = []
    for p in pairs.images:
        if not p.is_relative_to(pairs.root) or ".." in p.relative_to(pairs.root).parts:
            raise DatasetError(f"{p}: image is not under the pair set's root {pairs.root}; a "
                               "pair CSV stores paths relative to the root")
        rel.append(p.relative_to(pairs.root).as_posix())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path1", "path2", "label", "fold"])
    folds = np.zeros(pairs.n_pairs, np.int16) if pairs.folds is None else pairs.folds
    for a, b, lab, f in zip(pairs.left, pairs.right, pairs.labels, folds, strict=True):
        w.writerow([rel[a], rel[b], int(lab), int(f)])
    return buf.getvalue()


def write_pair_csv(pairs: PairSet, path: str | Path) -> Path:
    """Write :func:`pair_csv_text` to ``path`` atomically; readable by ``load_pair_csv``."""
    return atomic_write_text(path, pair_csv_text(pairs))


# ---- identification (1:N) split (the metrics: facebench.metrics.identification) ----------------


def enrollment_split(ids: IdentitySet, gallery_images: int = 1, unenrolled: float = 0.0,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A declared 1:N split: ``(gallery, probes)`` image indices.

    A seeded ``unenrolled`` fraction of the identities (rounded down) is kept out of the gallery:
    all their images are non-mated probes (open-set). Every other identity enrols its first
    ``gallery_images`` images (sorted file order) and its remaining images are mated probes; an
    identity with no image left over is gallery-only (a distractor for every probe).
    The default (``gallery_images=1, unenrolled=0``): the first image of each identity is the
    gallery, every other image a mated probe."""
    if gallery_images < 1:
        raise ValueError(f"gallery_images must be >= 1, got {gallery_images}")
    if not 0.0 <= unenrolled < 1.0:
        raise ValueError(f"unenrolled must be in [0, 1), got {unenrolled}")
    n_ids = len(ids.identities)
    out = np.zeros(n_ids, dtype=bool)
    k = int(np.floor(unenrolled * n_ids))
    if k:
        out[np.random.default_rng(seed).choice(n_ids, size=k, replace=False)] = True
    order = np.argsort(ids.labels, kind="stable")  # images by identity, file order within
    first = np.searchsorted(ids.labels[order], np.arange(n_ids))
    pos = np.empty(ids.n_images, dtype=np.int64)
    pos[order] = np.arange(ids.n_images) - first[ids.labels[order]]  # index within identity
    in_gallery = (pos < gallery_images) & ~out[ids.labels]
    return np.flatnonzero(in_gallery), np.flatnonzero(~in_gallery)


def load_distractors(folders: Sequence[str | Path],
                     extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Every image below ``folders`` (recursively, sorted, hidden entries skipped): gallery-only
    entries of identities no probe has (MegaFace style), each image its own identity."""
    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    out: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise DatasetError(f"{root}: distractor folder not found; give a folder of images")
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts
                       and not any(part.startswith(".") for part in p.relative_to(root).parts)
                       and confine_listed(root, p, str(p)).is_file())
        if not found:
            raise DatasetError(f"{root}: no images with extensions {sorted(exts)} in the "
                               "distractor folder")
        out += found
    return out

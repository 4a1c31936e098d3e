"""Identity folders/files on real LFW images, and seeded verification pair draws."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from facebench.datasets.identity import (
    IdentitySet,
    draw_pairs,
    enrollment_split,
    load_identities,
    load_identity_file,
    load_identity_folder,
    write_pair_csv,
)
from facebench.datasets.pair_csv import load_pair_csv
from facebench.datasets.pairs import DatasetError, PairSet


@pytest.fixture
def folder30(tmp_path: Path, lfw_people: Callable[[int, int], list[str]],
             copy_identities: Callable[..., Path]) -> Path:
    """30 real LFW identities with >= 2 images (at most 8 each), copied."""
    return copy_identities(tmp_path / "faces", lfw_people(2, 30), max_images=8)


def _key(ps: PairSet, i: int) -> frozenset[Path]:
    return frozenset((ps.images[ps.left[i]], ps.images[ps.right[i]]))


def _check_protocol(ps: PairSet, n_gen: int, n_imp: int, folds: int) -> None:
    assert ps.n_pairs == n_gen + n_imp
    assert int(ps.labels.sum()) == n_gen
    assert (ps.folds is None) == (folds == 1)  # one fold: one threshold over all pairs
    fold_of = np.zeros(ps.n_pairs, np.int16) if ps.folds is None else ps.folds
    for f in range(folds):
        m = fold_of == f
        assert abs(int(ps.labels[m].sum()) - n_gen / folds) < 1
        assert abs(int((ps.labels[m] == 0).sum()) - n_imp / folds) < 1
    assert len({_key(ps, i) for i in range(ps.n_pairs)}) == ps.n_pairs  # no duplicates
    assert (ps.left != ps.right).all()  # no self pairs
    same = [ps.images[a].parent.name == ps.images[b].parent.name
            for a, b in zip(ps.left, ps.right, strict=True)]
    assert np.array_equal(np.asarray(same), ps.labels == 1)


def _fold_identities(ps: PairSet) -> list[set[str]]:
    return [{ps.images[i].parent.name for i in np.concatenate([ps.left[ps.folds == f],
                                                               ps.right[ps.folds == f]])}
            for f in np.unique(ps.folds)]


def test_folder_loads_sorted(folder30: Path) -> None:
    ids = load_identity_folder(folder30)
    assert len(ids.identities) == 30 and ids.identities == sorted(ids.identities)
    rel = [p.relative_to(folder30).as_posix() for p in ids.images]
    assert rel == sorted(rel) and all(p.is_file() for p in ids.images)
    assert [ids.identities[k] for k in ids.labels] == [r.split("/")[0] for r in rel]
    assert ids.counts.min() >= 2 and len(ids.checksum) == 64
    assert load_identities(folder30).checksum == ids.checksum


def test_draw_is_deterministic_balanced_disjoint(folder30: Path, tmp_path: Path) -> None:
    ids = load_identity_folder(folder30)
    out = tmp_path / "drawn.csv"
    ps = draw_pairs(ids, 30, 30, folds=10, seed=3, out=out)
    _check_protocol(ps, 30, 30, 10)
    assert ps.info["identity_disjoint"]
    folds = _fold_identities(ps)
    assert sum(len(s) for s in folds) == len(set().union(*folds)) == 30  # disjoint, all used
    genuine_ids = {ps.images[a].parent.name for a in ps.left[ps.labels == 1]}
    assert len(genuine_ids) == 30  # spread evenly: one genuine pair per identity

    again = draw_pairs(ids, 30, 30, folds=10, seed=3)
    assert again.checksum == ps.checksum and again.images == ps.images
    for attr in ("left", "right", "labels", "folds"):
        assert np.array_equal(getattr(again, attr), getattr(ps, attr))
    assert draw_pairs(ids, 30, 30, folds=10, seed=4).checksum != ps.checksum

    reloaded = load_pair_csv(out, folder30)  # the written draw is a pair_csv dataset
    assert reloaded.checksum == ps.checksum == hashlib.sha256(out.read_bytes()).hexdigest()
    assert reloaded.images == ps.images
    for attr in ("left", "right", "labels", "folds"):
        assert np.array_equal(getattr(reloaded, attr), getattr(ps, attr))
    assert out.read_text().splitlines()[0] == "path1,path2,label,fold"
    assert write_pair_csv(ps, tmp_path / "copy.csv").read_bytes() == out.read_bytes()


def test_uneven_quotas_and_dense_impostors(folder30: Path) -> None:
    ids = load_identity_folder(folder30)
    ps = draw_pairs(ids, 33, 47, folds=4, seed=0)
    _check_protocol(ps, 33, 47, 4)
    assert np.bincount(ps.folds[ps.labels == 1]).tolist() == [9, 8, 8, 8]
    assert ps.info["identity_disjoint"]


def test_falls_back_when_disjoint_folds_impossible(tmp_path: Path,
                                                   lfw_people: Callable[[int, int], list[str]],
                                                   copy_identities: Callable[..., Path]) -> None:
    ids = load_identity_folder(copy_identities(tmp_path / "few", lfw_people(4, 6)))
    ps = draw_pairs(ids, 20, 20, folds=5, seed=1)  # 6 identities cannot fill 5 disjoint folds
    _check_protocol(ps, 20, 20, 5)
    assert not ps.info["identity_disjoint"]
    with pytest.raises(DatasetError, match="genuine and .* impostor pairs exist"):
        draw_pairs(ids, 10_000, 20, folds=5)
    with pytest.raises(ValueError, match="at least one genuine and one impostor pair per fold"):
        draw_pairs(ids, 3, 20, folds=5)


def test_full_lfw_draw(lfw_dir: Path) -> None:
    ids = load_identity_folder(lfw_dir / "images")
    assert ids.n_images == 7701 and len(ids.identities) == 4281
    ps = draw_pairs(ids, 3000, 3000, folds=10, seed=0)
    _check_protocol(ps, 3000, 3000, 10)
    assert np.bincount(ps.folds).tolist() == [600] * 10 and ps.info["identity_disjoint"]
    folds = _fold_identities(ps)
    assert sum(len(s) for s in folds) == len(set().union(*folds))


def _identity_file(path: Path, ids: IdentitySet, extra: str = "") -> Path:
    lines = ["# image identity"] + [
        f"{p.relative_to(ids.root).as_posix()} {ids.identities[k]}"
        for p, k in zip(ids.images, ids.labels, strict=True)]
    path.write_text("\n".join(lines[::-1]) + "\n\n" + extra)  # order in the file does not matter
    return path


def test_identity_file_matches_folder(folder30: Path, tmp_path: Path) -> None:
    ids = load_identity_folder(folder30)
    by_file = load_identity_file(_identity_file(tmp_path / "identity.txt", ids), folder30)
    assert by_file.images == ids.images and np.array_equal(by_file.labels, ids.labels)
    assert by_file.identities == ids.identities
    assert load_identities(folder30, tmp_path / "identity.txt").images == ids.images


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("../../etc/passwd 7\n", "escapes the image root"),
        ("/etc/passwd 7\n", "absolute path"),
        ("lonely_token\n", "expected 'image_name identity'"),
        ("nobody/none.jpg 3\n", "not found under"),
    ],
)
def test_identity_file_errors_name_the_line(folder30: Path, tmp_path: Path, extra: str,
                                            words: str) -> None:
    ids = load_identity_folder(folder30)
    path = _identity_file(tmp_path / "identity.txt", ids, extra)
    line = len(path.read_text().splitlines())
    with pytest.raises(DatasetError) as err:
        load_identity_file(path, folder30)
    assert f"{path}:{line}:" in str(err.value) and words in str(err.value)


def test_identity_file_duplicate(folder30: Path, tmp_path: Path) -> None:
    ids = load_identity_folder(folder30)
    first = ids.images[0].relative_to(folder30).as_posix()
    path = _identity_file(tmp_path / "identity.txt", ids, f"{first} someone_else\n")
    with pytest.raises(DatasetError, match="already listed on line"):
        load_identity_file(path, folder30)


def test_folder_errors_and_min_images(tmp_path: Path, lfw_dir: Path,
                                      copy_identities: Callable[..., Path]) -> None:
    with pytest.raises(DatasetError, match="not a folder"):
        load_identity_folder(tmp_path / "missing")
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copyfile(lfw_dir / "images/Abel_Pacheco/Abel_Pacheco_0001.jpg", flat / "a.jpg")
    with pytest.raises(DatasetError, match="own subfolder"):
        load_identity_folder(flat)
    mixed = copy_identities(tmp_path / "mixed", ["Abel_Pacheco", "Aaron_Sorkin"])
    assert len(load_identity_folder(mixed).identities) == 2
    kept = load_identity_folder(mixed, min_images=3)
    assert kept.identities == ["Abel_Pacheco"] and kept.info["dropped_identities"] == 1


def test_enrollment_split_default(tmp_path: Path,
                                  copy_identities: Callable[..., Path]) -> None:
    folder = copy_identities(tmp_path / "g", ["Aaron_Eckhart", "Abel_Pacheco", "Adrien_Brody"])
    ids = load_identity_folder(folder)
    gallery, probes = enrollment_split(ids)
    names = [p.name for p in ids.images]
    firsts = [sorted(f.name for f in (folder / n).iterdir())[0] for n in ids.identities]
    assert [names[i] for i in gallery] == firsts
    assert sorted(gallery.tolist() + probes.tolist()) == list(range(ids.n_images))
    assert "Aaron_Eckhart" not in {ids.images[i].parent.name for i in probes}  # distractor


def test_exhaustive_draw_small_set(tmp_path: Path, copy_identities: Callable[..., Path]) -> None:
    """Quotas equal to every possible pair: both pair kinds are drawn exactly, once each."""
    folder = copy_identities(tmp_path / "s", ["Aaron_Eckhart", "Aaron_Sorkin", "Abel_Pacheco"],
                             max_images=2)
    ids = load_identity_folder(folder)  # 1 + 2 + 2 images: 2 genuine, 8 impostor pairs
    ps = draw_pairs(ids, 2, 8, folds=1)
    _check_protocol(ps, 2, 8, 1)
    assert len(ps.images) == 5

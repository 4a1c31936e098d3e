"""Suite models of the new dataset kinds, and loading data from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from facebench.datasets import load_pairs, load_spec_identities
from facebench.datasets.insightface_bin import write_insightface_bin
from facebench.datasets.pair_csv import load_pair_csv
from facebench.datasets.specs import (
    IdentityFileDataset,
    IdentityFolderDataset,
    InsightfaceBinDataset,
)

Spec = TypeAdapter(InsightfaceBinDataset | IdentityFolderDataset | IdentityFileDataset)


def test_validation_and_paths(tmp_path: Path) -> None:
    ctx = {"base_dir": tmp_path}
    s = Spec.validate_python({"kind": "insightface_bin", "path": "data/lfw.bin"}, context=ctx)
    assert isinstance(s, InsightfaceBinDataset)
    assert s.path == tmp_path / "data/lfw.bin" and s.folds == 10 and s.extract_dir is None
    f = Spec.validate_python({"kind": "identity_folder", "images": "faces", "n_genuine": 10,
                              "n_impostor": 20, "seed": 3}, context=ctx)
    assert isinstance(f, IdentityFolderDataset) and f.images == tmp_path / "faces"
    assert (f.n_genuine, f.n_impostor, f.folds, f.seed, f.min_images) == (10, 20, 10, 3, 1)
    c = Spec.validate_python({"kind": "identity_file", "identities": "id.txt", "images": "img"},
                             context=ctx)
    assert isinstance(c, IdentityFileDataset) and c.identities == tmp_path / "id.txt"
    for bad in ({"kind": "insightface_bin", "path": "x.bin", "unknown": 1},
                {"kind": "identity_folder"},
                {"kind": "identity_folder", "images": "x", "n_genuine": 0},
                {"kind": "identity_folder", "images": "x", "n_genuine": 5, "folds": 10},
                {"kind": "identity_file", "images": "x"}):
        with pytest.raises(ValidationError):
            Spec.validate_python(bad, context=ctx)


def test_identity_folder_spec_draws_and_saves(tmp_path: Path,
                                              lfw_people: Callable[[int, int], list[str]],
                                              copy_identities: Callable[..., Path]) -> None:
    names = lfw_people(3, 24)
    folder = copy_identities(tmp_path / "faces", names, max_images=4)
    spec = IdentityFolderDataset(kind="identity_folder", images=folder, n_genuine=20,
                                 n_impostor=20, folds=5)
    ids = load_spec_identities(spec)
    assert ids.identities == names
    assert ids.n_images == sum(len(list((folder / n).iterdir())) for n in names)
    ps = load_pairs(spec, cache_dir=tmp_path / "cache")
    csv_path = Path(ps.info["pairs_csv"])
    assert csv_path.parent == tmp_path / "cache" / "pairs"
    assert load_pair_csv(csv_path, folder).checksum == ps.checksum
    out = tmp_path / "mine.csv"
    again = load_pairs(spec.model_copy(update={"pairs_out": out}), tmp_path / "cache")
    assert out.read_bytes() == csv_path.read_bytes() and again.checksum == ps.checksum


def test_insightface_spec_extracts_into_cache(tmp_path: Path, lfw_dir: Path) -> None:
    img = cv2.imread(str(lfw_dir / "images/Abel_Pacheco/Abel_Pacheco_0001.jpg"))
    crops = [cv2.resize(img[60 + k:172 + k, 69:181], (112, 112)) for k in range(4)]
    data = [cv2.imencode(".png", c)[1].tobytes() for c in crops]
    path = write_insightface_bin(tmp_path / "t.bin", data, [True, False])
    spec = InsightfaceBinDataset(kind="insightface_bin", path=path, folds=2)
    ps = load_pairs(spec, cache_dir=tmp_path / "cache")
    assert ps.root.parent == tmp_path / "cache" / "insightface_bin"
    np.testing.assert_array_equal(cv2.imread(str(ps.images[3])), crops[3])

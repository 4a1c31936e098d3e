"""Fixtures of the Ray tests: a loopback two-node cluster, a small real LFW subset, suites.

Ray's environment is set here, before anything imports ``ray``: loopback only, no usage
statistics, one token for every process of the session.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ray.cluster import LoopbackCluster, ray_env

os.environ.update(ray_env())



def _have_ray() -> bool:
    """A real Ray is importable (not the namespace package ``tests/ray`` on ``sys.path``)."""
    try:
        spec = importlib.util.find_spec("ray")
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin is not None


HAVE_RAY = _have_ray()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: needs Ray (pip install 'facebench[ray]')")


def require_ray() -> None:
    """Skip outside CI when Ray is missing; in CI a missing Ray is a failure."""
    if HAVE_RAY:
        return
    if os.environ.get("CI"):
        pytest.fail("Ray is required in CI: pip install 'facebench[ray]'")
    pytest.skip("Ray is not installed: pip install 'facebench[ray]'")


@pytest.fixture(autouse=True)
def _need_ray(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("ray") is not None:
        require_ray()


@pytest.fixture(scope="session")
def ray_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One alignment/engine cache for the session: faces are detected once."""
    return tmp_path_factory.mktemp("fb-cache")


@pytest.fixture(scope="session")
def lfw_subset(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pair CSV of real LFW View 2 pairs: the first 20 genuine and 20 impostor pairs of
    folds 1 and 2 (160 pairs, 2 folds), paths relative to ``data/lfw/images``."""
    lines = (shared / "data" / "lfw" / "pairs.txt").read_text().splitlines()[1:]

    def img(name: str, i: str) -> str:
        return f"{name}/{name}_{int(i):04d}.jpg"

    rows = ["path1,path2,label,fold"]
    for fold in (0, 1):
        base = fold * 600
        for j in [*range(base, base + 20), *range(base + 300, base + 320)]:
            t = lines[j].split()
            if len(t) == 3:
                rows.append(f"{img(t[0], t[1])},{img(t[0], t[2])},1,{fold}")
            else:
                rows.append(f"{img(t[0], t[1])},{img(t[2], t[3])},0,{fold}")
    path = tmp_path_factory.mktemp("lfw-subset") / "pairs.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def write_suite(path: Path, shared: Path, cache: Path, devices: list[dict[str, Any]],
                protocols: list[dict[str, Any]], name: str = "ray-test") -> Path:
    """A suite of the trained MobileFaceNet (ONNX, onnxruntime, 1 thread) on ``devices``."""
    suite = {
        "name": name,
        "cache_dir": str(cache),
        "models": [{"id": "mfn", "source": "onnx",
                    "path": str(shared / "models" / "mobilefacenet_128d.onnx"),
                    "preprocess": {"color": "RGB", "mean": 127.5, "std": 128.0}}],
        "devices": [{"engine": "onnxruntime", "threads": {"intra_op": 1, "inter_op": 1},
                     "batch_sizes": [1], **d} for d in devices],
        "protocols": protocols,
    }
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def verification(shared: Path, pairs: Path, **extra: Any) -> dict[str, Any]:
    """The LFW-subset verification protocol (YuNet alignment, flip, one detection process);
    embeddings are computed by every run (only aligned crops are cached)."""
    return {"id": "lfw", "kind": "verification",
            "dataset": {"kind": "pair_csv", "pairs": str(pairs),
                        "images": str(shared / "data" / "lfw" / "images")},
            "detector": {"name": "yunet",
                         "model": str(shared / "models" / "face_detection_yunet.onnx")},
            "far_targets": [0.1, 0.01], "workers": 1, "cache_embeddings": False, **extra}


def efficiency(**extra: Any) -> dict[str, Any]:
    return {"id": "eff", "kind": "efficiency", "warmup": 2, "min_iters": 5, "min_seconds": 0.2,
            **extra}


@pytest.fixture(scope="session")
def cluster() -> Iterator[LoopbackCluster]:
    """Head (1 CPU, resource ``cpu-box``) + worker node (1 CPU, ``edge-orin``) on 127.0.0.1."""
    require_ray()
    c = LoopbackCluster(num_cpus=1)
    try:
        c.start_head({"cpu-box": 1})
        c.add_node({"edge-orin": 1})
        yield c
    finally:
        c.stop()

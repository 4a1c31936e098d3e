"""Suite fields of the exhaustive protocol and of the bootstrap's resampling: `pairs: all`,
`impostor_sample`, `bootstrap_method`; bad combinations are one clear problem each."""

from __future__ import annotations

from pathlib import Path

import pytest

from facebench.suite import SuiteError, load_suite

SUITE = """
name: x
models:
  - {{id: m, source: onnx, path: model.onnx}}
devices:
  - {{id: cpu, engine: onnxruntime}}
protocols:
  - id: p
    kind: verification
    dataset: {{kind: identity_folder, images: people, {dataset}}}
    bootstrap: 100
{extra}
"""


def _load(tmp_path: Path, dataset: str, extra: str = ""):  # type: ignore[no-untyped-def]
    (tmp_path / "people").mkdir(exist_ok=True)
    (tmp_path / "model.onnx").write_bytes(b"")
    path = tmp_path / "s.yaml"
    path.write_text(SUITE.format(dataset=dataset, extra=extra))
    return load_suite(path)


def test_exhaustive_fields_and_defaults(tmp_path: Path) -> None:
    suite = _load(tmp_path, "pairs: all, impostor_sample: 1000, seed: 3")
    (p,) = suite.protocols
    assert p.dataset.pairs == "all" and p.dataset.impostor_sample == 1000
    assert p.bootstrap_method == "identity"  # the default
    drawn = _load(tmp_path, "n_genuine: 10, n_impostor: 10").protocols[0]
    assert drawn.dataset.pairs == "drawn" and drawn.dataset.impostor_sample is None
    small = _load(tmp_path, "pairs: all, impostor_sample: 1000", "    bootstrap_method: pair")
    assert small.protocols[0].bootstrap_method == "pair"


@pytest.mark.parametrize(("dataset", "extra", "says"), [
    ("pairs: drawn, impostor_sample: 5", "", "impostor_sample is for pairs: all"),
    ("pairs: all", "    bootstrap_method: pair", "too slow for an exhaustive protocol"),
    ("pairs: all, impostor_sample: 300000", "    bootstrap_method: pair", "at most 200,000"),
    ("pairs: every", "", "'drawn' or 'all'"),
    ("pairs: all", "    bootstrap_method: pairs", "'identity' or 'pair'"),
])
def test_bad_combinations_are_one_line(tmp_path: Path, dataset: str, extra: str,
                                       says: str) -> None:
    with pytest.raises(SuiteError) as exc:
        _load(tmp_path, dataset, extra)
    assert says in str(exc.value)
    assert "Traceback" not in str(exc.value)

"""Zoo architectures: API, exact parameter counts and fvcore GMAC against published values."""

from __future__ import annotations

import pytest
import torch

from facebench.zoo import describe, get_model, list_models

# (name, embedding_size, params, GMAC) -- the table (published counts).
TABLE = [
    ("mobilefacenet", 128, 1_003_136, 0.227),
    ("mobilefacenet", 512, 1_200_512, 0.228),
    ("mbf", 512, 2_059_520, 0.446),
    ("iresnet18", 512, 24_025_600, 2.62),
    ("iresnet34", 512, 34_139_328, 4.47),
    ("iresnet50", 512, 43_590_848, 6.33),
    ("iresnet100", 512, 65_156_160, 12.12),
    ("iresnet200", 512, 118_833_920, 23.47),
    ("ir50", 512, 43_574_976, 6.31),
    ("ir_se50", 512, 43_797_696, 6.31),
    ("ir_se100", 512, 65_502_016, 12.10),
]


@pytest.mark.parametrize(("name", "emb", "params", "gmac"), TABLE,
                         ids=[f"{n}-{e}" for n, e, _, _ in TABLE])
def test_params_exact_and_gmac_within_1pct(name: str, emb: int, params: int, gmac: float) -> None:
    d = describe(name, emb)
    assert d["params"] == params
    assert d["gmac"] == pytest.approx(gmac, rel=0.01)
    assert d["gflops"] == pytest.approx(2 * d["gmac"])
    assert d["counter"] == "fvcore" and d["input_shape"] == [1, 3, 112, 112]
    assert "aten::prelu" in d["skipped_ops"]  # fvcore does not count PReLU: must be reported


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mobilefacenet_matches_paper_madds_without_bn() -> None:
    """Chen et al. 2018, Table 3: 221M MAdds (convolutions and FC; BN not counted)."""
    from fvcore.nn import FlopCountAnalysis

    fca = FlopCountAnalysis(get_model("mobilefacenet"), (torch.zeros(1, 3, 112, 112),))
    fca.unsupported_ops_warnings(False)
    fca.tracer_warnings("none")
    by_op = fca.by_operator()
    assert set(by_op) == {"conv", "linear", "batch_norm"}
    assert (fca.total() - by_op["batch_norm"]) / 1e6 == pytest.approx(221, rel=0.005)


def test_api_and_metadata() -> None:
    names = [m.name for m in list_models()]
    assert names == ["mobilefacenet", "mbf", "iresnet18", "iresnet34", "iresnet50", "iresnet100",
                     "iresnet200", "ir50", "ir_se50", "ir100", "ir_se100"]
    for info in list_models():
        assert info.input_size == (112, 112)
        assert info.preprocess["color"] == "RGB" and info.preprocess["layout"] == "NCHW"
        assert info.preprocess["mean"] == 127.5 and info.preprocess["std"] in (127.5, 128.0)
    by_name = {m.name: m for m in list_models()}
    assert by_name["mobilefacenet"].embedding_size == 128
    assert by_name["ir_se100"].aliases == ("se_lresnet100e_ir",)
    assert describe("SE-LResNet100E-IR")["name"] == "ir_se100"
    assert describe("ir_se100") is not describe("ir_se100")  # callers get their own copy


def test_get_model_builds_eval_module_with_embedding_size() -> None:
    model = get_model("mobilefacenet", embedding_size=256)
    assert not model.training
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 112, 112)).shape == (2, 256)
    with pytest.raises(KeyError, match="unknown zoo model 'resnet50'.*iresnet50"):
        get_model("resnet50")
    with pytest.raises(ValueError, match="embedding_size"):
        get_model("mbf", embedding_size=0)


@pytest.mark.parametrize("name", ["mbf", "iresnet18", "ir_se50"])
def test_forward_shape(name: str) -> None:
    with torch.no_grad():
        assert get_model(name)(torch.zeros(1, 3, 112, 112)).shape == (1, 512)

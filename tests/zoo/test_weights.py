"""Trained-weight loading: every supported key layout round-trips; bad files fail loudly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from facebench.zoo import get_model
from facebench.zoo.weights import WeightsError, load_torchscript, load_weights

from . import reference_layouts as ref
from ._helpers import face_batch, randomize

# Real arcface_torch keys and shapes (recognition/arcface_torch/backbones), written out by hand.
ARCFACE_KEYS = {
    "iresnet50": {
        "conv1.weight": [64, 3, 3, 3], "bn1.running_var": [64], "prelu.weight": [64],
        "layer1.0.bn1.weight": [64], "layer1.0.conv1.weight": [64, 64, 3, 3],
        "layer1.0.bn2.bias": [64], "layer1.0.prelu.weight": [64],
        "layer1.0.conv2.weight": [64, 64, 3, 3], "layer1.0.bn3.running_mean": [64],
        "layer1.0.downsample.0.weight": [64, 64, 1, 1], "layer1.0.downsample.1.weight": [64],
        "layer2.0.downsample.0.weight": [128, 64, 1, 1],
        "layer3.13.conv2.weight": [256, 256, 3, 3],
        "layer4.2.bn3.bias": [512], "bn2.weight": [512], "fc.weight": [512, 25088],
        "fc.bias": [512], "features.weight": [512], "features.running_var": [512],
    },
    "mbf": {
        "layers.0.layers.0.weight": [128, 3, 3, 3], "layers.0.layers.2.weight": [128],
        "layers.1.layers.0.weight": [128, 2, 3, 3],  # groups=64 on 128 channels
        "layers.2.layers.0.layers.0.weight": [128, 128, 1, 1],
        "layers.2.layers.1.layers.0.weight": [128, 1, 3, 3],
        "layers.3.layers.3.layers.2.layers.1.running_var": [128],
        "layers.4.layers.0.layers.0.weight": [256, 128, 1, 1],
        "layers.4.layers.2.layers.0.weight": [256, 256, 1, 1],
        "layers.7.layers.1.layers.1.layers.0.weight": [256, 1, 3, 3],
        "conv_sep.layers.0.weight": [512, 256, 1, 1],
        "features.layers.0.layers.0.weight": [512, 1, 7, 7],
        "features.layers.2.weight": [512, 512], "features.layers.3.running_mean": [512],
    },
}


@pytest.mark.parametrize("name", sorted(ARCFACE_KEYS))
def test_our_keys_are_arcface_torch_keys(name: str) -> None:
    with torch.device("meta"):
        sd = get_model(name).state_dict()
    for key, shape in ARCFACE_KEYS[name].items():
        assert list(sd[key].shape) == shape, key


def _same_outputs(a: nn.Module, b: nn.Module) -> None:
    x = face_batch(2)
    with torch.no_grad():
        torch.testing.assert_close(b.eval()(x), a.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["mbf", "iresnet18"])
def test_arcface_torch_layout_roundtrip(name: str, tmp_path: Path) -> None:
    src = randomize(get_model(name))
    path = tmp_path / "ckpt.pt"  # DataParallel prefix, wrapped like a training checkpoint
    torch.save({"state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}, path)
    dst = get_model(name)
    report = load_weights(dst, path)
    assert report.layout == "arcface_torch" and report.loaded == len(src.state_dict())
    _same_outputs(src, dst)


@pytest.mark.parametrize(("name", "reference", "layout", "wrap"), [
    ("ir_se50", lambda: ref.Backbone(50, "ir_se"), "insightface_pytorch", "model"),
    ("ir50", lambda: ref.Backbone(50, "ir"), "face_evolve", None),
    ("mobilefacenet", lambda: ref.MobileFaceNet(128), "insightface_pytorch", None),
    ("mobilefacenet", lambda: ref.MobileFaceNet(512), "auto", "state_dict"),
])
def test_reference_layout_loads_with_identical_outputs(name, reference, layout, wrap,
                                                       tmp_path: Path) -> None:
    src = randomize(reference())
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    path = tmp_path / "ref.pth"
    torch.save({wrap: sd} if wrap else sd, path)
    dst = get_model(name, embedding_size=src.state_dict()["output_layer.4.weight"].numel()
                    if name.startswith("ir") else src.bn.num_features)
    report = load_weights(dst, path, layout=layout)
    assert report.layout in ("insightface_pytorch", "face_evolve")
    assert report.loaded == len(sd) and not report.missing
    _same_outputs(src, dst)


@pytest.mark.parametrize(("name", "depth", "mode"), [("ir100", 100, "ir"),
                                                     ("ir_se100", 100, "ir_se")])
def test_reference_layout_maps_every_key_and_shape_deep(name: str, depth: int, mode: str) -> None:
    from facebench.zoo.weights import _translator

    with torch.device("meta"):
        theirs, ours = ref.Backbone(depth, mode).state_dict(), get_model(name)
    translate = _translator(ours, "insightface_pytorch")
    mapped = {translate(k): list(v.shape) for k, v in theirs.items()}
    assert mapped == {k: list(v.shape) for k, v in ours.state_dict().items()}


def test_old_checkpoint_without_num_batches_tracked_loads(tmp_path: Path) -> None:
    src = randomize(ref.MobileFaceNet(128))
    sd = {k: v for k, v in src.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(sd, tmp_path / "old.pth")
    dst = get_model("mobilefacenet")
    load_weights(dst, tmp_path / "old.pth")
    _same_outputs(src, dst)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _unchanged(model: nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def mfn_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "mobilefacenet.pt"
    torch.save(randomize(get_model("mobilefacenet")).state_dict(), path)
    return path


def test_truncated_file_names_the_file(mfn_ckpt: Path, tmp_path: Path) -> None:
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(mfn_ckpt.read_bytes()[: mfn_ckpt.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"truncated\.pt: cannot read checkpoint.*corrupted"):
        load_weights(get_model("mobilefacenet"), bad)


def test_garbage_and_missing_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    with pytest.raises(WeightsError, match=r"junk\.pth: cannot read checkpoint"):
        load_weights(get_model("mobilefacenet"), junk)
    with pytest.raises(FileNotFoundError, match=r"nope\.pth"):
        load_weights(get_model("mobilefacenet"), tmp_path / "nope.pth")


def test_pickled_module_is_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "whole_model.pt"
    torch.save(get_model("mobilefacenet"), path)
    with pytest.raises(WeightsError,
                       match=r"whole_model\.pt: .*MobileFaceNet.*weights_only.*state_dict"):
        load_weights(get_model("mobilefacenet"), path)


def test_missing_key_raises_and_loads_nothing(mfn_ckpt: Path, tmp_path: Path) -> None:
    sd = torch.load(mfn_ckpt, weights_only=True)
    del sd["features.layers.2.weight"]
    torch.save(sd, tmp_path / "partial.pt")
    model = get_model("mobilefacenet")
    before = _snapshot(model)
    with pytest.raises(WeightsError, match=r"partial\.pt.*missing 1: features\.layers\.2\.weight"
                                           r".*Nothing was loaded"):
        load_weights(model, tmp_path / "partial.pt")
    assert _unchanged(model, before)


def test_wrong_embedding_size_names_shapes(mfn_ckpt: Path) -> None:
    model = get_model("mobilefacenet", embedding_size=512)
    before = _snapshot(model)
    with pytest.raises(WeightsError, match=r"wrong shape 5: features\.layers\.2\.weight: "
                                           r"file \[128, 512\] vs model \[512, 512\]"):
        load_weights(model, mfn_ckpt)
    assert _unchanged(model, before)


def test_wrong_architecture_names_unexpected_keys(mfn_ckpt: Path) -> None:
    with pytest.raises(WeightsError, match=r"missing \d+: .*unexpected \d+: layers\.0\.layers"):
        load_weights(get_model("iresnet18"), mfn_ckpt)


def test_reference_layout_into_wrong_family_is_explained(tmp_path: Path) -> None:
    with torch.device("meta"):
        keys = list(ref.Backbone(50).state_dict())
    torch.save({k: torch.zeros(1) for k in keys}, tmp_path / "ir50.pth")
    with pytest.raises(WeightsError, match=r"insightface_pytorch.*iresnet.*ir\*/ir_se\*"):
        load_weights(get_model("iresnet50"), tmp_path / "ir50.pth")
    with pytest.raises(ValueError, match="layout must be one of"):
        load_weights(get_model("ir50"), tmp_path / "ir50.pth", layout="mxnet")


def test_non_strict_warns_and_loads_only_matches(mfn_ckpt: Path, tmp_path: Path) -> None:
    sd = torch.load(mfn_ckpt, weights_only=True)
    sd["extra.weight"] = torch.zeros(3)
    torch.save(sd, tmp_path / "extra.pt")
    model = get_model("mobilefacenet")
    with pytest.raises(WeightsError, match="unexpected 1: extra.weight"):
        load_weights(model, tmp_path / "extra.pt")
    with pytest.warns(UserWarning, match="unexpected 1: extra.weight.*strict=False"):
        report = load_weights(model, tmp_path / "extra.pt", strict=False)
    assert report.unexpected == ("extra.weight",) and report.loaded == len(sd) - 1
    assert torch.equal(model.state_dict()["conv_sep.layers.0.weight"],
                       sd["conv_sep.layers.0.weight"])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_load_torchscript(tmp_path: Path) -> None:
    model = randomize(get_model("mobilefacenet"))
    with torch.no_grad():
        traced = torch.jit.trace(model, face_batch(1))
    traced.save(str(tmp_path / "mfn.ts"))
    _same_outputs(model, load_torchscript(tmp_path / "mfn.ts"))
    (tmp_path / "bad.ts").write_bytes((tmp_path / "mfn.ts").read_bytes()[:1000])
    with pytest.raises(WeightsError, match=r"bad\.ts: cannot read"):
        load_torchscript(tmp_path / "bad.ts")


def test_non_strict_still_refuses_a_checkpoint_that_matches_nothing(mfn_ckpt: Path) -> None:
    model = get_model("iresnet18")
    before = _snapshot(model)
    with pytest.raises(WeightsError, match="no key matched. Nothing was loaded"):
        load_weights(model, mfn_ckpt, strict=False)
    assert _unchanged(model, before)

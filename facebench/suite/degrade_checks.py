"""Checks of ``degrade:`` blocks that need the validated suite (a protocol and its models).

``resolution`` at ``stage: aligned`` downscales a crop whose inter-ocular distance the model's
alignment fixes (the ArcFace template at 112×112: 35.2 px); a level at or above it would leave
every crop as it is, so it is refused here, at the level, naming the model. At ``stage: source``
the face's size is known only once it is detected: a face already at or below a level is left
as it is (docs/robustness.md).
"""

from __future__ import annotations

import numpy as np

from facebench.faces.align import ARCFACE_TEMPLATE, SimilarityAlign
from facebench.suite.schema import ModelSpec, Suite


def crop_inter_ocular(model: ModelSpec, align_size: int | None) -> float | None:
    """The inter-ocular distance (px) of the model's aligned crop, when its alignment fixes
    one (a similarity template); ``None`` otherwise."""
    align = model.align
    if not isinstance(align, SimilarityAlign):
        return None
    if align.size is not None:
        size = align.size
    elif align_size:
        size = (align_size, align_size)
    else:
        size = model.preprocess.input_size
    points = (ARCFACE_TEMPLATE if align.template == "arcface"
              else np.array(align.template, dtype=np.float64))
    scale = np.array([size[0] / align.reference_size[0], size[1] / align.reference_size[1]])
    return float(np.linalg.norm((points[1] - points[0]) * scale))


def degrade_problems(suite: Suite) -> list[str]:
    """``location: message`` for each resolution level a model's aligned crop is too small
    for."""
    problems = []
    for i, proto in enumerate(suite.protocols):
        spec = getattr(proto, "degrade", None)
        if spec is not None and getattr(getattr(proto, "dataset", None), "pairs", None) == "all":
            problems.append(f"protocols[{i}].degrade: not supported with dataset.pairs: all "
                            "(exhaustive scoring); degrade a protocol with drawn or listed pairs")
            continue
        if spec is None or spec.stage != "aligned":
            continue
        models = [m for m in suite.models if proto.models is None or m.id in proto.models]
        for j, corruption in enumerate(spec.corruptions):
            if corruption.name != "resolution":
                continue
            for k, level in enumerate(corruption.levels):
                for m in models:
                    iod = crop_inter_ocular(m, getattr(proto, "align_size", None))
                    if iod is not None and level >= iod:
                        problems.append(
                            f"protocols[{i}].degrade.corruptions[{j}].levels[{k}]: resolution "
                            f"{level} px is larger than the face: model '{m.id}''s aligned "
                            f"crop has an inter-ocular distance of {iod:.1f} px, so this level "
                            f"would change nothing; use levels below {iod:.0f}, or stage: "
                            "source")
                        break
    return problems

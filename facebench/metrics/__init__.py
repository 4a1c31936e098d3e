"""Accuracy metrics (pure numpy): verification, identification (CMC), open-set 1:N search
(FNIR at FPIR) and bootstrap CIs. Template pooling lives in :mod:`facebench.metrics.templates`.

Definitions follow ``docs/metrics.md`` of the shared data; metric names follow docs/results.md.
"""

from facebench.metrics._inputs import far_key
from facebench.metrics.bootstrap import bootstrap_kfold_accuracy, bootstrap_tar_at_far
from facebench.metrics.identification import Cmc, cmc
from facebench.metrics.open_set import (
    FnirAtFpir,
    Searches,
    cmc_curve,
    det_curve,
    fnir_at_fpir,
    open_set_metrics,
    rank_rate,
    searches_from_candidates,
)
from facebench.metrics.roc import (
    Eer,
    Roc,
    TarAtFar,
    auc,
    downsample_roc,
    eer,
    roc_auc,
    roc_curve,
    tar_at_far,
)
from facebench.metrics.verification import (
    DEFAULT_FAR_TARGETS,
    HIST_EDGES,
    Confusion,
    KFold,
    VerificationResult,
    best_threshold,
    compute_verification_metrics,
    confusion_at,
    confusion_ratios,
    kfold_accuracy,
    score_histogram,
)

__all__ = [
    "DEFAULT_FAR_TARGETS",
    "HIST_EDGES",
    "Cmc",
    "Confusion",
    "Eer",
    "FnirAtFpir",
    "KFold",
    "Roc",
    "Searches",
    "TarAtFar",
    "VerificationResult",
    "auc",
    "best_threshold",
    "bootstrap_kfold_accuracy",
    "bootstrap_tar_at_far",
    "cmc",
    "cmc_curve",
    "compute_verification_metrics",
    "confusion_at",
    "confusion_ratios",
    "det_curve",
    "downsample_roc",
    "eer",
    "far_key",
    "fnir_at_fpir",
    "kfold_accuracy",
    "open_set_metrics",
    "rank_rate",
    "roc_auc",
    "roc_curve",
    "score_histogram",
    "searches_from_candidates",
    "tar_at_far",
]

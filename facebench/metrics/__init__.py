"""Accuracy metrics (pure numpy): verification, identification (CMC) and bootstrap CIs.

Definitions follow ``docs/metrics.md`` of the shared data; metric names follow docs/results.md.
"""

from facebench.metrics._inputs import far_key
from facebench.metrics.bootstrap import bootstrap_kfold_accuracy, bootstrap_tar_at_far
from facebench.metrics.identification import Cmc, Identification, cmc, identification_metrics
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
    "Identification",
    "KFold",
    "Roc",
    "TarAtFar",
    "VerificationResult",
    "auc",
    "best_threshold",
    "bootstrap_kfold_accuracy",
    "bootstrap_tar_at_far",
    "cmc",
    "compute_verification_metrics",
    "confusion_at",
    "confusion_ratios",
    "downsample_roc",
    "eer",
    "far_key",
    "identification_metrics",
    "kfold_accuracy",
    "roc_auc",
    "roc_curve",
    "score_histogram",
    "tar_at_far",
]

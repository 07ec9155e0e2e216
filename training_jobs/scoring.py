"""Holdout metrics of a fitted classifier: what `train` logs and `evaluate` compares."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from training_jobs import dataset


def score(model: Any, frame: Any) -> dict[str, float]:
    """Holdout metrics a reviewer compares runs by."""
    x, y = dataset.features(frame), dataset.labels(frame)
    proba = model.predict_proba(x)[:, 1]
    predicted = (proba >= 0.5).astype(np.int64)
    has_both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, proba)) if has_both else float("nan"),
        "accuracy": float(accuracy_score(y, predicted)),
        "log_loss": float(log_loss(y, proba, labels=[0, 1])),
        "precision": float(precision_score(y, predicted, zero_division=0)),
        "recall": float(recall_score(y, predicted, zero_division=0)),
        "f1": float(f1_score(y, predicted, zero_division=0)),
        "positive_rate": float(np.mean(y)),
        "rows": float(len(y)),
    }

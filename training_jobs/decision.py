"""What `evaluate` decides and `register` acts on: a document in the models bucket.

Its own module so that `register` (and the retrain state machine's reader) need neither
`evaluate` nor `train`, nor what those import to score a model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    min_roc_auc: float
    min_roc_auc_gain: float
    max_log_loss_increase: float


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    model_name: str
    candidate_run_id: str
    candidate_model_id: str
    dataset_version: str
    champion_run_id: str | None
    champion_version: str | None
    decision: Literal["promote", "reject"]
    reasons: tuple[str, ...]
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    deltas: dict[str, float] | None
    thresholds: Thresholds
    decision_key: str

    @property
    def promote(self) -> bool:
        return self.decision == "promote"

"""The pointers the pipeline steps hand each other in the buckets.

prepare → train: the dataset version (`manifests/<dataset>/...`); train → evaluate: the
candidate run (`candidates/<model>/...`); evaluate → register and the retrain state
machine: the decision (`decisions/<model>/...`). Each is written as `latest.json` and,
inside a pipeline execution, as that execution's own, which is what its next step reads.
"""

from __future__ import annotations

from training_jobs import contract
from training_jobs.common import JobSettings


def pointer_keys(prefix: str, name: str, settings: JobSettings) -> tuple[str, ...]:
    """The pointers a step writes: `latest.json` (for people and manual runs) and, inside a
    pipeline execution, that execution's own (what the next step of it reads)."""
    keys = [contract.pointer_key(prefix, name)]
    if settings.pipeline_execution:
        keys.append(contract.pointer_key(prefix, name, settings.pipeline_execution))
    return tuple(keys)


def candidate_key(model_name: str, execution: str | None = None) -> str:
    """Where `train` leaves the run it produced; `evaluate` reads it when given no run id."""
    return contract.pointer_key(contract.PREFIX_CANDIDATES, model_name, execution)


def decision_key(model_name: str, run_id: str) -> str:
    """Where `evaluate` writes its decision on one run; `register` reads it."""
    return f"{contract.PREFIX_DECISIONS}{model_name}/{run_id}.json"


latest_decision_key = contract.latest_decision_key

"""Find the platform's resources from a stack's outputs.

Jobs accept `pulumi stack output --json` as a file (`MLOPS_STACK_OUTPUTS=path`) so the same
code runs in AWS Batch, on a laptop and against the local emulator. Individual settings
(bucket names, ...) given explicitly to a job win over what the outputs say.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from training_jobs import contract


class PlatformError(Exception):
    """The platform could not be located; the message says which setting to fix."""


class PlatformOutputs(BaseModel):
    """The subset of stack outputs the jobs need."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    raw_bucket: str
    curated_bucket: str
    models_bucket: str
    captures_bucket: str
    region: str = "us-east-1"
    kms_key_arn: str | None = None
    # The MLflow tracking server, when the stack runs one the jobs can reach.
    tracking_uri: str | None = None


def load_outputs(path: Path) -> PlatformOutputs:
    """Read a `pulumi stack output --json` file into `PlatformOutputs`."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise PlatformError(f"MLOPS_STACK_OUTPUTS: file {str(path)!r} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise PlatformError(
            f"MLOPS_STACK_OUTPUTS: {str(path)!r} is not JSON ({exc.msg} at line {exc.lineno}); "
            "write it with `pulumi stack output --json > outputs.json`"
        ) from exc
    try:
        return PlatformOutputs.model_validate(raw)
    except ValidationError as exc:
        missing = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors())
        raise PlatformError(
            f"MLOPS_STACK_OUTPUTS: {str(path)!r} lacks the outputs {missing}; expected the "
            f"outputs of an mlops-platform stack ({', '.join(contract.OUTPUT_BUCKETS.values())})"
        ) from exc

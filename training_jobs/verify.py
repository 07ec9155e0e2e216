"""`python -m training_jobs.verify`: the job `mlops verify` submits to prove a Batch job
reaches MLflow as the platform's jobs do — the job definition's MLOPS_TRACKING_URI, the
account its environment names and the password its execution role reads from Secrets
Manager — and that the tracking server answers an authenticated request.

Runs in the jobs' frame (`run_job`): its `done` line names the server and the account;
exit 0 when MLflow answered, 1 when it could not be reached or refused the credentials
(the message says which), 2 for a missing setting.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from training_jobs import contract
from training_jobs.common import EnvironmentProblem, JobSettings, StepLogger, run_job, tracking_uri

if TYPE_CHECKING:  # mlflow is imported when the job runs, not when it is imported
    from mlflow import MlflowClient


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    tracking_uri: str
    user: str | None
    experiments: int
    seconds: float


def run(uri: str, *, mlflow_client: MlflowClient) -> VerifyResult:
    """One authenticated request to the tracking server at `uri`."""
    from mlflow.exceptions import MlflowException

    started = time.perf_counter()
    try:
        experiments = mlflow_client.search_experiments(max_results=10)
    except MlflowException as exc:
        raise EnvironmentProblem(f"MLflow at {uri} refused or failed: {exc}") from exc
    except OSError as exc:
        raise EnvironmentProblem(f"cannot reach MLflow at {uri}: {exc}") from exc
    return VerifyResult(
        tracking_uri=uri,
        user=os.environ.get("MLFLOW_TRACKING_USERNAME"),
        experiments=len(experiments),
        seconds=round(time.perf_counter() - started, 3),
    )


def main(argv: Sequence[str] | None = None) -> int:
    def body(settings: JobSettings, log: StepLogger) -> VerifyResult:
        from training_jobs.tracking import make_client

        uri = tracking_uri(settings)
        return run(uri, mlflow_client=make_client(uri))

    return run_job(contract.MODULE_VERIFY, JobSettings, body, argv)


if __name__ == "__main__":
    raise SystemExit(main())

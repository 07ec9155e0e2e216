"""`python -m training_jobs.verify`: the job `mlops verify` submits to prove a Batch job
reaches MLflow as the platform's jobs do — the job definition's MLOPS_TRACKING_URI, the
account its environment names and the password its execution role reads from Secrets
Manager — and that the tracking server answers an authenticated request.

Prints one JSON line; exit 0 when MLflow answered, 1 when it could not be reached or
refused the credentials (the line says which), 2 for a missing setting.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

from training_jobs.common import EXIT_ENVIRONMENT_ERROR, EXIT_USER_ERROR, JobError, JobSettings
from training_jobs.common import tracking_uri as resolve_tracking_uri

PROG = "python -m training_jobs.verify"


def main(argv: Sequence[str] | None = None) -> int:
    from mlflow.exceptions import MlflowException

    from training_jobs.tracking import make_client

    try:
        uri = resolve_tracking_uri(JobSettings())
    except JobError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return EXIT_USER_ERROR
    started = time.perf_counter()
    try:
        experiments = make_client(uri).search_experiments(max_results=10)
    except MlflowException as exc:
        sys.stderr.write(f"{PROG}: error: MLflow at {uri} refused or failed: {exc}\n")
        return EXIT_ENVIRONMENT_ERROR
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot reach MLflow at {uri}: {exc}\n")
        return EXIT_ENVIRONMENT_ERROR
    sys.stdout.write(
        json.dumps(
            {
                "tracking_uri": uri,
                "user": os.environ.get("MLFLOW_TRACKING_USERNAME"),
                "experiments": len(experiments),
                "seconds": round(time.perf_counter() - started, 3),
            }
        )
        + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

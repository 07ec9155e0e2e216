"""Names both sides of the platform agree on.

The Pulumi program (`infra`) imports these; the job modules and the model server use them
without needing the Pulumi SDK. Change a value here and both sides follow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

# Data lake bucket roles, in the order data flows through them.
BUCKET_RAW: Final = "raw"
BUCKET_CURATED: Final = "curated"
BUCKET_MODELS: Final = "models"
BUCKET_CAPTURES: Final = "captures"
DATA_BUCKET_ROLES: Final = (BUCKET_RAW, BUCKET_CURATED, BUCKET_MODELS, BUCKET_CAPTURES)

# Workload images, one ECR repository each: what the Batch jobs, MLflow and the model
# server run.
IMAGE_JOBS: Final = "jobs"
IMAGE_TRACKING: Final = "tracking"
IMAGE_SERVER: Final = "server"
REPOSITORY_JOBS: Final = IMAGE_JOBS
REPOSITORY_TRACKING: Final = IMAGE_TRACKING
REPOSITORY_SERVER: Final = IMAGE_SERVER
REPOSITORY_ROLES: Final = (REPOSITORY_JOBS, REPOSITORY_TRACKING, REPOSITORY_SERVER)
# The label carrying an image's context digest (a hash of exactly the files it is built
# from): set by every build, read back by the local platform to find the image a plan means.
IMAGE_LABEL_CONTEXT_DIGEST: Final = "dev.mlops-platform.context-digest"


# Per-pull-request stacks are named `pr-<number>`; their image tags start the same way.
EPHEMERAL_STACK_PREFIX: Final = "pr-"


def image_tag(stack: str, build_digest: str) -> str:
    """The tag a stack pushes an image under: unique to the stack and to what was built,
    so immutable tags never collide and a stack's images are found by the prefix."""
    return f"{image_tag_prefix(stack)}{build_digest[:16]}"


def image_tag_prefix(stack: str) -> str:
    """Every tag a stack pushes starts with this (`pr-12-`; `pr-1-` never matches it)."""
    return f"{stack}-"


# Tag keys every platform resource carries.
TAG_STACK: Final = "mlops:stack"
TAG_ENVIRONMENT: Final = "mlops:environment"
TAG_OWNER: Final = "mlops:owner"
TAG_EXPIRES_AT: Final = "mlops:expires-at"
TAG_COMPONENT: Final = "mlops:component"
# On the EKS cluster: where `pulumi up` runs (serving.deployer.location), for the policy
# rule that checks the endpoint admits it.
TAG_DEPLOYER: Final = "mlops:deployer"

# Stack outputs the jobs read (`pulumi stack output --json`), snake_case throughout.
OUTPUT_BUCKETS: Final = {role: f"{role}_bucket" for role in DATA_BUCKET_ROLES}
OUTPUT_REPOSITORIES: Final = {role: f"{role}_repository_url" for role in REPOSITORY_ROLES}
# The digest reference (`<repository>@sha256:...`) each workload runs.
OUTPUT_IMAGES: Final = {image: f"{image}_image" for image in REPOSITORY_ROLES}
OUTPUT_KMS_KEY_ARN: Final = "kms_key_arn"
OUTPUT_REGION: Final = "region"
OUTPUT_TRACKING_URI: Final = "tracking_uri"

# S3 key prefixes inside the buckets.
PREFIX_DATASETS: Final = "datasets/"
PREFIX_MANIFESTS: Final = "manifests/"
PREFIX_REJECTS: Final = "rejects/"
PREFIX_CAPTURES: Final = "captures/"
PREFIX_DRIFT_REPORTS: Final = "drift-reports/"
PREFIX_DECISIONS: Final = "decisions/"  # <model>/<run_id>.json and <model>/latest.json
PREFIX_CANDIDATES: Final = "candidates/"  # <model>/latest.json: the run train last produced
PREFIX_MLFLOW_ARTIFACTS: Final = "mlflow/"


def capture_partition(model_name: str, when: datetime, prefix: str = PREFIX_CAPTURES) -> str:
    """The hour partition a captured inference belongs to, by its own capture time (UTC):
    `captures/<model>/date=YYYY-MM-DD/hour=HH/`. The model server writes every record
    under its own partition and the drift job lists the partitions of its window, so a
    record can never sit in an hour the window does not list."""
    hour = when.astimezone(UTC)
    return f"{prefix}{model_name}/date={hour:%Y-%m-%d}/hour={hour:%H}/"


# CloudWatch metrics the drift job publishes and the monitoring alarms watch.
DRIFT_METRIC_NAMESPACE: Final = "MLOps/Drift"
DRIFT_METRIC_MAX: Final = "MaxDriftScore"
DRIFT_METRIC_FEATURE: Final = "FeatureDriftScore"
DRIFT_DIMENSION_MODEL: Final = "Model"
DRIFT_DIMENSION_FEATURE: Final = "Feature"
# Effect size at or above which a feature counts as drifted; the drift alarm uses the same
# value on MaxDriftScore, so the report and the alarm cannot disagree.
DRIFT_THRESHOLD_DEFAULT: Final = 0.1

# Prometheus metrics of the model server that rules and dashboards query.
SERVE_METRIC_REQUESTS: Final = "mlops_serve_requests"
SERVE_METRIC_LATENCY: Final = "mlops_serve_request_duration_seconds"
SERVE_METRIC_PREDICTION: Final = "mlops_serve_prediction_value"
SERVE_METRIC_MODEL_VERSION: Final = "mlops_serve_model_version"
SERVE_METRIC_MODEL_PATH: Final = "mlops_serve_model_path"

# The registered model (and experiment) of a long-lived stack; per-PR stacks append theirs.
DEFAULT_MODEL_NAME: Final = "churn"

# The MLflow registry alias the model server follows.
CHAMPION_ALIAS: Final = "champion"

# A version's compiled form (training_jobs/compile.py): `register` makes and verifies it
# and tags the version; the model server serves it when the tag says "verified".
PREFIX_COMPILED: Final = "compiled/"
TAG_COMPILED: Final = "mlops.compiled"  # "verified" or "refused"
TAG_COMPILED_URI: Final = "mlops.compiled.manifest"  # s3:// (or file://) URI of the manifest
TAG_COMPILED_REASON: Final = "mlops.compiled.reason"  # why a version has none
COMPILED_VERIFIED: Final = "verified"
COMPILED_REFUSED: Final = "refused"
COMPILED_MODEL_FILE: Final = "model.onnx"
COMPILED_MANIFEST_FILE: Final = "manifest.json"


def compiled_prefix(model_name: str, version: str) -> str:
    """`compiled/<model>/v<version>/` in the models bucket: the bundle of one version."""
    return f"{PREFIX_COMPILED}{model_name}/v{version}/"


# Set by the retrain state machine on every Batch job it runs: the execution's ARN.
PIPELINE_EXECUTION_VARIABLE: Final = "MLOPS_PIPELINE_EXECUTION"
POINTER_EXECUTIONS: Final = "executions/"


def execution_name(execution: str) -> str:
    """An execution ARN (`arn:aws:states:...:execution:<machine>:<name>`) → its name."""
    return execution.rsplit(":", 1)[-1]


def pointer_key(prefix: str, name: str, execution: str | None = None) -> str:
    """Where a step leaves the pointer the next step reads (the dataset version, the
    candidate run, the decision): `<prefix><name>/latest.json`, and inside a pipeline
    execution `<prefix><name>/executions/<execution name>.json`, so two executions running
    at once never read each other's."""
    if execution:
        return f"{prefix}{name}/{POINTER_EXECUTIONS}{execution_name(execution)}.json"
    return f"{prefix}{name}/latest.json"


def latest_decision_key(model_name: str, execution: str | None = None) -> str:
    """Where `evaluate` leaves its decision; the retrain state machine reads it."""
    return pointer_key(PREFIX_DECISIONS, model_name, execution)

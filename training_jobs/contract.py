"""Names both sides of the platform agree on.

The Pulumi program (`infra`) imports these; the job modules and the model server use them
without needing the Pulumi SDK. Change a value here and both sides follow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

# Environments a stack declares (`mlops:environment`), and the two classes the platform
# treats differently. They are two sets on purpose, named for what each one decides:
ENV_DEV: Final = "dev"
ENV_STAGING: Final = "staging"
ENV_PROD: Final = "prod"
ENV_LOCAL: Final = "local"
ENV_EPHEMERAL: Final = "ephemeral"
ENVIRONMENTS: Final = (ENV_DEV, ENV_STAGING, ENV_PROD, ENV_LOCAL, ENV_EPHEMERAL)
# Guarded: their data must survive a command. Destructive commands (`mlops env delete`,
# `reap`) refuse them, and their config and plan may never let `pulumi destroy` take data
# (force_destroy, force_delete, versioning off, no final snapshot).
GUARDED_ENVIRONMENTS: Final = frozenset({ENV_STAGING, ENV_PROD})
# Retained: their stateful resources are protected in Pulumi and by AWS (`protect`,
# deletion protection, longer key and backup windows, Multi-AZ) and kept on delete.
RETAINED_ENVIRONMENTS: Final = frozenset({ENV_PROD})

# The region a stack deploys to when `aws:region` is not set (the AWS provider's own
# fallback); jobs and tools that are told no region assume it too.
DEFAULT_REGION: Final = "us-east-1"

# The expiry instant of ephemeral stacks and resources (`mlops:expires-at` tag, the
# `mlops:ephemeral.expires_at` setting): UTC, second precision, `Z` suffix.
EXPIRY_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"


def format_expiry(moment: datetime) -> str:
    """`2026-11-29T10:00:00Z`: the one spelling writers use and `mlops.expiry` parses."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no timezone")
    return moment.astimezone(UTC).strftime(EXPIRY_FORMAT)


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
# ...and the ones `mlops verify`, the local platform and operators read.
OUTPUT_ENVIRONMENT: Final = "environment"
OUTPUT_ALERT_TOPIC_ARN: Final = "alert_topic_arn"
OUTPUT_JOB_QUEUE_ARN: Final = "job_queue_arn"
OUTPUT_STATE_MACHINE_ARN: Final = "state_machine_arn"
OUTPUT_DRIFT_ALARM_NAME: Final = "drift_alarm_name"
OUTPUT_RETRAIN_RULE_NAME: Final = "retrain_rule_name"
OUTPUT_JOB_DEFINITION_ARNS: Final = "job_definition_arns"  # {job: arn}
OUTPUT_DRIFT_SCHEDULE_NAME: Final = "drift_schedule_name"
OUTPUT_SERVING_NAMESPACE: Final = "serving_namespace"
OUTPUT_MODEL_SERVER_URL: Final = "model_server_url"
OUTPUT_MODEL_SERVER_ENDPOINT: Final = "model_server_endpoint"

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


# Environment variables the plan sets on the workloads and the workloads read. Every job
# setting is `MLOPS_<FIELD>` (the jobs' settings prefix); the model server's are
# `MLOPS_SERVE_<FIELD>`. tests/contract/ parses each workload's plan environment with the
# settings class that reads it, so a renamed field fails a test, not a deployment.
ENV_PREFIX: Final = "MLOPS_"
SERVE_ENV_PREFIX: Final = "MLOPS_SERVE_"
VAR_STACK_OUTPUTS: Final = "MLOPS_STACK_OUTPUTS"
VAR_MODEL_NAME: Final = "MLOPS_MODEL_NAME"
VAR_EXPERIMENT: Final = "MLOPS_EXPERIMENT"
VAR_TRACKING_URI: Final = "MLOPS_TRACKING_URI"
VAR_REGION: Final = "MLOPS_REGION"
VAR_SERVE_HOST: Final = "MLOPS_SERVE_HOST"
VAR_SERVE_PORT: Final = "MLOPS_SERVE_PORT"
VAR_SERVE_DRAIN_GRACE_S: Final = "MLOPS_SERVE_DRAIN_GRACE_S"
VAR_SERVE_MODEL_NAME: Final = "MLOPS_SERVE_MODEL_NAME"
VAR_SERVE_TRACKING_URI: Final = "MLOPS_SERVE_TRACKING_URI"
VAR_SERVE_CAPTURE_BUCKET: Final = "MLOPS_SERVE_CAPTURE_BUCKET"


def bucket_variable(role: str) -> str:
    """`MLOPS_RAW_BUCKET`: the variable a job definition passes a data bucket's name in."""
    return f"{ENV_PREFIX}{OUTPUT_BUCKETS[role].upper()}"


# The Batch jobs, one job definition each (`<base>-training-<job>`), named as the job
# modules are (`python -m training_jobs.<job>`); the pipeline runs the first four in order.
JOB_PREPARE: Final = "prepare"
JOB_TRAIN: Final = "train"
JOB_EVALUATE: Final = "evaluate"
JOB_REGISTER: Final = "register"
JOB_DRIFT: Final = "drift"
PIPELINE_JOBS: Final = (JOB_PREPARE, JOB_TRAIN, JOB_EVALUATE, JOB_REGISTER)
BATCH_JOBS: Final = (*PIPELINE_JOBS, JOB_DRIFT)

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


# The drift job's own settings are `MLOPS_DRIFT_<FIELD>`; like every job it also reads the
# platform-wide `MLOPS_<FIELD>` names the job definitions set (training_jobs/common.py).
DRIFT_ENV_PREFIX: Final = "MLOPS_DRIFT_"
# Job modules without a job definition of their own (`python -m training_jobs.<module>`): the
# model server, the four pipeline steps in one process (the local loop), and the probe
# `mlops verify` submits on the prepare job definition.
MODULE_SERVE: Final = "serve"
MODULE_LIFECYCLE: Final = "lifecycle"
MODULE_VERIFY: Final = "verify"
# The dataset the jobs prepare, train on and monitor unless told otherwise.
DEFAULT_DATASET: Final = "churn"

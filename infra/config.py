"""The one seam between stack configuration and the program.

Everything under the `mlops:` namespace of `Pulumi.<stack>.yaml` is parsed here, once, into
a frozen pydantic model before any resource is declared. Defaults are stated only here.
Each section is validated on its own and cross-field rules run on what parsed, so a bad
stack file yields one error listing *every* bad field by dotted path, with the value given
and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infra.policy.exceptions import PolicyException
from training_jobs import contract

NAMESPACE = "mlops"

# contract.ENVIRONMENTS, spelled as a Literal for pydantic (tests/contract checks they agree).
Environment = Literal["dev", "staging", "prod", "local", "ephemeral"]

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Autonamed resources get "-" + 7 random characters appended; S3 allows 63 in all.
BUCKET_NAME_MAX = 63
AUTONAME_SUFFIX_LEN = 8
# The longest role suffix a bucket's logical name gets (see infra/components/datalake.py).
LONGEST_BUCKET_ROLE = "access-logs"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
_INSTANCE_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _check_log_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise ValueError(f"CloudWatch Logs accepts only these retention periods: {allowed}")
    return days


def _check_instance_type(value: str) -> str:
    if not _INSTANCE_TYPE_RE.match(value):
        raise ValueError("expected an EC2 instance type such as 'm6i.large'")
    return value


def _check_cpu(value: str) -> str:
    if not re.match(r"^(\d+m|\d+(\.\d+)?)$", value):
        raise ValueError("expected a Kubernetes CPU quantity such as '500m' or '1'")
    return value


def _check_memory(value: str) -> str:
    if not re.match(r"^\d+(Mi|Gi)$", value):
        raise ValueError("expected a Kubernetes memory quantity such as '512Mi' or '2Gi'")
    return value


LogRetentionDays = Annotated[int, AfterValidator(_check_log_retention)]
InstanceType = Annotated[str, AfterValidator(_check_instance_type)]


class _Section(BaseModel):
    """Frozen, and unknown keys are errors: a typo must not be silently ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class NetworkConfig(_Section):
    vpc_cidr: ipaddress.IPv4Network = Field(
        ipaddress.IPv4Network("10.40.0.0/16"),
        description="VPC address range; a private (RFC 1918) block between /16 and /24.",
    )
    az_count: int = Field(2, ge=1, le=6, description="Availability zones to spread subnets over.")
    availability_zones: tuple[str, ...] = Field(
        (),
        description="Explicit AZ names (e.g. us-east-1a); empty means the first az_count "
        "available zones of the region.",
    )
    nat_mode: Literal["none", "single", "per_az"] = Field(
        "single",
        description="Egress for private subnets: none, one shared NAT gateway (cheaper), or one "
        "per AZ (survives an AZ outage).",
    )
    private_subnet_prefix: int = Field(
        19, ge=16, le=28, description="Prefix length of each private subnet (pods and jobs)."
    )
    public_subnet_prefix: int = Field(
        24, ge=16, le=28, description="Prefix length of each public subnet (load balancers, NAT)."
    )
    interface_endpoints: tuple[Literal["ecr.api", "ecr.dkr", "sts", "logs"], ...] = Field(
        ("ecr.api", "ecr.dkr", "sts", "logs"),
        description="VPC interface endpoints to create; each costs ~$7/month per AZ.",
    )
    flow_logs: bool = Field(True, description="Record VPC flow logs to CloudWatch Logs.")
    flow_logs_retention_days: LogRetentionDays = Field(
        90, description="Retention of the flow-log group, in days."
    )

    @field_validator("vpc_cidr")
    @classmethod
    def _private_block(cls, value: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not value.is_private or not 16 <= value.prefixlen <= 24:
            raise ValueError("must be a private (RFC 1918) block between /16 and /24")
        return value


class StorageConfig(_Section):
    versioning: bool = Field(True, description="Object versioning on every data bucket.")
    force_destroy: bool = Field(
        False,
        description="Let `pulumi destroy` delete non-empty buckets. Never in staging/prod; "
        "always on for ephemeral stacks.",
    )
    noncurrent_version_expiration_days: int = Field(
        90, ge=1, le=3650, description="Days before superseded object versions are deleted."
    )
    infrequent_access_transition_days: int = Field(
        30, ge=30, le=3650, description="Days before objects move to STANDARD_IA (AWS minimum 30)."
    )
    abort_incomplete_multipart_days: int = Field(
        7, ge=1, le=365, description="Days before incomplete multipart uploads are aborted."
    )
    access_log_retention_days: int = Field(
        365, ge=1, le=3650, description="Days S3 server access logs are kept."
    )
    kms_deletion_window_days: int = Field(
        30, ge=7, le=30, description="Waiting period before a scheduled KMS key deletion."
    )


class RegistryConfig(_Section):
    keep_last_images: int = Field(
        30, ge=1, le=1000, description="Images kept per repository; older ones expire."
    )
    untagged_expiry_days: int = Field(
        7, ge=1, le=365, description="Days before untagged images expire."
    )
    ephemeral_image_expiry_days: int = Field(
        14,
        ge=1,
        le=365,
        description="Days before images pushed by per-PR stacks (tags `pr-<n>-...`) expire; "
        "`mlops sweep` removes them at teardown already.",
    )
    force_delete: bool = Field(
        False, description="Let `pulumi destroy` delete repositories that still hold images."
    )


_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
ImageName = Literal["jobs", "tracking", "server"]


class ImagesConfig(_Section):
    build: bool = Field(
        True,
        description="Build the jobs, tracking and server images from this repository and push "
        "them in `pulumi up` (docker-build provider: needs a Docker engine with BuildKit, or a "
        "remote builder, where `pulumi up` runs). false: your pipeline pushes them and "
        "`digests` says which to run.",
    )
    digests: dict[ImageName, str] = Field(
        default_factory=dict,
        description="When build is false: the sha256 digest of each image your pipeline pushed "
        "to the stack's repositories (ephemeral stacks: the base stack's), e.g. "
        "{jobs: 'sha256:...'}; every workload runs `<repository>@<digest>`.",
    )
    registry: str | None = Field(
        None,
        description="Push to this registry (host[:port], e.g. a local k3d registry) instead of "
        "the stack's ECR repositories; images are named `<registry>/mlops-<image>`.",
    )

    @field_validator("digests")
    @classmethod
    def _digests(cls, value: dict[str, str]) -> dict[str, str]:
        for image, digest in value.items():
            if not _DIGEST_RE.match(digest):
                raise ValueError(
                    f"{image}: {digest!r} is not an image digest; expected 'sha256:' and 64 "
                    "lowercase hex characters (a tag cannot pin what runs)"
                )
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[a-z0-9.-]+(:\d+)?$", value):
            raise ValueError("expected a registry host[:port] such as 'localhost:5001'")
        return value


class TrainingConfig(_Section):
    model_name: str = Field("churn", description="Registered model name the pipeline trains.")
    instance_types: tuple[InstanceType, ...] = Field(
        ("m6i.large", "m6i.xlarge", "m5.large", "m5.xlarge"),
        min_length=1,
        description="Instance types of the CPU compute environment (several improve spot odds).",
    )
    max_vcpus: int = Field(64, ge=1, le=10_000, description="Upper bound of the CPU environment.")
    spot: bool = Field(True, description="Run CPU jobs on spot capacity.")
    on_demand_fallback: bool = Field(
        True, description="Queue also feeds an on-demand environment when spot is short."
    )
    job_vcpus: float = Field(1.0, gt=0, le=96, description="vCPUs per job.")
    job_memory_mib: int = Field(4096, ge=512, le=786_432, description="Memory per job, MiB.")
    job_timeout_minutes: int = Field(120, ge=1, le=14 * 24 * 60, description="Job time limit.")
    job_attempts: int = Field(
        3, ge=1, le=10, description="Attempts per job; retries only on spot interruption."
    )
    log_retention_days: LogRetentionDays = Field(30, description="Job log retention, in days.")
    schedule: str | None = Field(
        None,
        description="EventBridge schedule for the retrain pipeline, e.g. 'rate(7 days)' or "
        "'cron(0 3 ? * MON *)'; null for none.",
    )

    drift_schedule: str | None = Field(
        "rate(1 day)",
        description="EventBridge Scheduler expression for the drift job (it publishes the "
        "MaxDriftScore the drift alarm, and so retraining, depends on); null for none.",
    )

    @field_validator("schedule", "drift_schedule")
    @classmethod
    def _schedule_expression(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(rate|cron)\(.+\)$", value):
            raise ValueError("expected 'rate(<n> <unit>)' or 'cron(<6 fields>)'")
        return value


class NodeGroupConfig(_Section):
    name: str = Field(description="Node group role name: system, serving or gpu.")
    instance_types: tuple[InstanceType, ...] = Field(min_length=1)
    min_size: int = Field(ge=0, le=450)
    desired_size: int = Field(ge=0, le=450)
    max_size: int = Field(ge=1, le=450)
    disk_size_gib: int = Field(50, ge=20, le=16_384)
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value) or len(value) > 20:
            raise ValueError("lowercase letters, digits and '-', at most 20 characters")
        return value

    @model_validator(mode="after")
    def _sizes(self) -> NodeGroupConfig:
        if not self.min_size <= self.desired_size <= self.max_size:
            raise ValueError(
                f"need min_size <= desired_size <= max_size, got "
                f"{self.min_size} <= {self.desired_size} <= {self.max_size}"
            )
        return self


def _default_node_groups() -> tuple[NodeGroupConfig, ...]:
    return (
        NodeGroupConfig(
            name="system", instance_types=("m6i.large",), min_size=2, desired_size=2, max_size=3
        ),
        NodeGroupConfig(
            name="serving", instance_types=("m6i.xlarge",), min_size=1, desired_size=2, max_size=6
        ),
    )


# Versions for Kubernetes 1.36 (`aws eks describe-addon-versions --kubernetes-version 1.36`);
# the support calendar (infra/planning/support.py) dates the Kubernetes version itself.
DEFAULT_KUBERNETES_VERSION = "1.36"
DEFAULT_ADDON_VERSIONS: dict[str, str] = {
    "vpc-cni": "v1.22.4-eksbuild.3",
    "coredns": "v1.14.3-eksbuild.23",
    "kube-proxy": "v1.36.0-eksbuild.25",
    "eks-pod-identity-agent": "v1.3.10-eksbuild.3",
    "aws-ebs-csi-driver": "v1.66.0-eksbuild.1",
    # The HPA's source of CPU metrics.
    "metrics-server": "v0.9.0-eksbuild.11",
}


class DeployerConfig(_Section):
    """Where `pulumi up` runs, so the Kubernetes API endpoint admits it (and nothing else)."""

    location: Literal["public", "in_vpc"] = Field(
        "public",
        description="public: the deployer reaches the API over the internet from "
        "public_cidrs (e.g. a self-hosted runner's NAT address); in_vpc: it runs inside the "
        "VPC or a connected network (a runner or CodeBuild in a private subnet) and the "
        "endpoint is private only.",
    )
    public_cidrs: tuple[ipaddress.IPv4Network, ...] = Field(
        (),
        max_length=40,
        description="location public: the deployer's egress CIDRs (EKS allows at most 40); "
        "never the whole internet in prod.",
    )
    in_vpc_cidrs: tuple[ipaddress.IPv4Network, ...] = Field(
        (),
        description="location in_vpc: the CIDRs the deployer connects from (a runner subnet); "
        "the cluster security group admits HTTPS from them.",
    )


class ServingConfig(_Section):
    enabled: bool = Field(True, description="Run MLflow and the model server on a cluster.")
    cluster: Literal["eks", "existing"] = Field(
        "eks",
        description="eks: build the EKS cluster; existing: put the workloads on the "
        "Kubernetes context kube_context (the local stack: a kind or k3d cluster beside the "
        "emulator). An existing cluster has no Pod Identity: service accounts name their "
        "role in the eks.amazonaws.com/role-arn annotation.",
    )
    kube_context: str | None = Field(
        None, description="cluster existing: the kubeconfig context `pulumi up` deploys to."
    )
    kubernetes_version: str = Field(
        DEFAULT_KUBERNETES_VERSION,
        description="Pinned EKS Kubernetes version; must be in standard support on the day "
        "the plan is made (see `mlops policy`, MLOPS-SUP-001).",
    )
    deployer: DeployerConfig = Field(
        default_factory=DeployerConfig,
        description="Where `pulumi up` runs: the API endpoint admits exactly that.",
    )
    expose: Literal["cluster", "internal_lb"] = Field(
        "internal_lb",
        description="How the model server is reached: cluster (a ClusterIP Service only) or "
        "internal_lb (also an internal NLB, open to the VPC's private subnets).",
    )
    node_groups: tuple[NodeGroupConfig, ...] = Field(
        default_factory=_default_node_groups, description="Managed node groups."
    )
    replicas: int = Field(2, ge=1, le=100, description="Model server replicas (HPA minimum).")
    max_replicas: int = Field(6, ge=1, le=500, description="Model server HPA maximum.")
    admin_principal_arns: tuple[str, ...] = Field(
        (),
        description="IAM role/user ARNs given cluster-admin through EKS access entries (the "
        "identity running `pulumi up` is admin as cluster creator).",
    )
    addon_versions: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_ADDON_VERSIONS),
        description="Pinned EKS add-on versions; every one of vpc-cni, coredns, kube-proxy, "
        "eks-pod-identity-agent, aws-ebs-csi-driver and metrics-server must be listed.",
    )
    server_cpu: str = Field("1", description="CPU request (and limit) per server pod.")
    server_memory: str = Field("2Gi", description="Memory request and limit per server pod.")
    drain_seconds: int = Field(
        20, ge=1, le=600, description="Time the server drains in-flight requests on SIGTERM."
    )

    @field_validator("server_cpu")
    @classmethod
    def _cpu(cls, value: str) -> str:
        return _check_cpu(value)

    @field_validator("server_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        return _check_memory(value)

    @field_validator("admin_principal_arns")
    @classmethod
    def _principals(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+$", arn):
                raise ValueError(f"{arn!r} is not an IAM role or user ARN")
        return value

    @field_validator("addon_versions")
    @classmethod
    def _addons(cls, value: dict[str, str]) -> dict[str, str]:
        missing = sorted(set(DEFAULT_ADDON_VERSIONS) - set(value))
        unknown = sorted(set(value) - set(DEFAULT_ADDON_VERSIONS))
        if missing or unknown:
            raise ValueError(
                f"missing {missing or 'none'}, unknown {unknown or 'none'}; list exactly "
                f"{', '.join(sorted(DEFAULT_ADDON_VERSIONS))}"
            )
        return value

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not re.match(r"^1\.[0-9]{2}$", value):
            raise ValueError("expected an EKS version such as '1.36'")
        return value


class MonitoringConfig(_Section):
    prometheus: bool = Field(
        True, description="kube-prometheus-stack, dashboards and rules on the cluster."
    )
    log_retention_days: LogRetentionDays = Field(
        90, description="Retention of platform log groups, in days."
    )
    alert_emails: tuple[str, ...] = Field((), description="Addresses subscribed to alerts.")
    budget_monthly_usd: float = Field(
        500.0, gt=0, le=10_000_000, description="Monthly AWS Budget for the stack, USD."
    )
    budget_alert_thresholds_pct: tuple[int, ...] = Field(
        (50, 80, 100), description="Budget percentages that send an alert."
    )
    prometheus_chart_version: str = Field(
        "88.5.3", description="Pinned kube-prometheus-stack Helm chart version."
    )
    prometheus_retention: str = Field("15d", description="Prometheus retention (e.g. 15d).")
    prometheus_storage_gib: int = Field(50, ge=5, le=16_384, description="Prometheus volume.")
    prometheus_cpu: str = Field("500m", description="Prometheus CPU request.")
    prometheus_memory: str = Field("2Gi", description="Prometheus memory request and limit.")
    latency_slo_p99_seconds: float = Field(
        0.25, gt=0, le=60, description="p99 latency objective of the model server."
    )
    error_ratio_threshold: float = Field(
        0.01, gt=0, lt=1, description="Share of 5xx answers that pages."
    )
    drift_alarm_threshold: float = Field(
        contract.DRIFT_THRESHOLD_DEFAULT,
        gt=0,
        description="MaxDriftScore at which the drift alarm fires (and retraining starts).",
    )

    @field_validator("prometheus_retention")
    @classmethod
    def _retention(cls, value: str) -> str:
        if not re.match(r"^\d+[hdwy]$", value):
            raise ValueError("expected a Prometheus duration such as '15d' or '72h'")
        return value

    @field_validator("alert_emails")
    @classmethod
    def _emails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            if not _EMAIL_RE.match(address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return value

    @field_validator("budget_alert_thresholds_pct")
    @classmethod
    def _thresholds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= v <= 1000 for v in value):
            raise ValueError("each threshold must be between 1 and 1000 percent")
        return value


class TrackingConfig(_Section):
    database: Literal["in_cluster", "rds"] = Field(
        "in_cluster",
        description="MLflow backend: in-cluster Postgres (dev) or RDS PostgreSQL (staging/prod).",
    )
    db_instance_class: str = Field("db.t4g.small", description="RDS instance class.")
    db_allocated_storage_gib: int = Field(20, ge=20, le=65_536, description="RDS storage, GiB.")
    db_multi_az: bool = Field(False, description="RDS standby in a second AZ.")
    db_backup_retention_days: int = Field(7, ge=0, le=35, description="RDS backup retention.")
    db_deletion_protection: bool = Field(False, description="RDS deletion protection.")
    db_monitoring_interval_seconds: Literal[0, 1, 5, 10, 15, 30, 60] = Field(
        0, description="RDS enhanced monitoring interval; 0 turns it off."
    )
    db_engine_version: str = Field(
        "16",
        description="PostgreSQL major version; RDS creates the newest minor and upgrades "
        "minors itself (auto_minor_version_upgrade), and a major-only pin never diffs "
        "against them. A full version (e.g. '16.11') pins a minor.",
    )
    storage_gib: int = Field(
        10, ge=1, le=1000, description="Volume for the in-cluster (dev) MLflow database."
    )
    storage_class: str = Field(
        "gp3",
        description="StorageClass of that volume (gp3: the EKS cluster's, with the platform key).",
    )
    client_uri: str | None = Field(
        None,
        description="The URL Batch jobs reach MLflow at; default: its internal load "
        "balancer's. The local stack: http://127.0.0.1:5000 (the workloads share the host).",
    )
    workers: int = Field(
        1,
        ge=1,
        le=8,
        description="MLflow server worker processes (each ~290 MiB; see tracking.memory).",
    )
    cpu: str = Field("500m", description="CPU request of the MLflow server (limit: twice).")
    memory: str = Field(
        "1Gi",
        description="Memory request and limit of the MLflow server; at least 1.5 x (280 MiB "
        "+ 290 MiB per worker), its measured footprint.",
    )

    @field_validator("cpu")
    @classmethod
    def _tracking_cpu(cls, value: str) -> str:
        return _check_cpu(value)

    @field_validator("memory")
    @classmethod
    def _tracking_memory(cls, value: str) -> str:
        return _check_memory(value)

    @field_validator("db_instance_class")
    @classmethod
    def _instance_class(cls, value: str) -> str:
        if not re.match(r"^db\.[a-z0-9]+\.[a-z0-9]+$", value):
            raise ValueError("expected an RDS instance class such as 'db.t4g.small'")
        return value


class EphemeralConfig(_Section):
    base_stack: str = Field(
        "dev",
        description="Stack whose network, cluster, registry and tracking server an ephemeral "
        "stack reuses (StackReference name, e.g. 'acme/mlops-platform/dev').",
    )
    ttl_hours: int = Field(48, ge=1, le=24 * 14, description="Lifetime before the reaper acts.")
    expires_at: datetime | None = Field(
        None, description="ISO 8601 expiry; set by `mlops env up` from ttl_hours."
    )


class PlatformConfig(_Section):
    """Everything under `mlops:` plus the stack and region, validated."""

    stack: str
    region: str
    environment: Environment = Field(description="dev, staging, prod, local or ephemeral.")
    owner: str = Field(description="Team or person accountable for the stack (tag mlops:owner).")
    name_prefix: str = Field("mlops", description="Prefix of every logical resource name.")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    serving: ServingConfig = Field(default_factory=ServingConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    ephemeral: EphemeralConfig = Field(default_factory=EphemeralConfig)
    policy_exceptions: tuple[PolicyException, ...] = Field(
        (), description="Accepted policy findings, each with a reason (see `mlops policy`)."
    )

    @property
    def base_name(self) -> str:
        """Stem of every logical name: `<prefix>-<stack>`."""
        return f"{self.name_prefix}-{self.stack}"

    @property
    def is_guarded(self) -> bool:
        """Its data must survive a command (contract.GUARDED_ENVIRONMENTS)."""
        return self.environment in contract.GUARDED_ENVIRONMENTS

    @property
    def is_retained(self) -> bool:
        """Its stateful resources are protected and retained (contract.RETAINED_ENVIRONMENTS)."""
        return self.environment in contract.RETAINED_ENVIRONMENTS

    @property
    def is_ephemeral(self) -> bool:
        return self.environment == contract.ENV_EPHEMERAL

    @property
    def model_name(self) -> str:
        """The registered model (and MLflow experiment) the stack trains and serves. A per-PR
        stack gets its own, so it never moves its base stack's `champion` alias nor serves
        the base stack's model from a bucket it cannot read."""
        name = self.training.model_name
        return f"{name}-{self.stack}" if self.is_ephemeral else name

    @property
    def images_run(self) -> tuple[str, ...]:
        """The images this stack's workloads run: the jobs always; the model server where
        the stack serves; the tracking server where it runs its own MLflow."""
        if self.is_ephemeral:
            return (contract.IMAGE_JOBS, contract.IMAGE_SERVER)
        if self.serving.enabled:
            return contract.REPOSITORY_ROLES
        return (contract.IMAGE_JOBS,)

    @property
    def buckets_force_destroy(self) -> bool:
        # Ephemeral stacks must leave nothing behind; force_destroy only works when it was
        # recorded at creation, so it is on from the first `up`.
        return self.is_ephemeral or self.storage.force_destroy

    @property
    def registry_force_delete(self) -> bool:
        return self.is_ephemeral or self.registry.force_delete


# Top-level keys besides the sections; `stack` and `region` come from Pulumi, not `mlops:`.
_SCALAR_KEYS = ("environment", "owner", "name_prefix", "policy_exceptions")
SECTIONS: dict[str, type[_Section]] = {
    "network": NetworkConfig,
    "storage": StorageConfig,
    "registry": RegistryConfig,
    "images": ImagesConfig,
    "training": TrainingConfig,
    "serving": ServingConfig,
    "monitoring": MonitoringConfig,
    "tracking": TrackingConfig,
    "ephemeral": EphemeralConfig,
}


@dataclass(frozen=True)
class Issue:
    """One bad field: where, what was given, and what is allowed."""

    path: str
    value: Any
    message: str

    def render(self) -> str:
        shown = "(missing)" if self.value is _MISSING else json.dumps(self.value, default=str)
        return f"  {NAMESPACE}:{self.path} = {shown}\n      {self.message}"


_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "(missing)"})()


class ConfigError(Exception):
    """Stack configuration is invalid; `issues` lists every bad field."""

    def __init__(self, stack: str, issues: Iterable[Issue]) -> None:
        self.stack = stack
        self.issues = tuple(issues)
        lines = [f"stack '{stack}': {len(self.issues)} invalid setting(s) under '{NAMESPACE}:'"]
        lines += [issue.render() for issue in self.issues]
        super().__init__("\n".join(lines))


def _dotted(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _lookup(data: Any, loc: Iterable[int | str]) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return data


def _issues_from(prefix: tuple[str, ...], raw: Any, error: ValidationError) -> list[Issue]:
    issues = []
    for err in error.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown setting; check the spelling against Pulumi.yaml"
        elif err["type"] == "missing":
            message = "required setting is missing"
        elif err["type"] == "literal_error":
            message = message.replace("Input should be", "expected")
        issues.append(Issue(_dotted(prefix + loc), _lookup(raw, loc), message))
    return issues


def _decode(value: Any) -> Any:
    """Config values arrive as strings from the engine; objects and arrays as JSON."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# Settings that existed once: a stack file still naming one gets what to do instead.
REMOVED_SETTINGS: dict[tuple[str, str], str] = {
    ("training", "image_tag"): "removed: `pulumi up` builds the jobs image and every job "
    "definition runs it by digest; to run images built elsewhere set images.build: false and "
    "images.digests",
    ("serving", "server_image_tag"): "removed: `pulumi up` builds the server image and the "
    "Deployment runs it by digest; to run images built elsewhere set images.build: false and "
    "images.digests",
    ("serving", "public_access_cidrs"): "moved: give the deployer's egress CIDRs as "
    "serving.deployer.public_cidrs (location: public), or run `pulumi up` from inside the VPC "
    "(serving.deployer.location: in_vpc)",
    ("serving", "model_name"): "removed: the server serves the model the pipeline trains, "
    "training.model_name",
    **{
        ("training", key): "removed: no job definition ran on a GPU, so the GPU compute "
        "environment and its queue had no user; GPU inference runs on a serving node group "
        "(serving.node_groups, name: gpu)"
        for key in ("gpu_enabled", "gpu_instance_types", "gpu_max_vcpus")
    },
}


def _removed_settings(data: dict[str, Any]) -> list[Issue]:
    issues = []
    for (section, key), message in REMOVED_SETTINGS.items():
        values = data.get(section)
        if isinstance(values, dict) and key in values:
            values = dict(values)
            issues.append(Issue(f"{section}.{key}", values.pop(key), message))
            data[section] = values
    return issues


def parse(raw: Mapping[str, Any], *, stack: str, region: str) -> PlatformConfig:
    """Validate `raw` (keys without the `mlops:` prefix) or raise `ConfigError` listing all."""
    data = {key: _decode(value) for key, value in raw.items()}
    issues: list[Issue] = _removed_settings(data)
    known = set(_SCALAR_KEYS) | set(SECTIONS)
    for key in sorted(set(data) - known):
        allowed = ", ".join(sorted(known))
        issues.append(Issue(key, data[key], f"unknown setting; allowed keys are {allowed}"))

    sections: dict[str, _Section] = {}
    invalid: set[str] = set()  # dotted paths already reported, not to be re-reported below
    for key, model in SECTIONS.items():
        section_raw = data.get(key, {})
        if not isinstance(section_raw, dict):
            issues.append(Issue(key, section_raw, "expected a mapping of settings"))
            continue
        try:
            sections[key] = model.model_validate(section_raw)
        except ValidationError as exc:
            issues.extend(_issues_from((key,), section_raw, exc))
            # Keep checking the rest: the valid fields of this section, bad ones at their
            # defaults, so cross-field rules still report problems elsewhere.
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            invalid |= {f"{key}.{field}" for field in bad}
            lenient = _lenient(model, {k: v for k, v in section_raw.items() if k not in bad})
            if lenient is not None:
                sections[key] = lenient

    scalars = {key: data[key] for key in _SCALAR_KEYS if key in data}
    try:
        top = _TopLevel.model_validate({"stack": stack, **scalars})
    except ValidationError as exc:
        issues.extend(_issues_from((), scalars, exc))
        top = None

    if top is not None and len(sections) == len(SECTIONS):
        config = PlatformConfig(
            stack=stack, region=region, **top.model_dump(exclude={"stack"}), **sections
        )
        issues.extend(
            issue
            for issue in cross_field_issues(config)
            if not any(issue.path.startswith(path) for path in invalid)
        )
        if not issues:
            return config
    raise ConfigError(stack, issues)


def _lenient(model: type[_Section], raw: dict[str, Any]) -> _Section | None:
    try:
        return model.model_validate(raw)
    except ValidationError:
        return None


class _TopLevel(_Section):
    stack: str
    environment: Environment
    owner: str
    name_prefix: str = "mlops"
    policy_exceptions: tuple[PolicyException, ...] = ()

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str) -> str:
        if not _OWNER_RE.match(value):
            raise ValueError(
                "1-128 characters: letters, digits and . _ @ + - (an AWS tag value), "
                "starting with a letter or digit"
            )
        return value

    @field_validator("name_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _NAME_RE.match(value) or len(value) > 20:
            raise ValueError(
                "lowercase letters, digits and '-', starting with a letter, at most 20 characters "
                "(it becomes part of S3 bucket names)"
            )
        return value


# Cross-field rules: pure functions of the parsed config, each yielding issues.
Rule = Callable[[PlatformConfig], Iterable[Issue]]


def _rule_guarded_environments(c: PlatformConfig) -> Iterable[Issue]:
    if not c.is_guarded:
        return
    if c.storage.force_destroy:
        yield Issue(
            "storage.force_destroy",
            True,
            f"{c.environment} may never set force_destroy: it lets `pulumi destroy` delete "
            "buckets that still hold data",
        )
    if not c.storage.versioning:
        yield Issue(
            "storage.versioning",
            False,
            f"{c.environment} may never disable versioning: overwritten or deleted objects "
            "could not be recovered",
        )
    if c.registry.force_delete:
        yield Issue(
            "registry.force_delete",
            True,
            f"{c.environment} may never set force_delete on image repositories",
        )
    if c.tracking.database != "rds":
        yield Issue(
            "tracking.database",
            c.tracking.database,
            f"{c.environment} needs 'rds': an in-cluster database does not survive the cluster",
        )


def _rule_prod_availability(c: PlatformConfig) -> Iterable[Issue]:
    if c.environment != contract.ENV_PROD:
        return
    if c.network.az_count < 2:
        yield Issue("network.az_count", c.network.az_count, "prod needs at least 2 AZs")
    if c.network.nat_mode != "per_az":
        yield Issue(
            "network.nat_mode",
            c.network.nat_mode,
            "prod needs 'per_az': with a single NAT gateway one AZ outage cuts every "
            "private subnet off",
        )
    if not c.tracking.db_deletion_protection:
        yield Issue("tracking.db_deletion_protection", False, "prod needs deletion protection")
    for i, cidr in enumerate(c.serving.deployer.public_cidrs):
        if cidr.prefixlen == 0:
            yield Issue(
                f"serving.deployer.public_cidrs[{i}]",
                str(cidr),
                "prod may not open the cluster API to the whole internet",
            )


def _rule_nat_vs_azs(c: PlatformConfig) -> Iterable[Issue]:
    n = c.network
    if n.nat_mode == "per_az" and n.az_count < 2:
        yield Issue(
            "network.nat_mode",
            n.nat_mode,
            f"'per_az' with az_count={n.az_count} is one NAT gateway; use 'single'",
        )
    if n.availability_zones and len(n.availability_zones) != n.az_count:
        yield Issue(
            "network.availability_zones",
            list(n.availability_zones),
            f"lists {len(n.availability_zones)} zone(s) but az_count is {n.az_count}",
        )
    for i, zone in enumerate(n.availability_zones):
        if not zone.startswith(c.region):
            yield Issue(
                f"network.availability_zones[{i}]",
                zone,
                f"is not a zone of region {c.region!r} (expected e.g. {c.region}a)",
            )


def _rule_subnets_fit(c: PlatformConfig) -> Iterable[Issue]:
    from infra.planning.network import SubnetLayoutError, plan_subnets

    n = c.network
    try:
        plan_subnets(n.vpc_cidr, n.az_count, n.private_subnet_prefix, n.public_subnet_prefix)
    except SubnetLayoutError as exc:
        yield Issue("network.vpc_cidr", str(n.vpc_cidr), str(exc))


_RFC1918 = tuple(
    ipaddress.IPv4Network(block) for block in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)


def _rule_existing_cluster(c: PlatformConfig) -> Iterable[Issue]:
    s = c.serving
    if s.cluster == "existing" and not s.kube_context:
        yield Issue(
            "serving.kube_context", None, "cluster existing needs the kubeconfig context to use"
        )
    if s.cluster == "eks" and s.kube_context:
        yield Issue(
            "serving.kube_context",
            s.kube_context,
            "used only with cluster: existing (an EKS cluster's provider is built from it)",
        )


def _rule_deployer(c: PlatformConfig) -> Iterable[Issue]:
    """The deployer must be able to reach the Kubernetes API, or no workload is ever created
    (every Kubernetes resource of the first `pulumi up` would time out)."""
    if not c.serving.enabled or c.is_ephemeral or c.serving.cluster != "eks":
        return
    d = c.serving.deployer
    if d.location == "public" and not d.public_cidrs:
        yield Issue(
            "serving.deployer.public_cidrs",
            [],
            "the deployer runs outside the VPC (location: public), so the API endpoint must "
            "admit its egress CIDRs; list them, or run `pulumi up` inside the VPC with "
            "location: in_vpc",
        )
    if d.location == "in_vpc" and not d.in_vpc_cidrs:
        yield Issue(
            "serving.deployer.in_vpc_cidrs",
            [],
            "with location: in_vpc the API endpoint is private: list the CIDRs the deployer "
            "connects from (its runner subnet) so the cluster security group admits them",
        )
    if d.location == "public" and d.in_vpc_cidrs:
        yield Issue(
            "serving.deployer.in_vpc_cidrs",
            [str(x) for x in d.in_vpc_cidrs],
            "used only with location: in_vpc",
        )
    if d.location == "in_vpc" and d.public_cidrs:
        yield Issue(
            "serving.deployer.public_cidrs",
            [str(x) for x in d.public_cidrs],
            "used only with location: public (an in-VPC deployer needs no public endpoint)",
        )
    for field_name in ("public_cidrs", "in_vpc_cidrs"):
        seen: list[ipaddress.IPv4Network] = []
        for i, cidr in enumerate(getattr(d, field_name)):
            if field_name == "public_cidrs" and any(cidr.subnet_of(r) for r in _RFC1918):
                yield Issue(
                    f"serving.deployer.public_cidrs[{i}]",
                    str(cidr),
                    "a private range never reaches the public endpoint; use in_vpc_cidrs",
                )
            for other in seen:
                if cidr.overlaps(other):
                    yield Issue(
                        f"serving.deployer.{field_name}[{i}]",
                        str(cidr),
                        f"overlaps {other}; list each range once",
                    )
            seen.append(cidr)


def _rule_names_fit(c: PlatformConfig) -> Iterable[Issue]:
    if not _NAME_RE.match(c.stack):
        yield Issue(
            "(stack name)",
            c.stack,
            "stack names become part of S3 bucket names: use lowercase letters, digits and '-'",
        )
    longest = len(f"{c.base_name}-{LONGEST_BUCKET_ROLE}") + AUTONAME_SUFFIX_LEN
    if longest > BUCKET_NAME_MAX:
        yield Issue(
            "name_prefix",
            c.name_prefix,
            f"'{c.base_name}-{LONGEST_BUCKET_ROLE}' plus Pulumi's 8-character suffix is "
            f"{longest} characters; S3 bucket names allow {BUCKET_NAME_MAX}: shorten the "
            "prefix or the stack name",
        )


def _rule_node_groups(c: PlatformConfig) -> Iterable[Issue]:
    names = [g.name for g in c.serving.node_groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            yield Issue(f"serving.node_groups[{i}].name", name, "node group names must be unique")
    if c.serving.enabled and "system" not in names:
        yield Issue(
            "serving.node_groups",
            names,
            "needs a group named 'system' for cluster add-ons",
        )
    if c.serving.max_replicas < c.serving.replicas:
        yield Issue(
            "serving.max_replicas",
            c.serving.max_replicas,
            f"must be at least serving.replicas ({c.serving.replicas})",
        )


def _rule_ephemeral(c: PlatformConfig) -> Iterable[Issue]:
    if c.is_ephemeral and c.ephemeral.base_stack.rsplit("/", 1)[-1] == c.stack:
        yield Issue("ephemeral.base_stack", c.ephemeral.base_stack, "cannot reference itself")
    if c.ephemeral.expires_at is not None and not c.is_ephemeral:
        yield Issue(
            "ephemeral.expires_at",
            c.ephemeral.expires_at.isoformat(),
            "only ephemeral stacks expire; remove it or set environment: ephemeral",
        )


def _rule_supported_versions(c: PlatformConfig) -> Iterable[Issue]:
    """Pins past their support window (infra/policy/support.py, dated): AWS refuses to
    create them, or bills extended support. MLOPS-SUP-001 checks the same on a plan."""
    from infra.policy import support

    day = support.today()
    if c.serving.enabled and not c.is_ephemeral and c.serving.cluster == "eks":
        problem = support.eks_problem(c.serving.kubernetes_version, day)
        if problem:
            yield Issue("serving.kubernetes_version", c.serving.kubernetes_version, problem)
        chart = support.chart_problem(
            "kube-prometheus-stack", c.monitoring.prometheus_chart_version, day
        )
        if chart:
            yield Issue(
                "monitoring.prometheus_chart_version", c.monitoring.prometheus_chart_version, chart
            )
    if c.tracking.database == "rds":
        problem = support.postgres_problem(c.tracking.db_engine_version, day)
        if problem:
            yield Issue("tracking.db_engine_version", c.tracking.db_engine_version, problem)


def _rule_tracking_fits(c: PlatformConfig) -> Iterable[Issue]:
    from infra.planning.k8s import memory_mib, mlflow_memory_floor_mib

    t = c.tracking
    floor = mlflow_memory_floor_mib(t.workers)
    if memory_mib(t.memory) < floor:
        yield Issue(
            "tracking.memory",
            t.memory,
            f"MLflow with {t.workers} worker(s) needs at least {floor}Mi (measured footprint "
            "with headroom); the kernel would kill it at this limit",
        )


def _rule_images(c: PlatformConfig) -> Iterable[Issue]:
    images = c.images
    if images.build and images.digests:
        yield Issue(
            "images.digests",
            dict(images.digests),
            "digests are used only with images.build: false (pulumi up builds the images "
            "otherwise); remove them or set build: false",
        )
        return
    if images.build:
        return
    missing = [name for name in c.images_run if name not in images.digests]
    if missing:
        yield Issue(
            "images.digests",
            dict(images.digests),
            f"images.build is false, so this stack needs the digest of every image it runs; "
            f"missing {', '.join(missing)} (it runs {', '.join(c.images_run)})",
        )
    unused = sorted(set(images.digests) - set(c.images_run))
    if unused:
        yield Issue(
            "images.digests",
            dict(images.digests),
            f"this stack runs no {', '.join(unused)} image (it runs {', '.join(c.images_run)})",
        )


CROSS_FIELD_RULES: tuple[Rule, ...] = (
    _rule_guarded_environments,
    _rule_prod_availability,
    _rule_nat_vs_azs,
    _rule_subnets_fit,
    _rule_deployer,
    _rule_existing_cluster,
    _rule_names_fit,
    _rule_node_groups,
    _rule_ephemeral,
    _rule_images,
    _rule_tracking_fits,
    _rule_supported_versions,
)


def cross_field_issues(config: PlatformConfig) -> list[Issue]:
    return [issue for rule in CROSS_FIELD_RULES for issue in rule(config)]


def from_pulumi() -> PlatformConfig:
    """Read the running stack's `mlops:` config (and `aws:region`) once."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    prefix = f"{NAMESPACE}:"
    merged = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    raw = {k.removeprefix(prefix): v for k, v in merged.items() if k.startswith(prefix)}
    region = pulumi.Config("aws").get("region") or contract.DEFAULT_REGION
    return parse(raw, stack=pulumi.get_stack(), region=region)


def reference() -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) for every setting, for Pulumi.yaml and the README."""
    rows: list[tuple[str, str, str, str]] = []
    for name in _TopLevel.model_fields:
        if name == "stack":
            continue
        info = PlatformConfig.model_fields[name]
        default = "(required)" if info.is_required() else json.dumps(info.default)
        rows.append((name, _type_name(info.annotation), default, info.description or ""))
    for section, model in SECTIONS.items():
        for name, info in model.model_fields.items():
            default = info.get_default(call_default_factory=True)
            rows.append(
                (
                    f"{section}.{name}",
                    _type_name(info.annotation),
                    json.dumps(_plain(default), default=str),
                    info.description or "",
                )
            )
    return rows


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _type_name(annotation: Any) -> str:
    text = repr(annotation) if not isinstance(annotation, type) else annotation.__name__
    text = re.sub(r"typing\.|ipaddress\.|infra\.(?:\w+\.)+|datetime\.", "", text)
    text = re.sub(r"Annotated\[(\w+), [^\]]*\]", r"\1", text)
    return text.replace("NoneType", "None")

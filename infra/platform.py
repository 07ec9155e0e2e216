"""The one place that composes the platform's components for a stack.

A full stack (dev, staging, prod, local) builds its own foundation: network, registry,
compute environments, cluster and tracking server. An ephemeral stack (`pr-<n>`) reads that
foundation from its base stack through a StackReference and creates only what is its own:
buckets and key, a job queue on the shared compute, its pipeline, its alarms, and a
namespace with the model server on the shared cluster.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.components.alerts import Alerts, AlertsArgs
from infra.components.datalake import DataLake, DataLakeArgs
from infra.components.images import ImageBuild, Images, ImagesArgs
from infra.components.model_server import SERVER_NAME, ModelServer, ModelServerArgs
from infra.components.monitoring import ClusterMonitoringArgs, Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.pipeline import Pipeline, PipelineArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.serving import NodeGroupSpec, ServingCluster, ServingClusterArgs
from infra.components.tracking import (
    MLFLOW_ADMIN_USER,
    MLFLOW_NAME,
    Tracking,
    TrackingArgs,
    TrackingClient,
)
from infra.components.training import TrainingCompute, TrainingComputeArgs
from infra.config import PlatformConfig
from infra.planning import k8s as manifests
from infra.planning.images import IMAGES, build_digest, image_labels
from infra.planning.pipeline import drift_alarm_name
from infra.planning.tags import platform_tags
from infra.sources import REPOSITORY_ROOT, image_source, program_relative
from training_jobs import contract

SERVING_NAMESPACE = "mlops-serving"
TRACKING_NAMESPACE = "mlflow"

# The Secrets Manager secret with the MLflow client password (Batch jobs read it).
OUTPUT_TRACKING_SECRET = "tracking_credentials_secret_arn"
# What an ephemeral stack needs from its base stack's outputs.
FOUNDATION_OUTPUTS = (
    "vpc_id",
    "private_subnet_ids",
    contract.OUTPUT_REPOSITORIES[contract.IMAGE_JOBS],
    contract.OUTPUT_REPOSITORIES[contract.IMAGE_SERVER],
    "compute_environment_arns",
    "cluster_name",
    "cluster_endpoint",
    "cluster_certificate_authority",
    contract.OUTPUT_TRACKING_URI,
    OUTPUT_TRACKING_SECRET,
    contract.OUTPUT_KMS_KEY_ARN,
)


@dataclass(frozen=True)
class Foundation:
    """Network, images, compute and cluster a stack builds on: its own, or its base's."""

    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]
    # Image repositories by image: the stack's own, or its base stack's (ephemeral stacks
    # push their own builds there, under tags of their own).
    repository_urls: dict[str, pulumi.Input[str]]
    compute_environment_arns: pulumi.Input[list[str]] | None
    cluster_name: pulumi.Input[str] | None
    provider: k8s.Provider | None
    tracking: TrackingClient | None


@dataclass
class Platform:
    config: PlatformConfig
    datalake: DataLake
    alerts: Alerts
    foundation: Foundation
    images: Images
    training: TrainingCompute
    pipeline: Pipeline
    monitoring: Monitoring
    registry: Registry | None = None
    network: Network | None = None
    serving: ServingCluster | None = None
    tracking: Tracking | None = None
    model_server: ModelServer | None = None

    def outputs(self) -> dict[str, pulumi.Input[object]]:
        """The stack outputs: few, stable, snake_case; what jobs and operators need."""
        f = self.foundation
        out: dict[str, pulumi.Input[object]] = {
            contract.OUTPUT_REGION: self.config.region,
            "environment": self.config.environment,
            contract.OUTPUT_KMS_KEY_ARN: self.datalake.kms_key_arn,
            "alert_topic_arn": self.alerts.topic_arn,
            "job_queue_arn": self.training.job_queue_arn,
            "state_machine_arn": self.pipeline.state_machine_arn,
            "drift_alarm_name": self.monitoring.drift_alarm_name,
            # What `mlops verify` checks: the retrain rule, the drift schedule, and a job
            # submitted through the queue with one of the stack's definitions.
            "retrain_rule_name": self.pipeline.retrain_rule_name,
            "job_definition_arns": self.training.job_definition_arns,
        }
        if self.pipeline.drift_schedule_name is not None:
            out["drift_schedule_name"] = self.pipeline.drift_schedule_name
        for image, url in f.repository_urls.items():
            out[contract.OUTPUT_REPOSITORIES[image]] = url
        for image, ref in self.images.refs.items():
            out[contract.OUTPUT_IMAGES[image]] = ref
        for role, output_name in contract.OUTPUT_BUCKETS.items():
            out[output_name] = self.datalake.bucket_names[role]
        if f.tracking is not None:
            out[contract.OUTPUT_TRACKING_URI] = f.tracking.uri
        if self.model_server is not None:
            out["serving_namespace"] = self.model_server.namespace
            out["model_server_url"] = self.model_server.service_url
            if self.model_server.load_balancer_url is not None:
                out["model_server_endpoint"] = self.model_server.load_balancer_url
        if self.config.is_ephemeral:
            return out
        # What ephemeral stacks built on this one read (FOUNDATION_OUTPUTS).
        out["vpc_id"] = f.vpc_id
        out["private_subnet_ids"] = f.private_subnet_ids
        out["compute_environment_arns"] = self.training.compute_environment_arns
        if f.tracking is not None:
            out[OUTPUT_TRACKING_SECRET] = f.tracking.secret_arn
        if self.serving is not None:
            out["cluster_name"] = self.serving.cluster_name
            out["cluster_endpoint"] = self.serving.endpoint
            out["cluster_certificate_authority"] = self.serving.certificate_authority
        return out


def _availability_zones(config: PlatformConfig) -> pulumi.Input[list[str]]:
    if config.network.availability_zones:
        return list(config.network.availability_zones)
    count = config.network.az_count

    def first(names: list[str]) -> list[str]:
        if len(names) < count:
            raise ValueError(
                f"mlops:network.az_count is {count} but region {config.region} offers only "
                f"{len(names)} available zone(s): {', '.join(names)}"
            )
        return names[:count]

    return aws.get_availability_zones_output(state="available").names.apply(first)


def build(config: PlatformConfig) -> Platform:
    tags = platform_tags(
        stack=config.stack,
        environment=config.environment,
        owner=config.owner,
        expires_at=config.ephemeral.expires_at,
    )
    base = config.base_name
    protect = config.environment == "prod"
    account_id = aws.get_caller_identity_output().account_id
    storage = config.storage

    datalake = DataLake(
        f"{base}-datalake",
        DataLakeArgs(
            base_name=base,
            tags=tags,
            account_id=account_id,
            region=config.region,
            versioning=storage.versioning,
            force_destroy=config.buckets_force_destroy,
            noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
            infrequent_access_transition_days=storage.infrequent_access_transition_days,
            abort_incomplete_multipart_days=storage.abort_incomplete_multipart_days,
            access_log_retention_days=storage.access_log_retention_days,
            kms_deletion_window_days=storage.kms_deletion_window_days,
            protect=protect,
        ),
    )
    alerts = Alerts(
        f"{base}-alerts",
        AlertsArgs(
            base_name=base,
            tags=tags,
            kms_key_arn=datalake.kms_key_arn,
            account_id=account_id,
            emails=config.monitoring.alert_emails,
        ),
    )
    parts: dict[str, Any] = {}
    if config.is_ephemeral:
        foundation = _referenced_foundation(config)
    else:
        foundation = _own_foundation(config, tags, datalake, parts)

    images = _images(config, foundation, account_id)
    serving_cluster: ServingCluster | None = parts.get("serving")
    network: Network | None = parts.get("network")
    if foundation.provider is not None and network is not None:
        tracking = _tracking(
            config,
            tags,
            network,
            datalake,
            foundation,
            serving_cluster,
            images.refs[contract.IMAGE_TRACKING],
        )
        parts["tracking"] = tracking
        foundation = dataclasses.replace(foundation, tracking=tracking.client)
    t = config.training
    training = TrainingCompute(
        f"{base}-training",
        TrainingComputeArgs(
            base_name=base,
            tags=tags,
            vpc_id=foundation.vpc_id,
            subnet_ids=foundation.private_subnet_ids,
            kms_key_arn=datalake.kms_key_arn,
            bucket_names=datalake.bucket_names,
            bucket_arns=datalake.bucket_arns,
            image=images.refs[contract.IMAGE_JOBS],
            jobs_repository_arn=(
                None
                if config.images.registry
                else pulumi.Output.from_input(
                    foundation.repository_urls[contract.REPOSITORY_JOBS]
                ).apply(repository_arn)
            ),
            region=config.region,
            instance_types=t.instance_types,
            max_vcpus=t.max_vcpus,
            spot=t.spot,
            on_demand_fallback=t.on_demand_fallback,
            gpu_enabled=t.gpu_enabled,
            gpu_instance_types=t.gpu_instance_types,
            gpu_max_vcpus=t.gpu_max_vcpus,
            job_vcpus=t.job_vcpus,
            job_memory_mib=t.job_memory_mib,
            job_timeout_minutes=t.job_timeout_minutes,
            job_attempts=t.job_attempts,
            log_retention_days=t.log_retention_days,
            shared_compute_environment_arns=foundation.compute_environment_arns,
            tracking=foundation.tracking,
            model_name=config.model_name,
            vpc_cidr=str(config.network.vpc_cidr),
        ),
    )
    # The drift alarm belongs to monitoring; the pipeline's rule finds it by its name.
    drift_alarm_arn = account_id.apply(
        lambda account: (
            f"arn:aws:cloudwatch:{config.region}:{account}:alarm:{drift_alarm_name(base)}"
        )
    )
    pipeline = Pipeline(
        f"{base}-pipeline",
        PipelineArgs(
            base_name=base,
            tags=tags,
            region=config.region,
            account_id=account_id,
            job_queue_arn=training.job_queue_arn,
            job_definition_arns=training.job_definition_arns,
            models_bucket_name=datalake.bucket_names[contract.BUCKET_MODELS],
            models_bucket_arn=datalake.bucket_arns[contract.BUCKET_MODELS],
            model_name=config.model_name,
            kms_key_arn=datalake.kms_key_arn,
            alert_topic_arn=alerts.topic_arn,
            drift_alarm_arn=drift_alarm_arn,
            schedule=t.schedule,
            drift_schedule=t.drift_schedule,
            log_retention_days=config.monitoring.log_retention_days,
        ),
    )

    model_server = None
    if foundation.provider is not None:
        model_server = _model_server(
            config, tags, foundation, datalake, images.refs[contract.IMAGE_SERVER]
        )

    serving: ServingCluster | None = parts.get("serving")
    m = config.monitoring
    cluster_monitoring = None
    if serving is not None and model_server is not None and m.prometheus:
        cluster_monitoring = ClusterMonitoringArgs(
            provider=serving.provider,
            cluster_name=serving.cluster_name,
            server_namespace=model_server.namespace,
            server_name=SERVER_NAME,
            chart_version=m.prometheus_chart_version,
            retention=m.prometheus_retention,
            storage_gib=m.prometheus_storage_gib,
            cpu=m.prometheus_cpu,
            memory=m.prometheus_memory,
            latency_slo_p99_seconds=m.latency_slo_p99_seconds,
            error_ratio_threshold=m.error_ratio_threshold,
            server_namespace_resource=model_server.namespace_resource,
            kms_key_arn=datalake.kms_key_arn,
        )
    monitoring = Monitoring(
        f"{base}-monitoring",
        MonitoringArgs(
            base_name=base,
            stack=config.stack,
            tags=tags,
            region=config.region,
            model_name=config.model_name,
            alert_topic_arn=alerts.topic_arn,
            drift_threshold=m.drift_alarm_threshold,
            state_machine_arn=pipeline.state_machine_arn,
            job_queue_arn=training.job_queue_arn,
            budget_monthly_usd=m.budget_monthly_usd,
            budget_alert_thresholds_pct=m.budget_alert_thresholds_pct,
            # A dashboard costs $3/month: not worth it for a stack that lives two days.
            dashboard=not config.is_ephemeral,
            cluster=cluster_monitoring,
        ),
    )
    return Platform(
        config=config,
        datalake=datalake,
        alerts=alerts,
        foundation=foundation,
        images=images,
        training=training,
        pipeline=pipeline,
        monitoring=monitoring,
        model_server=model_server,
        **parts,
    )


def _images(
    config: PlatformConfig, foundation: Foundation, account_id: pulumi.Output[str]
) -> Images:
    """Build (or take by digest) every image the stack's workloads run."""
    wanted = config.images_run
    if not config.images.build:
        digests: dict[str, str] = {str(k): v for k, v in config.images.digests.items()}
        given: dict[str, pulumi.Input[str]] = {
            image: pulumi.Output.concat(foundation.repository_urls[image], "@", digests[image])
            for image in wanted
        }
        return Images(
            f"{config.base_name}-images",
            ImagesArgs(base_name=config.base_name, builds=(), registry_id=None, given=given),
        )
    builds = []
    for image in wanted:
        spec = IMAGES[image]
        source = image_source(spec)
        builds.append(
            ImageBuild(
                kind=image,
                repository_url=foundation.repository_urls[image],
                tag=contract.image_tag(
                    config.stack, build_digest(source.context_digest, build_args={})
                ),
                context=program_relative(REPOSITORY_ROOT),
                containerfile=program_relative(REPOSITORY_ROOT / spec.containerfile),
                labels=image_labels(spec, context=source.context_digest, revision=source.revision),
            )
        )
    return Images(
        f"{config.base_name}-images",
        ImagesArgs(
            base_name=config.base_name,
            builds=tuple(builds),
            registry_id=None if config.images.registry else account_id,
            given={},
        ),
    )


def repository_arn(repository_url: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<name>` → the repository's ARN."""
    host, _, name = repository_url.partition("/")
    account, _, _, region = host.split(".")[:4]
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


def _own_foundation(
    config: PlatformConfig, tags: dict[str, str], datalake: DataLake, parts: dict[str, Any]
) -> Foundation:
    base = config.base_name
    protect = config.environment == "prod"
    registry = None
    if config.images.registry:
        # Images go to the stack's own registry (e.g. a local k3d one): no ECR repositories.
        repository_urls: dict[str, pulumi.Input[str]] = {
            image: f"{config.images.registry}/mlops-{image}" for image in contract.REPOSITORY_ROLES
        }
    else:
        registry = Registry(
            f"{base}-registry",
            RegistryArgs(
                base_name=base,
                tags=tags,
                kms_key_arn=datalake.kms_key_arn,
                keep_last_images=config.registry.keep_last_images,
                untagged_expiry_days=config.registry.untagged_expiry_days,
                ephemeral_image_expiry_days=config.registry.ephemeral_image_expiry_days,
                force_delete=config.registry_force_delete,
                protect=protect,
            ),
        )
        repository_urls = dict(registry.repository_urls)
    net = config.network
    network = Network(
        f"{base}-network",
        NetworkArgs(
            base_name=base,
            tags=tags,
            region=config.region,
            vpc_cidr=net.vpc_cidr,
            availability_zones=_availability_zones(config),
            az_count=net.az_count,
            nat_mode=net.nat_mode,
            private_subnet_prefix=net.private_subnet_prefix,
            public_subnet_prefix=net.public_subnet_prefix,
            interface_endpoints=net.interface_endpoints,
            flow_logs=net.flow_logs,
            flow_logs_retention_days=net.flow_logs_retention_days,
            kms_key_arn=datalake.kms_key_arn,
        ),
    )
    parts.update(registry=registry, network=network)
    provider: k8s.Provider | None = None
    cluster_name: pulumi.Output[str] | None = None
    if config.serving.enabled and config.serving.cluster == "eks":
        serving = _serving_cluster(config, tags, network, datalake)
        parts.update(serving=serving)
        provider, cluster_name = serving.provider, serving.cluster_name
    elif config.serving.enabled:
        # A cluster of the user's (the local stack's kind or k3d): only its context.
        provider = k8s.Provider(
            f"{base}-k8s", context=config.serving.kube_context, enable_server_side_apply=True
        )
    return Foundation(
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        repository_urls=repository_urls,
        compute_environment_arns=None,
        cluster_name=cluster_name,
        provider=provider,
        # Set once the tracking server exists (it runs an image built after the registry).
        tracking=None,
    )


def _referenced_foundation(config: PlatformConfig) -> Foundation:
    base = config.base_name
    reference = pulumi.StackReference(f"{base}-base", stack_name=config.ephemeral.base_stack)

    def need(name: str) -> pulumi.Output[Any]:
        def check(value: Any) -> Any:
            if value is None:
                raise ValueError(
                    f"mlops:ephemeral.base_stack {config.ephemeral.base_stack!r} has no output "
                    f"{name!r}: deploy it with serving enabled first (needs "
                    f"{', '.join(FOUNDATION_OUTPUTS)})"
                )
            return value

        return reference.get_output(name).apply(check)

    kubeconfig = pulumi.Output.all(
        need("cluster_name"), need("cluster_endpoint"), need("cluster_certificate_authority")
    ).apply(
        lambda a: json.dumps(
            manifests.kubeconfig(
                cluster_name=a[0], endpoint=a[1], ca_data=a[2], region=config.region
            )
        )
    )
    provider = k8s.Provider(f"{base}-k8s", kubeconfig=kubeconfig, enable_server_side_apply=True)
    return Foundation(
        vpc_id=need("vpc_id"),
        private_subnet_ids=need("private_subnet_ids"),
        repository_urls={
            image: need(contract.OUTPUT_REPOSITORIES[image])
            for image in (contract.IMAGE_JOBS, contract.IMAGE_SERVER)
        },
        compute_environment_arns=need("compute_environment_arns"),
        cluster_name=need("cluster_name"),
        provider=provider,
        tracking=TrackingClient(
            uri=need(contract.OUTPUT_TRACKING_URI),
            username=MLFLOW_ADMIN_USER,
            # The deployer reads the base stack's client password once; the PR stack's
            # model server gets it through a Kubernetes Secret of its own namespace.
            password=pulumi.Output.secret(
                aws.secretsmanager.get_secret_version_output(
                    secret_id=need(OUTPUT_TRACKING_SECRET)
                ).secret_string
            ),
            secret_arn=need(OUTPUT_TRACKING_SECRET),
            secret_key_arn=need(contract.OUTPUT_KMS_KEY_ARN),
        ),
    )


def _serving_cluster(
    config: PlatformConfig, tags: dict[str, str], network: Network, datalake: DataLake
) -> ServingCluster:
    s = config.serving
    return ServingCluster(
        f"{config.base_name}-serving",
        ServingClusterArgs(
            base_name=config.base_name,
            tags=tags,
            region=config.region,
            kubernetes_version=s.kubernetes_version,
            subnet_ids=network.private_subnet_ids,
            kms_key_arn=datalake.kms_key_arn,
            deployer_location=s.deployer.location,
            deployer_public_cidrs=tuple(str(c) for c in s.deployer.public_cidrs),
            deployer_vpc_cidrs=tuple(str(c) for c in s.deployer.in_vpc_cidrs),
            node_groups=tuple(
                NodeGroupSpec(
                    name=g.name,
                    instance_types=g.instance_types,
                    min_size=g.min_size,
                    desired_size=g.desired_size,
                    max_size=g.max_size,
                    disk_size_gib=g.disk_size_gib,
                    capacity_type=g.capacity_type,
                )
                for g in s.node_groups
            ),
            addon_versions=s.addon_versions,
            admin_principal_arns=s.admin_principal_arns,
            log_retention_days=config.monitoring.log_retention_days,
            deletion_protection=config.environment == "prod",
        ),
    )


def _model_server(
    config: PlatformConfig,
    tags: dict[str, str],
    foundation: Foundation,
    datalake: DataLake,
    image: pulumi.Input[str],
) -> ModelServer:
    s = config.serving
    assert foundation.provider is not None
    # In the cluster, MLflow is reached by its Service name (also from ephemeral stacks,
    # which share the cluster); the load balancer address is for Batch jobs.
    tracking_uri = manifests.service_url(MLFLOW_NAME, TRACKING_NAMESPACE, manifests.MLFLOW_PORT)
    # Each ephemeral stack serves from a namespace of its own on the shared cluster.
    namespace = config.stack if config.is_ephemeral else SERVING_NAMESPACE
    return ModelServer(
        f"{config.base_name}-model-server",
        ModelServerArgs(
            base_name=config.base_name,
            tags=tags,
            provider=foundation.provider,
            cluster_name=foundation.cluster_name,
            namespace=namespace,
            image=image,
            tracking_username=foundation.tracking.username if foundation.tracking else None,
            tracking_password=foundation.tracking.password if foundation.tracking else None,
            env={
                "MLOPS_SERVE_MODEL_NAME": config.model_name,
                "MLOPS_SERVE_TRACKING_URI": tracking_uri,
                "MLOPS_SERVE_CAPTURE_BUCKET": datalake.bucket_names[contract.BUCKET_CAPTURES],
                "AWS_REGION": config.region,
            },
            replicas=s.replicas,
            max_replicas=s.max_replicas,
            cpu=s.server_cpu,
            memory=s.server_memory,
            drain_seconds=s.drain_seconds,
            models_bucket_arn=datalake.bucket_arns[contract.BUCKET_MODELS],
            captures_bucket_arn=datalake.bucket_arns[contract.BUCKET_CAPTURES],
            kms_key_arn=datalake.kms_key_arn,
            internal_lb_cidrs=(
                (str(config.network.vpc_cidr),) if s.expose == "internal_lb" else None
            ),
        ),
    )


def _tracking(
    config: PlatformConfig,
    tags: dict[str, str],
    network: Network,
    datalake: DataLake,
    foundation: Foundation,
    serving: ServingCluster | None,
    image: pulumi.Input[str],
) -> Tracking:
    t = config.tracking
    assert foundation.provider is not None
    return Tracking(
        f"{config.base_name}-tracking",
        TrackingArgs(
            base_name=config.base_name,
            tags=tags,
            region=config.region,
            namespace=TRACKING_NAMESPACE,
            provider=foundation.provider,
            cluster_name=foundation.cluster_name,
            cluster_security_group_id=serving.cluster_security_group_id if serving else None,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            # Batch jobs run in the private subnets.
            client_cidrs=network.private_subnet_cidrs,
            image=image,
            models_bucket_name=datalake.bucket_names[contract.BUCKET_MODELS],
            models_bucket_arn=datalake.bucket_arns[contract.BUCKET_MODELS],
            kms_key_arn=datalake.kms_key_arn,
            database=t.database,
            db_instance_class=t.db_instance_class,
            db_allocated_storage_gib=t.db_allocated_storage_gib,
            db_engine_version=t.db_engine_version,
            db_multi_az=t.db_multi_az,
            db_backup_retention_days=t.db_backup_retention_days,
            db_deletion_protection=t.db_deletion_protection,
            storage_gib=t.storage_gib,
            storage_class=t.storage_class,
            client_uri=t.client_uri,
            workers=t.workers,
            cpu=t.cpu,
            memory=t.memory,
            protect=config.environment == "prod",
            final_snapshot=config.is_guarded,
            db_monitoring_interval_seconds=t.db_monitoring_interval_seconds,
            log_retention_days=config.monitoring.log_retention_days,
        ),
    )

"""The one place that composes the platform's components for a stack.

A full stack (dev, staging, prod, local) builds its own foundation: network, registry,
compute environments, cluster and tracking server. An ephemeral stack (`pr-<n>`) reads that
foundation from its base stack through a StackReference and creates only what is its own:
buckets and key, a job queue on the shared compute, its pipeline, its alarms, and a
namespace with the model server on the shared cluster.

`build` calls one small builder per component, in dependency order. Each builder turns the
stack's config into that component's args, every value stated: the defaults live in
`infra.config` only.
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
from infra.components.model_server import (
    SERVER_NAME,
    SERVING_NAMESPACE,
    ModelServer,
    ModelServerArgs,
)
from infra.components.monitoring import (
    ClusterMonitoring,
    ClusterMonitoringArgs,
    Monitoring,
    MonitoringArgs,
)
from infra.components.network import Network, NetworkArgs
from infra.components.pipeline import Pipeline, PipelineArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.serving import NodeGroupSpec, ServingCluster, ServingClusterArgs
from infra.components.tracking import (
    IN_CLUSTER_URI,
    MLFLOW_ADMIN_USER,
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

# What an ephemeral stack reads from its base stack's outputs, besides the contract's.
OUTPUT_VPC_ID = "vpc_id"
OUTPUT_PRIVATE_SUBNET_IDS = "private_subnet_ids"
OUTPUT_COMPUTE_ENVIRONMENT_ARNS = "compute_environment_arns"
OUTPUT_CLUSTER_NAME = "cluster_name"
OUTPUT_CLUSTER_ENDPOINT = "cluster_endpoint"
OUTPUT_CLUSTER_CERTIFICATE_AUTHORITY = "cluster_certificate_authority"
# The Secrets Manager secret with the MLflow client password (Batch jobs read it).
OUTPUT_TRACKING_SECRET = "tracking_credentials_secret_arn"
FOUNDATION_OUTPUTS = (
    OUTPUT_VPC_ID,
    OUTPUT_PRIVATE_SUBNET_IDS,
    contract.OUTPUT_REPOSITORIES[contract.IMAGE_JOBS],
    contract.OUTPUT_REPOSITORIES[contract.IMAGE_SERVER],
    OUTPUT_COMPUTE_ENVIRONMENT_ARNS,
    OUTPUT_CLUSTER_NAME,
    OUTPUT_CLUSTER_ENDPOINT,
    OUTPUT_CLUSTER_CERTIFICATE_AUTHORITY,
    contract.OUTPUT_TRACKING_URI,
    OUTPUT_TRACKING_SECRET,
    contract.OUTPUT_KMS_KEY_ARN,
)


@dataclass(frozen=True)
class StackContext:
    """What every builder shares: the stack's config, the tags every resource carries, the
    stem of every logical name, and the account the stack deploys to."""

    config: PlatformConfig
    tags: dict[str, str]
    base_name: str
    account_id: pulumi.Output[str]

    @classmethod
    def of(cls, config: PlatformConfig) -> StackContext:
        return cls(
            config=config,
            tags=platform_tags(
                stack=config.stack,
                environment=config.environment,
                owner=config.owner,
                expires_at=config.ephemeral.expires_at,
            ),
            base_name=config.base_name,
            account_id=aws.get_caller_identity_output().account_id,
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


@dataclass(frozen=True)
class OwnFoundation:
    """The foundation a full stack builds for itself, and the components it is made of."""

    foundation: Foundation
    registry: Registry | None  # None: images go to the registry config names
    network: Network
    serving: ServingCluster | None  # None: no cluster, or the user's own


@dataclass(frozen=True)
class Platform:
    config: PlatformConfig
    foundation: Foundation
    datalake: DataLake
    alerts: Alerts
    registry: Registry | None
    network: Network | None
    serving: ServingCluster | None
    images: Images
    tracking: Tracking | None
    training: TrainingCompute
    pipeline: Pipeline
    model_server: ModelServer | None
    monitoring: Monitoring
    cluster_monitoring: ClusterMonitoring | None

    def outputs(self) -> dict[str, pulumi.Input[object]]:
        """The stack outputs: few, stable, snake_case; what jobs and operators need."""
        f = self.foundation
        out: dict[str, pulumi.Input[object]] = {
            contract.OUTPUT_REGION: self.config.region,
            contract.OUTPUT_ENVIRONMENT: self.config.environment,
            contract.OUTPUT_KMS_KEY_ARN: self.datalake.kms_key_arn,
            contract.OUTPUT_ALERT_TOPIC_ARN: self.alerts.topic_arn,
            contract.OUTPUT_JOB_QUEUE_ARN: self.training.job_queue_arn,
            contract.OUTPUT_STATE_MACHINE_ARN: self.pipeline.state_machine_arn,
            contract.OUTPUT_DRIFT_ALARM_NAME: self.monitoring.drift_alarm_name,
            # What `mlops verify` checks: the retrain rule, the drift schedule, and a job
            # submitted through the queue with one of the stack's definitions.
            contract.OUTPUT_RETRAIN_RULE_NAME: self.pipeline.retrain_rule_name,
            contract.OUTPUT_JOB_DEFINITION_ARNS: self.training.job_definition_arns,
        }
        if self.pipeline.drift_schedule_name is not None:
            out[contract.OUTPUT_DRIFT_SCHEDULE_NAME] = self.pipeline.drift_schedule_name
        for image, url in f.repository_urls.items():
            out[contract.OUTPUT_REPOSITORIES[image]] = url
        for image, ref in self.images.refs.items():
            out[contract.OUTPUT_IMAGES[image]] = ref
        for role, output_name in contract.OUTPUT_BUCKETS.items():
            out[output_name] = self.datalake.bucket_names[role]
        if f.tracking is not None:
            out[contract.OUTPUT_TRACKING_URI] = f.tracking.uri
        if self.model_server is not None:
            out[contract.OUTPUT_SERVING_NAMESPACE] = self.model_server.namespace
            out[contract.OUTPUT_MODEL_SERVER_URL] = self.model_server.service_url
            if self.model_server.load_balancer_url is not None:
                out[contract.OUTPUT_MODEL_SERVER_ENDPOINT] = self.model_server.load_balancer_url
        if self.config.is_ephemeral:
            return out
        # What ephemeral stacks built on this one read (FOUNDATION_OUTPUTS).
        out[OUTPUT_VPC_ID] = f.vpc_id
        out[OUTPUT_PRIVATE_SUBNET_IDS] = f.private_subnet_ids
        out[OUTPUT_COMPUTE_ENVIRONMENT_ARNS] = self.training.compute_environment_arns
        if f.tracking is not None:
            out[OUTPUT_TRACKING_SECRET] = f.tracking.secret_arn
        if self.serving is not None:
            out[OUTPUT_CLUSTER_NAME] = self.serving.cluster_name
            out[OUTPUT_CLUSTER_ENDPOINT] = self.serving.endpoint
            out[OUTPUT_CLUSTER_CERTIFICATE_AUTHORITY] = self.serving.certificate_authority
        return out


def build(config: PlatformConfig) -> Platform:
    ctx = StackContext.of(config)
    datalake = _datalake(ctx)
    alerts = _alerts(ctx, datalake)
    own = None if config.is_ephemeral else _own_foundation(ctx, datalake)
    foundation = own.foundation if own is not None else _referenced_foundation(ctx)
    images = _images(ctx, foundation)
    tracking = None
    if own is not None and foundation.provider is not None:
        tracking = _tracking(ctx, own, datalake, images.refs[contract.IMAGE_TRACKING])
        # The tracking server runs an image pushed to the foundation's registry: its
        # clients join the foundation only now.
        foundation = dataclasses.replace(foundation, tracking=tracking.client)
    training = _training(ctx, foundation, datalake, images.refs[contract.IMAGE_JOBS])
    pipeline = _pipeline(ctx, datalake, alerts, training)
    model_server = None
    if foundation.provider is not None:
        model_server = _model_server(ctx, foundation, datalake, images.refs[contract.IMAGE_SERVER])
    serving = own.serving if own is not None else None
    return Platform(
        config=config,
        foundation=foundation,
        datalake=datalake,
        alerts=alerts,
        registry=own.registry if own is not None else None,
        network=own.network if own is not None else None,
        serving=serving,
        images=images,
        tracking=tracking,
        training=training,
        pipeline=pipeline,
        model_server=model_server,
        monitoring=_monitoring(ctx, alerts, training, pipeline),
        cluster_monitoring=_cluster_monitoring(ctx, serving, model_server, alerts, datalake),
    )


def _datalake(ctx: StackContext) -> DataLake:
    config, storage = ctx.config, ctx.config.storage
    return DataLake(
        f"{ctx.base_name}-datalake",
        DataLakeArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            account_id=ctx.account_id,
            region=config.region,
            bucket_roles=contract.DATA_BUCKET_ROLES,
            versioning=storage.versioning,
            force_destroy=config.buckets_force_destroy,
            noncurrent_version_expiration_days=storage.noncurrent_version_expiration_days,
            infrequent_access_transition_days=storage.infrequent_access_transition_days,
            abort_incomplete_multipart_days=storage.abort_incomplete_multipart_days,
            access_log_retention_days=storage.access_log_retention_days,
            kms_deletion_window_days=storage.kms_deletion_window_days,
            protect=config.is_retained,
        ),
    )


def _alerts(ctx: StackContext, datalake: DataLake) -> Alerts:
    return Alerts(
        f"{ctx.base_name}-alerts",
        AlertsArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            kms_key_arn=datalake.kms_key_arn,
            account_id=ctx.account_id,
            emails=ctx.config.monitoring.alert_emails,
        ),
    )


def _own_foundation(ctx: StackContext, datalake: DataLake) -> OwnFoundation:
    config = ctx.config
    registry = None
    if config.images.registry:
        # Images go to the stack's own registry (e.g. a local k3d one): no ECR repositories.
        repository_urls: dict[str, pulumi.Input[str]] = {
            image: f"{config.images.registry}/mlops-{image}" for image in contract.REPOSITORY_ROLES
        }
    else:
        registry = _registry(ctx, datalake)
        repository_urls = dict(registry.repository_urls)
    network = _network(ctx, datalake)
    serving = None
    provider: k8s.Provider | None = None
    if config.serving.enabled and config.serving.cluster == "eks":
        serving = _serving_cluster(ctx, network, datalake)
        provider = serving.provider
    elif config.serving.enabled:
        # A cluster of the user's (the local stack's kind or k3d): only its context.
        provider = k8s.Provider(
            f"{ctx.base_name}-k8s",
            context=config.serving.kube_context,
            enable_server_side_apply=True,
        )
    foundation = Foundation(
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        repository_urls=repository_urls,
        compute_environment_arns=None,
        cluster_name=serving.cluster_name if serving is not None else None,
        provider=provider,
        # Set once the tracking server exists (see build).
        tracking=None,
    )
    return OwnFoundation(foundation=foundation, registry=registry, network=network, serving=serving)


def _registry(ctx: StackContext, datalake: DataLake) -> Registry:
    config, registry = ctx.config, ctx.config.registry
    return Registry(
        f"{ctx.base_name}-registry",
        RegistryArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            kms_key_arn=datalake.kms_key_arn,
            repository_roles=contract.REPOSITORY_ROLES,
            keep_last_images=registry.keep_last_images,
            untagged_expiry_days=registry.untagged_expiry_days,
            ephemeral_image_expiry_days=registry.ephemeral_image_expiry_days,
            force_delete=config.registry_force_delete,
            protect=config.is_retained,
        ),
    )


def _network(ctx: StackContext, datalake: DataLake) -> Network:
    net = ctx.config.network
    return Network(
        f"{ctx.base_name}-network",
        NetworkArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            region=ctx.config.region,
            vpc_cidr=net.vpc_cidr,
            availability_zones=_availability_zones(ctx.config),
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


def _serving_cluster(ctx: StackContext, network: Network, datalake: DataLake) -> ServingCluster:
    s = ctx.config.serving
    return ServingCluster(
        f"{ctx.base_name}-serving",
        ServingClusterArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            region=ctx.config.region,
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
            log_retention_days=ctx.config.monitoring.log_retention_days,
            deletion_protection=ctx.config.is_retained,
        ),
    )


def _referenced_foundation(ctx: StackContext) -> Foundation:
    config = ctx.config
    reference = pulumi.StackReference(
        f"{ctx.base_name}-base", stack_name=config.ephemeral.base_stack
    )

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
        need(OUTPUT_CLUSTER_NAME),
        need(OUTPUT_CLUSTER_ENDPOINT),
        need(OUTPUT_CLUSTER_CERTIFICATE_AUTHORITY),
    ).apply(
        lambda a: json.dumps(
            manifests.kubeconfig(
                cluster_name=a[0], endpoint=a[1], ca_data=a[2], region=config.region
            )
        )
    )
    provider = k8s.Provider(
        f"{ctx.base_name}-k8s", kubeconfig=kubeconfig, enable_server_side_apply=True
    )
    return Foundation(
        vpc_id=need(OUTPUT_VPC_ID),
        private_subnet_ids=need(OUTPUT_PRIVATE_SUBNET_IDS),
        repository_urls={
            image: need(contract.OUTPUT_REPOSITORIES[image])
            for image in (contract.IMAGE_JOBS, contract.IMAGE_SERVER)
        },
        compute_environment_arns=need(OUTPUT_COMPUTE_ENVIRONMENT_ARNS),
        cluster_name=need(OUTPUT_CLUSTER_NAME),
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


def _images(ctx: StackContext, foundation: Foundation) -> Images:
    """Build (or take by digest) every image the stack's workloads run."""
    config = ctx.config
    wanted = config.images_run
    if not config.images.build:
        digests: dict[str, str] = {str(k): v for k, v in config.images.digests.items()}
        given: dict[str, pulumi.Input[str]] = {
            image: pulumi.Output.concat(foundation.repository_urls[image], "@", digests[image])
            for image in wanted
        }
        return Images(
            f"{ctx.base_name}-images",
            ImagesArgs(base_name=ctx.base_name, builds=(), registry_id=None, given=given),
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
        f"{ctx.base_name}-images",
        ImagesArgs(
            base_name=ctx.base_name,
            builds=tuple(builds),
            registry_id=None if config.images.registry else ctx.account_id,
            given={},
        ),
    )


def repository_arn(repository_url: str) -> str:
    """`<account>.dkr.ecr.<region>.amazonaws.com/<name>` → the repository's ARN."""
    host, _, name = repository_url.partition("/")
    account, _, _, region = host.split(".")[:4]
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


def _tracking(
    ctx: StackContext, own: OwnFoundation, datalake: DataLake, image: pulumi.Input[str]
) -> Tracking:
    t = ctx.config.tracking
    assert own.foundation.provider is not None
    return Tracking(
        f"{ctx.base_name}-tracking",
        TrackingArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            region=ctx.config.region,
            provider=own.foundation.provider,
            cluster_name=own.foundation.cluster_name,
            cluster_security_group_id=(
                own.serving.cluster_security_group_id if own.serving is not None else None
            ),
            vpc_id=own.network.vpc_id,
            subnet_ids=own.network.private_subnet_ids,
            # Batch jobs run in the private subnets.
            client_cidrs=own.network.private_subnet_cidrs,
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
            protect=ctx.config.is_retained,
            final_snapshot=ctx.config.is_guarded,
            db_monitoring_interval_seconds=t.db_monitoring_interval_seconds,
            log_retention_days=ctx.config.monitoring.log_retention_days,
        ),
    )


def _training(
    ctx: StackContext, foundation: Foundation, datalake: DataLake, image: pulumi.Input[str]
) -> TrainingCompute:
    config, t = ctx.config, ctx.config.training
    jobs_repository_arn = None
    if not config.images.registry:
        jobs_repository_arn = pulumi.Output.from_input(
            foundation.repository_urls[contract.REPOSITORY_JOBS]
        ).apply(repository_arn)
    return TrainingCompute(
        f"{ctx.base_name}-training",
        TrainingComputeArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            vpc_id=foundation.vpc_id,
            subnet_ids=foundation.private_subnet_ids,
            kms_key_arn=datalake.kms_key_arn,
            bucket_names=datalake.bucket_names,
            bucket_arns=datalake.bucket_arns,
            image=image,
            jobs_repository_arn=jobs_repository_arn,
            region=config.region,
            instance_types=t.instance_types,
            max_vcpus=t.max_vcpus,
            spot=t.spot,
            on_demand_fallback=t.on_demand_fallback,
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


def _pipeline(
    ctx: StackContext, datalake: DataLake, alerts: Alerts, training: TrainingCompute
) -> Pipeline:
    config = ctx.config
    # The drift alarm belongs to monitoring; the pipeline's rule finds it by its name.
    drift_alarm_arn = ctx.account_id.apply(
        lambda account: (
            f"arn:aws:cloudwatch:{config.region}:{account}:alarm:{drift_alarm_name(ctx.base_name)}"
        )
    )
    return Pipeline(
        f"{ctx.base_name}-pipeline",
        PipelineArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            region=config.region,
            account_id=ctx.account_id,
            job_queue_arn=training.job_queue_arn,
            job_definition_arns=training.job_definition_arns,
            models_bucket_name=datalake.bucket_names[contract.BUCKET_MODELS],
            models_bucket_arn=datalake.bucket_arns[contract.BUCKET_MODELS],
            model_name=config.model_name,
            kms_key_arn=datalake.kms_key_arn,
            alert_topic_arn=alerts.topic_arn,
            drift_alarm_arn=drift_alarm_arn,
            schedule=config.training.schedule,
            drift_schedule=config.training.drift_schedule,
            log_retention_days=config.monitoring.log_retention_days,
        ),
    )


def _model_server(
    ctx: StackContext, foundation: Foundation, datalake: DataLake, image: pulumi.Input[str]
) -> ModelServer:
    config, s = ctx.config, ctx.config.serving
    assert foundation.provider is not None
    tracking = foundation.tracking
    return ModelServer(
        f"{ctx.base_name}-model-server",
        ModelServerArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            region=config.region,
            provider=foundation.provider,
            cluster_name=foundation.cluster_name,
            # Each ephemeral stack serves from a namespace of its own on the shared cluster.
            namespace=config.stack if config.is_ephemeral else SERVING_NAMESPACE,
            image=image,
            model_name=config.model_name,
            # In the cluster, MLflow is reached by its Service name (also from ephemeral
            # stacks, which share the cluster); the load balancer address is for Batch jobs.
            tracking_uri=IN_CLUSTER_URI,
            tracking_username=tracking.username if tracking is not None else None,
            tracking_password=tracking.password if tracking is not None else None,
            replicas=s.replicas,
            max_replicas=s.max_replicas,
            cpu=s.server_cpu,
            memory=s.server_memory,
            drain_seconds=s.drain_seconds,
            models_bucket_arn=datalake.bucket_arns[contract.BUCKET_MODELS],
            captures_bucket_name=datalake.bucket_names[contract.BUCKET_CAPTURES],
            captures_bucket_arn=datalake.bucket_arns[contract.BUCKET_CAPTURES],
            kms_key_arn=datalake.kms_key_arn,
            internal_lb_cidrs=(
                (str(config.network.vpc_cidr),) if s.expose == "internal_lb" else None
            ),
        ),
    )


def _monitoring(
    ctx: StackContext, alerts: Alerts, training: TrainingCompute, pipeline: Pipeline
) -> Monitoring:
    config, m = ctx.config, ctx.config.monitoring
    return Monitoring(
        f"{ctx.base_name}-monitoring",
        MonitoringArgs(
            base_name=ctx.base_name,
            stack=config.stack,
            tags=ctx.tags,
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
        ),
    )


def _cluster_monitoring(
    ctx: StackContext,
    serving: ServingCluster | None,
    model_server: ModelServer | None,
    alerts: Alerts,
    datalake: DataLake,
) -> ClusterMonitoring | None:
    """Prometheus and Grafana on the stack's own EKS cluster, watching its model server."""
    m = ctx.config.monitoring
    if serving is None or model_server is None or not m.prometheus:
        return None
    return ClusterMonitoring(
        f"{ctx.base_name}-cluster-monitoring",
        ClusterMonitoringArgs(
            base_name=ctx.base_name,
            tags=ctx.tags,
            region=ctx.config.region,
            model_name=ctx.config.model_name,
            provider=serving.provider,
            cluster_name=serving.cluster_name,
            alert_topic_arn=alerts.topic_arn,
            kms_key_arn=datalake.kms_key_arn,
            server_namespace=model_server.namespace,
            server_namespace_resource=model_server.namespace_resource,
            server_name=SERVER_NAME,
            chart_version=m.prometheus_chart_version,
            retention=m.prometheus_retention,
            storage_gib=m.prometheus_storage_gib,
            cpu=m.prometheus_cpu,
            memory=m.prometheus_memory,
            latency_slo_p99_seconds=m.latency_slo_p99_seconds,
            error_ratio_threshold=m.error_ratio_threshold,
        ),
    )

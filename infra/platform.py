"""The one place that composes the platform's components for a stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.alerts import Alerts, AlertsArgs
from infra.components.datalake import DataLake, DataLakeArgs
from infra.components.monitoring import ClusterMonitoringArgs, Monitoring, MonitoringArgs
from infra.components.network import Network, NetworkArgs
from infra.components.pipeline import Pipeline, PipelineArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.serving import (
    SERVER_NAME,
    NodeGroupSpec,
    ServingCluster,
    ServingClusterArgs,
)
from infra.components.tracking import MLFLOW_NAME, Tracking, TrackingArgs
from infra.components.training import TrainingCompute, TrainingComputeArgs
from infra.config import PlatformConfig
from infra.planning import k8s as manifests
from infra.planning.pipeline import drift_alarm_name
from infra.planning.tags import platform_tags
from training_jobs import contract


@dataclass(frozen=True)
class Platform:
    config: PlatformConfig
    datalake: DataLake
    registry: Registry
    network: Network | None
    alerts: Alerts
    training: TrainingCompute | None
    pipeline: Pipeline | None
    serving: ServingCluster | None
    tracking: Tracking | None
    monitoring: Monitoring

    def outputs(self) -> dict[str, pulumi.Input[object]]:
        """The stack outputs: few, stable, snake_case; what jobs and operators need."""
        out: dict[str, pulumi.Input[object]] = {
            contract.OUTPUT_REGION: self.config.region,
            "environment": self.config.environment,
            contract.OUTPUT_KMS_KEY_ARN: self.datalake.kms_key_arn,
        }
        for role, output_name in contract.OUTPUT_BUCKETS.items():
            out[output_name] = self.datalake.bucket_names[role]
        for role, output_name in contract.OUTPUT_REPOSITORIES.items():
            out[output_name] = self.registry.repository_urls[role]
        out["alert_topic_arn"] = self.alerts.topic_arn
        if self.network is not None:
            out["vpc_id"] = self.network.vpc_id
            out["private_subnet_ids"] = self.network.private_subnet_ids
        if self.training is not None:
            out["job_queue_arn"] = self.training.job_queue_arn
        if self.pipeline is not None:
            out["state_machine_arn"] = self.pipeline.state_machine_arn
        if self.serving is not None:
            out["cluster_name"] = self.serving.cluster_name
            out["serving_namespace"] = self.serving.namespace
        if self.tracking is not None:
            out[contract.OUTPUT_TRACKING_URI] = self.tracking.tracking_uri
        out["drift_alarm_name"] = self.monitoring.drift_alarm_name
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
    registry = Registry(
        f"{base}-registry",
        RegistryArgs(
            base_name=base,
            tags=tags,
            kms_key_arn=datalake.kms_key_arn,
            keep_last_images=config.registry.keep_last_images,
            untagged_expiry_days=config.registry.untagged_expiry_days,
            force_delete=config.registry_force_delete,
            protect=protect,
        ),
    )
    network = None
    if not config.is_ephemeral:
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
    training = pipeline = None
    if network is not None:
        t = config.training
        training = TrainingCompute(
            f"{base}-training",
            TrainingComputeArgs(
                base_name=base,
                tags=tags,
                vpc_id=network.vpc_id,
                subnet_ids=network.private_subnet_ids,
                kms_key_arn=datalake.kms_key_arn,
                bucket_names=datalake.bucket_names,
                bucket_arns=datalake.bucket_arns,
                jobs_repository_url=registry.repository_urls[contract.REPOSITORY_JOBS],
                jobs_repository_arn=registry.repository_arns[contract.REPOSITORY_JOBS],
                region=config.region,
                image_tag=t.image_tag,
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
            ),
        )
        # The drift alarm itself belongs to monitoring; its ARN follows from its name.
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
                model_name=t.model_name,
                kms_key_arn=datalake.kms_key_arn,
                alert_topic_arn=alerts.topic_arn,
                drift_alarm_arn=drift_alarm_arn,
                schedule=t.schedule,
                log_retention_days=config.monitoring.log_retention_days,
            ),
        )
    serving = tracking = None
    if network is not None and config.serving.enabled:
        serving, tracking = _serving_and_tracking(config, tags, network, datalake, registry)
    m = config.monitoring
    cluster_monitoring = None
    if serving is not None:
        cluster_monitoring = ClusterMonitoringArgs(
            provider=serving.provider,
            cluster_name=serving.cluster_name,
            server_namespace=serving.namespace,
            server_name=SERVER_NAME,
            chart_version=m.prometheus_chart_version,
            retention=m.prometheus_retention,
            storage_gib=m.prometheus_storage_gib,
            cpu=m.prometheus_cpu,
            memory=m.prometheus_memory,
            latency_slo_p99_seconds=m.latency_slo_p99_seconds,
            error_ratio_threshold=m.error_ratio_threshold,
        )
    monitoring = Monitoring(
        f"{base}-monitoring",
        MonitoringArgs(
            base_name=base,
            stack=config.stack,
            tags=tags,
            region=config.region,
            model_name=config.training.model_name,
            alert_topic_arn=alerts.topic_arn,
            drift_threshold=m.drift_alarm_threshold,
            state_machine_arn=pipeline.state_machine_arn if pipeline else None,
            job_queue_arn=training.job_queue_arn if training else None,
            budget_monthly_usd=m.budget_monthly_usd,
            budget_alert_thresholds_pct=m.budget_alert_thresholds_pct,
            cluster=cluster_monitoring,
        ),
    )
    return Platform(
        config=config,
        datalake=datalake,
        registry=registry,
        network=network,
        alerts=alerts,
        training=training,
        pipeline=pipeline,
        serving=serving,
        tracking=tracking,
        monitoring=monitoring,
    )


SERVING_NAMESPACE = "mlops-serving"
TRACKING_NAMESPACE = "mlflow"


def _serving_and_tracking(
    config: PlatformConfig,
    tags: dict[str, str],
    network: Network,
    datalake: DataLake,
    registry: Registry,
) -> tuple[ServingCluster, Tracking]:
    base = config.base_name
    s = config.serving
    tracking_uri = manifests.service_url(MLFLOW_NAME, TRACKING_NAMESPACE, manifests.MLFLOW_PORT)
    serving = ServingCluster(
        f"{base}-serving",
        ServingClusterArgs(
            base_name=base,
            tags=tags,
            region=config.region,
            kubernetes_version=s.kubernetes_version,
            subnet_ids=network.private_subnet_ids,
            kms_key_arn=datalake.kms_key_arn,
            public_access_cidrs=tuple(str(c) for c in s.public_access_cidrs),
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
            namespace=SERVING_NAMESPACE,
            extra_namespaces=(TRACKING_NAMESPACE,),
            server_image=registry.repository_urls[contract.REPOSITORY_SERVER].apply(
                lambda url: f"{url}:{s.server_image_tag}"
            ),
            server_env={
                "MLOPS_SERVE_MODEL_NAME": s.model_name,
                "MLOPS_SERVE_TRACKING_URI": tracking_uri,
                "MLOPS_SERVE_CAPTURE_BUCKET": datalake.bucket_names[contract.BUCKET_CAPTURES],
                "AWS_REGION": config.region,
            },
            server_replicas=s.replicas,
            server_max_replicas=s.max_replicas,
            server_cpu=s.server_cpu,
            server_memory=s.server_memory,
            drain_seconds=s.drain_seconds,
            models_bucket_arn=datalake.bucket_arns[contract.BUCKET_MODELS],
            captures_bucket_arn=datalake.bucket_arns[contract.BUCKET_CAPTURES],
        ),
    )
    t = config.tracking
    tracking = Tracking(
        f"{base}-tracking",
        TrackingArgs(
            base_name=base,
            tags=tags,
            region=config.region,
            namespace=TRACKING_NAMESPACE,
            provider=serving.provider,
            cluster_name=serving.cluster_name,
            cluster_security_group_id=serving.cluster_security_group_id,
            vpc_id=network.vpc_id,
            subnet_ids=network.private_subnet_ids,
            image=registry.repository_urls[contract.REPOSITORY_JOBS].apply(
                lambda url: f"{url}:{config.training.image_tag}"
            ),
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
            protect=config.environment == "prod",
        ),
    )
    return serving, tracking

"""The one place that composes the platform's components for a stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.datalake import DataLake, DataLakeArgs
from infra.components.network import Network, NetworkArgs
from infra.components.registry import Registry, RegistryArgs
from infra.config import PlatformConfig
from infra.planning.tags import platform_tags
from training_jobs import contract


@dataclass(frozen=True)
class Platform:
    config: PlatformConfig
    datalake: DataLake
    registry: Registry
    network: Network | None

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
        if self.network is not None:
            out["vpc_id"] = self.network.vpc_id
            out["private_subnet_ids"] = self.network.private_subnet_ids
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
    return Platform(config=config, datalake=datalake, registry=registry, network=network)

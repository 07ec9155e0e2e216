"""The typed stack config: shipped stacks load; bad values name their field."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from infra import config
from infra.policy import PolicyException
from mlops.docs import config_reference
from tests.conftest import ROOT, SHIPPED_STACKS


def _stack_values(stack: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {k.removeprefix("mlops:"): v for k, v in data.items() if k.startswith("mlops:")}


def _parse(raw: dict[str, Any], stack: str = "dev") -> config.PlatformConfig:
    return config.parse(raw, stack=stack, region="us-east-1")


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_shipped_stack_loads(stack: str) -> None:
    parsed = _parse(_stack_values(stack), stack)
    assert parsed.stack == stack
    # The shipped stacks are named after their environment; the PR template is ephemeral.
    assert parsed.environment == ("ephemeral" if stack == "pr-template" else stack)


def test_prod_is_guarded_retained_and_highly_available() -> None:
    prod = _parse(_stack_values("prod"), "prod")
    assert prod.is_guarded and prod.is_retained
    assert prod.network.nat_mode == "per_az" and prod.network.az_count == 3
    assert not prod.buckets_force_destroy and prod.storage.versioning
    assert prod.tracking.database == "rds" and prod.tracking.db_deletion_protection


def test_ephemeral_buckets_force_destroy_even_if_config_says_no() -> None:
    raw = {"environment": "ephemeral", "owner": "ci", "storage": {"force_destroy": False}}
    assert _parse(raw, "pr-42").buckets_force_destroy


def test_values_arrive_as_json_strings_like_the_engine_sends_them() -> None:
    raw = {**BASE, "network": '{"az_count": 3}', "serving": json.dumps(BASE["serving"])}
    assert _parse(raw).network.az_count == 3


_DEPLOYER = {"location": "public", "public_cidrs": ["203.0.113.10/32"]}
BASE: dict[str, Any] = {
    "environment": "dev",
    "owner": "ml-platform",
    "serving": {"deployer": _DEPLOYER},
}
_EXCEPTION: dict[str, Any] = {
    "rule": "MLOPS-KMS-001",
    "name": "mlops-dev-data-key",
    "reason": "key material imported and rotated by the HSM team",
}
PROD: dict[str, Any] = {
    "environment": "prod",
    "owner": "ml-platform",
    "network": {"az_count": 3, "nat_mode": "per_az"},
    "tracking": {"database": "rds", "db_deletion_protection": True},
    "serving": {"deployer": {"location": "in_vpc", "in_vpc_cidrs": ["10.40.0.0/16"]}},
}


def _with(base: dict[str, Any], **sections: Any) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# (config, stack, dotted path the error must name, a phrase of the reason)
BAD_CONFIGS: list[tuple[dict[str, Any], str, str, str]] = [
    ({"owner": "x"}, "dev", "environment", "missing"),
    ({"environment": "qa", "owner": "x"}, "dev", "environment", "expected"),
    ({"environment": "dev"}, "dev", "owner", "missing"),
    (_with(BASE, owner="has spaces"), "dev", "owner", "letters, digits"),
    (_with(BASE, network={"az_count": 0}), "dev", "network.az_count", "greater than"),
    (_with(BASE, network={"az_count": 9}), "dev", "network.az_count", "less than"),
    (_with(BASE, network={"vpc_cidr": "10.0.0.0/33"}), "dev", "network.vpc_cidr", "IPv4"),
    (_with(BASE, network={"vpc_cidr": "8.8.0.0/16"}), "dev", "network.vpc_cidr", "private"),
    (_with(BASE, network={"vpc_cidr": "10.0.0.0/8"}), "dev", "network.vpc_cidr", "/16 and /24"),
    (_with(BASE, network={"nat_mode": "two"}), "dev", "network.nat_mode", "expected"),
    (
        _with(BASE, network={"az_count": 1, "nat_mode": "per_az"}),
        "dev",
        "network.nat_mode",
        "use 'single'",
    ),
    (
        _with(
            BASE, network={"vpc_cidr": "10.0.0.0/20", "az_count": 4, "private_subnet_prefix": 22}
        ),
        "dev",
        "network.vpc_cidr",
        "has room for 3 AZ(s), not 4",
    ),
    (
        _with(BASE, network={"az_count": 2, "availability_zones": ["us-east-1a"]}),
        "dev",
        "network.availability_zones",
        "az_count is 2",
    ),
    (
        _with(BASE, network={"az_count": 1, "availability_zones": ["eu-west-1a"]}),
        "dev",
        "network.availability_zones[0]",
        "not a zone of region",
    ),
    (_with(BASE, network={"flow_logs_retention_days": 10}), "dev", "network.flow_logs_retention_days", "retention periods"),
    (_with(BASE, netwrok={}), "dev", "netwrok", "unknown setting"),
    (_with(BASE, storage={"versionning": True}), "dev", "storage.versionning", "unknown setting"),
    (_with(PROD, storage={"force_destroy": True}), "prod", "storage.force_destroy", "never"),
    (_with(PROD, storage={"versioning": False}), "prod", "storage.versioning", "never"),
    (_with(PROD, registry={"force_delete": True}), "prod", "registry.force_delete", "never"),
    (_with(PROD, network={"nat_mode": "single"}), "prod", "network.nat_mode", "per_az"),
    (_with(PROD, tracking={"database": "in_cluster"}), "prod", "tracking.database", "rds"),
    (_with(BASE, storage={"infrequent_access_transition_days": 10}), "dev", "storage.infrequent_access_transition_days", "greater than or equal to 30"),
    (_with(BASE, name_prefix="Bad_Prefix"), "dev", "name_prefix", "lowercase"),
    (
        _with(BASE, name_prefix="a-very-long-prefix-x"),
        "pr-1234567890123456789012",
        "name_prefix",
        "S3 bucket names allow 63",
    ),
    (BASE, "Dev_Stack", "(stack name)", "lowercase"),
    (_with(BASE, training={"instance_types": ["large"]}), "dev", "training.instance_types[0]", "instance type"),
    (_with(BASE, training={"schedule": "every day"}), "dev", "training.schedule", "rate("),
    (
        _with(BASE, serving={"node_groups": [{"name": "system", "instance_types": ["m6i.large"], "min_size": 3, "desired_size": 1, "max_size": 4}]}),
        "dev",
        "serving.node_groups[0]",
        "min_size <= desired_size",
    ),
    (
        _with(BASE, serving={"node_groups": [{"name": "serving", "instance_types": ["m6i.large"], "min_size": 1, "desired_size": 1, "max_size": 2}]}),
        "dev",
        "serving.node_groups",
        "'system'",
    ),
    (_with(BASE, serving={"kubernetes_version": "1.34"}), "dev", "serving.kubernetes_version", "left standard support on 2026-12-02"),
    (_with(BASE, serving={"kubernetes_version": "2.0"}), "dev", "serving.kubernetes_version", "expected an EKS version"),
    (_with(BASE, serving={"deployer": {"public_cidrs": ["198.51.100.0/24", "198.51.100.7/32"]}}), "dev", "serving.deployer.public_cidrs[1]", "overlaps"),
    (_with(BASE, serving={"deployer": {"public_cidrs": []}}), "dev", "serving.deployer.public_cidrs", "must admit its egress CIDRs"),
    (_with(BASE, serving={"deployer": {"public_cidrs": ["10.1.0.0/16"]}}), "dev", "serving.deployer.public_cidrs[0]", "never reaches the public endpoint"),
    (_with(BASE, serving={"deployer": {"location": "in_vpc"}}), "dev", "serving.deployer.in_vpc_cidrs", "the API endpoint is private"),
    (_with(PROD, serving={"deployer": {"location": "public", "public_cidrs": ["0.0.0.0/0"]}}), "prod", "serving.deployer.public_cidrs[0]", "whole internet"),
    (_with(BASE, serving={"public_access_cidrs": ["198.51.100.0/24"]}), "dev", "serving.public_access_cidrs", "moved: give the deployer's egress CIDRs as serving.deployer.public_cidrs"),
    (_with(BASE, training={"image_tag": "0.1.0"}), "dev", "training.image_tag", "pulumi up` builds the jobs image"),
    (_with(BASE, images={"build": False, "digests": {"jobs": "sha256:" + "a" * 64}}), "dev", "images.digests", "missing tracking, server"),
    (_with(BASE, images={"digests": {"jobs": "latest"}}), "dev", "images.digests", "not an image digest"),
    (_with(BASE, tracking={"workers": 4, "memory": "1Gi"}), "dev", "tracking.memory", "needs at least 2160Mi"),
    (_with(PROD, tracking={"db_engine_version": "16.4"}), "prod", "tracking.db_engine_version", "retired by RDS on 2026-05-01"),
    (_with(BASE, monitoring={"alert_emails": ["not-an-address"]}), "dev", "monitoring.alert_emails", "e-mail"),
    (_with(BASE, monitoring={"budget_monthly_usd": -5}), "dev", "monitoring.budget_monthly_usd", "greater than 0"),
    (_with(BASE, ephemeral={"expires_at": "2026-12-01T00:00:00Z"}), "dev", "ephemeral.expires_at", "only ephemeral"),
    (_with(BASE, network="not a mapping"), "dev", "network", "mapping"),
    (_with(BASE, serving={"server_cpu": "lots"}), "dev", "serving.server_cpu", "CPU quantity"),
    (_with(BASE, serving={"server_memory": "2GB"}), "dev", "serving.server_memory", "memory quantity"),
    (_with(BASE, policy_exceptions=[_EXCEPTION | {"rule": "MLOPS-NOPE-001"}]), "dev", "policy_exceptions[0].rule", "is not a rule id; allowed MLOPS-BATCH-001, "),
    (_with(BASE, policy_exceptions=[_EXCEPTION | {"reason": "because"}]), "dev", "policy_exceptions[0].reason", "say why, at least 10 characters"),
    (_with(BASE, policy_exceptions=[_EXCEPTION | {"urn_contains": "kms"}]), "dev", "policy_exceptions[0]", "exactly one of urn_contains or name"),
    (_with(BASE, policy_exceptions=[_EXCEPTION | {"why": "x"}]), "dev", "policy_exceptions[0].why", "unknown setting"),
]  # fmt: skip


def test_policy_exceptions_use_the_policy_packages_schema() -> None:
    parsed = _parse(_with(BASE, policy_exceptions=json.dumps([_EXCEPTION])))
    assert parsed.policy_exceptions == (PolicyException(**_EXCEPTION),)
    assert config.PolicyException is PolicyException


@pytest.mark.parametrize(
    ("raw", "stack", "path", "reason"), BAD_CONFIGS, ids=[c[2] for c in BAD_CONFIGS]
)
def test_bad_config_names_the_field(
    raw: dict[str, Any], stack: str, path: str, reason: str
) -> None:
    with pytest.raises(config.ConfigError) as caught:
        _parse(raw, stack)
    paths = [issue.path for issue in caught.value.issues]
    assert path in paths, f"expected {path!r} among {paths}"
    issue = next(i for i in caught.value.issues if i.path == path)
    assert reason in issue.message, f"{path}: {issue.message!r} lacks {reason!r}"
    assert f"mlops:{path}" in str(caught.value)


def test_every_bad_field_is_listed_at_once() -> None:
    raw = _with(
        PROD,
        network={"az_count": 0, "nat_mode": "single"},
        storage={"force_destroy": True, "kms_deletion_window_days": 3},
        monitoring={"log_retention_days": 11},
    )
    with pytest.raises(config.ConfigError) as caught:
        _parse(raw, "prod")
    paths = {issue.path for issue in caught.value.issues}
    assert {
        "network.az_count",
        "storage.kms_deletion_window_days",
        "monitoring.log_retention_days",
    } <= paths
    message = str(caught.value)
    assert "mlops:network.az_count = 0" in message
    assert "mlops:storage.kms_deletion_window_days = 3" in message


def test_cross_field_rules_report_every_violation_together() -> None:
    raw = _with(
        PROD, storage={"force_destroy": True, "versioning": False}, registry={"force_delete": True}
    )
    with pytest.raises(config.ConfigError) as caught:
        _parse(raw, "prod")
    assert {i.path for i in caught.value.issues} >= {
        "storage.force_destroy",
        "storage.versioning",
        "registry.force_delete",
    }


def test_pulumi_yaml_documents_every_setting() -> None:
    text = (ROOT / "Pulumi.yaml").read_text()
    assert config_reference() in text, "run `mlops config-reference` and paste it into Pulumi.yaml"
    for key, *_ in config.reference():
        assert f"# mlops:{key} " in text

"""Pulumi.local.yaml points the AWS provider at the emulator for every service used."""

from __future__ import annotations

from urllib.parse import urlparse

import yaml

from mlops.plan import Plan
from tests.conftest import ROOT

# SDK module of a type token → the provider's `endpoints` key for that service.
ENDPOINT_KEY = {
    "s3": "s3", "kms": "kms", "ecr": "ecr", "ec2": "ec2", "iam": "iam",
    "batch": "batch", "sfn": "sfn", "sns": "sns", "eks": "eks", "rds": "rds",
    "budgets": "budgets", "cloudwatch/logGroup": "logs", "cloudwatch/eventRule": "events",
    "cloudwatch/eventTarget": "events", "cloudwatch/metricAlarm": "cloudwatch",
    "cloudwatch/dashboard": "cloudwatch", "scheduler": "scheduler",
    "secretsmanager": "secretsmanager",
}  # fmt: skip
# Invokes the program makes go to these services too.
INVOKE_SERVICES = {"sts", "ec2"}


def _endpoint_key(type_token: str) -> str:
    module = type_token.split(":")[1]  # e.g. "s3/bucket" or "cloudwatch/logGroup"
    return ENDPOINT_KEY.get(module) or ENDPOINT_KEY[module.split("/")[0]]


def _local_config() -> dict[str, object]:
    return yaml.safe_load((ROOT / "Pulumi.local.yaml").read_text())["config"]


def test_every_service_the_program_uses_has_a_loopback_endpoint(local_plan: Plan) -> None:
    config = _local_config()
    (endpoints,) = config["aws:endpoints"]  # type: ignore[misc]
    used = {_endpoint_key(r.type) for r in local_plan.resources if r.type.startswith("aws:")}
    used |= INVOKE_SERVICES
    missing = used - set(endpoints)
    assert not missing, f"Pulumi.local.yaml lacks endpoints for {sorted(missing)}"
    ports = set()
    for service, url in endpoints.items():
        parsed = urlparse(url)
        assert parsed.hostname == "127.0.0.1", f"{service}: {url} is not loopback"
        ports.add(parsed.port)
    assert len(ports) == 1, "one emulator serves every service"


def test_provider_needs_no_real_account() -> None:
    config = _local_config()
    for flag in (
        "aws:skipCredentialsValidation",
        "aws:skipRequestingAccountId",
        "aws:skipMetadataApiCheck",
        "aws:s3UsePathStyle",
    ):
        assert config[flag] is True, flag
    assert config["aws:accessKey"] == "testing" and config["aws:secretKey"] == "testing"

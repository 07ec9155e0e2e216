"""The pulumi_policy adapters, called directly: constructing a PolicyPack would block."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationPolicy

from infra import policy
from infra.policy import pack
from tests.conftest import SHIPPED_STACKS


@dataclass
class FakeResourceArgs:
    resource_type: str
    props: dict[str, Any]
    urn: str
    name: str


@dataclass
class FakePolicyResource:
    resource_type: str
    props: dict[str, Any]
    urn: str
    name: str
    dependencies: list[Any] = field(default_factory=list)


@dataclass
class FakeStackArgs:
    resources: list[FakePolicyResource]


class Reports:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def __call__(self, message: str, urn: str | None = None) -> None:
        self.calls.append((message, urn))


def _no_exceptions(stack: str) -> list[policy.PolicyException]:
    return []


URN = "urn:pulumi:prod::mlops-platform::aws:kms/key:Key::k"


def test_one_policy_per_rule_with_its_enforcement() -> None:
    policies = pack.build_policies(_no_exceptions)
    assert len(policies) == len(policy.RULES)
    by_name = {p.name: p for p in policies}
    rotation = by_name["mlops-kms-001"]
    assert isinstance(rotation, ResourceValidationPolicy)
    assert rotation.enforcement_level == EnforcementLevel.MANDATORY
    assert isinstance(by_name["mlops-s3-004"], StackValidationPolicy)
    assert by_name["mlops-s3-008"].enforcement_level == EnforcementLevel.ADVISORY


def test_resource_validator_reports_and_passes() -> None:
    validate = pack.resource_validator(policy.RULES_BY_ID["MLOPS-KMS-001"], _no_exceptions)
    reports = Reports()
    validate(FakeResourceArgs("aws:kms/key:Key", {"enableKeyRotation": False}, URN, "k"), reports)  # type: ignore[arg-type]
    assert len(reports.calls) == 1
    message, urn = reports.calls[0]
    assert message.startswith("[MLOPS-KMS-001] enableKeyRotation is not true")
    assert "CKV_AWS_7" in message and urn is None
    ok = Reports()
    validate(FakeResourceArgs("aws:kms/key:Key", {"enableKeyRotation": True}, URN, "k"), ok)  # type: ignore[arg-type]
    assert ok.calls == []


def test_environment_comes_from_the_resource_tags() -> None:
    validate = pack.resource_validator(policy.RULES_BY_ID["MLOPS-S3-010"], _no_exceptions)
    urn = "urn:pulumi:prod::p::aws:s3/bucket:Bucket::b"
    prod, dev = Reports(), Reports()
    validate(
        FakeResourceArgs(
            "aws:s3/bucket:Bucket",
            {"forceDestroy": True, "tags": {"mlops:environment": "prod"}},
            urn,
            "b",
        ),
        prod,
    )  # type: ignore[arg-type]
    validate(
        FakeResourceArgs(
            "aws:s3/bucket:Bucket",
            {"forceDestroy": True, "tags": {"mlops:environment": "dev"}},
            urn,
            "b",
        ),
        dev,
    )  # type: ignore[arg-type]
    assert len(prod.calls) == 1 and dev.calls == []


def test_stack_validator_reports_the_bucket_urn() -> None:
    validate = pack.stack_validator(policy.RULES_BY_ID["MLOPS-S3-004"], _no_exceptions)
    bucket = FakePolicyResource(
        "aws:s3/bucket:Bucket", {"bucket": "b"}, "urn:pulumi:dev::p::aws:s3/bucket:Bucket::b", "b"
    )
    reports = Reports()
    validate(FakeStackArgs([bucket]), reports)  # type: ignore[arg-type]
    assert [(m.split("]")[0], u) for m, u in reports.calls] == [("[MLOPS-S3-004", bucket.urn)]
    versioning = FakePolicyResource(
        "aws:s3/bucketVersioning:BucketVersioning",
        {"bucket": "b", "versioningConfiguration": {"status": "Enabled"}},
        "urn:pulumi:dev::p::aws:s3/bucketVersioning:BucketVersioning::bv",
        "bv",
        dependencies=[bucket],
    )
    fixed = Reports()
    validate(FakeStackArgs([bucket, versioning]), fixed)  # type: ignore[arg-type]
    assert fixed.calls == []


def test_exceptions_suppress_violations() -> None:
    def exceptions(stack: str) -> list[policy.PolicyException]:
        assert stack == "prod"
        return [
            policy.PolicyException(rule="MLOPS-KMS-001", reason="imported key material", name="k")
        ]

    validate = pack.resource_validator(policy.RULES_BY_ID["MLOPS-KMS-001"], exceptions)
    reports = Reports()
    validate(FakeResourceArgs("aws:kms/key:Key", {"enableKeyRotation": False}, URN, "k"), reports)  # type: ignore[arg-type]
    assert reports.calls == []


@pytest.mark.parametrize(
    ("urn", "stack"),
    [
        ("urn:pulumi:prod::mlops-platform::aws:kms/key:Key::k", "prod"),
        ("urn:pulumi:pr-12::p::t::n", "pr-12"),
    ],
)
def test_stack_of(urn: str, stack: str) -> None:
    assert pack.stack_of(urn) == stack


def test_exceptions_come_from_the_stack_file(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.prod.yaml").write_text(
        "config:\n"
        "  aws:region: us-east-1\n"
        "  mlops:policy_exceptions:\n"
        "    - {rule: MLOPS-KMS-001, name: k, reason: imported key material}\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  mlops:owner: me\n")
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n  mlops:policy_exceptions: [{rule: MLOPS-KMS-001, name: k, reason: x}]\n"
    )
    [exception] = pack.exceptions_from_stack_file("prod", tmp_path)
    assert (exception.rule, exception.name) == ("MLOPS-KMS-001", "k")
    assert pack.exceptions_from_stack_file("dev", tmp_path) == []
    assert pack.exceptions_from_stack_file("pr-7", tmp_path) == []  # no file: none
    with pytest.raises(policy.ExceptionConfigError, match=r"\[0\]\.reason: 'x' is too short"):
        pack.exceptions_from_stack_file("bad", tmp_path)
    # The shipped stacks state none, and their files parse.
    for stack in SHIPPED_STACKS:
        assert (pack.ROOT / f"Pulumi.{stack}.yaml").is_file()
        assert pack.exceptions_from_stack_file(stack) == []


def test_the_pack_does_not_import_the_cli() -> None:
    code = (
        "import json, sys; import infra.policy.pack; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'mlops')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=pack.ROOT
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_pack_files_are_shipped() -> None:
    root = Path(pack.__file__).parent
    assert "runtime:" in (root / "PulumiPolicy.yaml").read_text()
    requirements = (root / "requirements.txt").read_text()
    assert "pulumi-policy" in requirements and "pydantic>=2.9,<3" in requirements
    assert "PolicyPack(" in (root / "__main__.py").read_text()

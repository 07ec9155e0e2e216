"""Sweep selection and ordering: pure, no emulator."""

from __future__ import annotations

import pytest

from mlops.expiry import parse_utc
from mlops.sweep.select import (
    DELETION_ORDER,
    Found,
    Selector,
    in_deletion_order,
    kind_and_name,
    verdict,
)

NOW = parse_utc("2026-06-01T00:00:00Z")


def eph(
    stack: str = "pr-7", expires: str | None = "2026-05-31T00:00:00Z", env: str | None = "ephemeral"
) -> Found:
    tags = {"mlops:stack": stack}
    if env is not None:
        tags["mlops:environment"] = env
    if expires is not None:
        tags["mlops:expires-at"] = expires
    return Found("s3:bucket", "b", "arn:aws:s3:::b", tags)


@pytest.mark.parametrize(
    ("resource", "selector", "selected", "reason"),
    [
        (eph(), Selector(NOW, stack="pr-7"), True, "ephemeral, mlops:stack=pr-7"),
        (eph(env="prod"), Selector(NOW, stack="pr-7"), False, "environment 'prod'"),
        (eph(env="dev"), Selector(NOW, expired=True), False, "environment 'dev'"),
        (eph(env="local"), Selector(NOW, stack="pr-7", expired=True), False, "environment 'local'"),
        (eph(env=None), Selector(NOW, stack="pr-7"), False, "no mlops:environment tag"),
        (eph(stack="pr-8"), Selector(NOW, stack="pr-7"), False, "belongs to stack 'pr-8'"),
        (eph(), Selector(NOW, expired=True), True, "ephemeral, expired"),
        (
            eph(expires="2026-06-01T00:00:00Z"),
            Selector(NOW, expired=True),
            True,
            "ephemeral, expired",
        ),
        (
            eph(expires="2026-06-01T02:00:00+02:00"),
            Selector(NOW, expired=True),
            True,
            "ephemeral, expired",
        ),
        (eph(expires="2026-06-01T00:00:01Z"), Selector(NOW, expired=True), False, "not yet"),
        (eph(expires=None), Selector(NOW, expired=True), False, "no mlops:expires-at tag"),
        (eph(expires="2026-05-31T00:00:00"), Selector(NOW, expired=True), False, "has no timezone"),
        (eph(expires="soon"), Selector(NOW, expired=True), False, "is not ISO 8601"),
        (eph(expires="soon"), Selector(NOW, stack="pr-7"), True, "ephemeral, mlops:stack=pr-7"),
    ],
)
def test_verdict(resource: Found, selector: Selector, selected: bool, reason: str) -> None:
    result = verdict(resource, selector)
    assert result.selected is selected
    assert reason in result.reason


def test_selector_needs_a_filter() -> None:
    with pytest.raises(ValueError, match="--stack or --expired"):
        Selector(NOW)


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        ("arn:aws:s3:::mlops-pr-7-raw", ("s3:bucket", "mlops-pr-7-raw")),
        (
            "arn:aws:logs:us-east-1:1:log-group:/mlops/pr-7/jobs:*",
            ("logs:log-group", "/mlops/pr-7/jobs"),
        ),
        (
            "arn:aws:logs:us-east-1:1:log-group:/mlops/pr-7/jobs",
            ("logs:log-group", "/mlops/pr-7/jobs"),
        ),
        ("arn:aws:ec2:us-east-1:1:security-group/sg-123", ("ec2:security-group", "sg-123")),
        ("arn:aws:kms:us-east-1:1:key/abcd-ef", ("kms:key", "abcd-ef")),
        ("arn:aws:iam::1:role/service-role/pr-7-job", ("iam:role", "pr-7-job")),
        ("arn:aws:iam::1:policy/pr-7-read", ("iam:policy", "arn:aws:iam::1:policy/pr-7-read")),
        ("arn:aws:batch:us-east-1:1:job-queue/pr-7-q", ("batch:job-queue", "pr-7-q")),
        ("arn:aws:ecr:us-east-1:1:repository/pr-7/jobs", ("ecr:repository", "pr-7/jobs")),
        (
            "arn:aws:states:us-east-1:1:stateMachine:retrain",
            ("states:stateMachine", "arn:aws:states:us-east-1:1:stateMachine:retrain"),
        ),
        ("arn:aws:cloudwatch:us-east-1:1:alarm:drift", ("cloudwatch:alarm", "drift")),
        ("arn:aws:sns:us-east-1:1:alerts", ("sns:topic", "arn:aws:sns:us-east-1:1:alerts")),
        ("not-an-arn", ("unknown", "not-an-arn")),
    ],
)
def test_kind_and_name(arn: str, expected: tuple[str, str]) -> None:
    assert kind_and_name(arn) == expected


def test_deletion_order_puts_dependents_first() -> None:
    kinds = [
        "ec2:security-group",
        "kms:key",
        "iam:role",
        "batch:compute-environment",
        "s3:bucket",
        "batch:job-queue",
        "ec2:vpc",
    ]
    ordered = [r.kind for r in in_deletion_order([Found(k, k, k) for k in kinds])]
    assert ordered == [
        "batch:job-queue",
        "batch:compute-environment",
        "s3:bucket",
        "iam:role",
        "kms:key",
        "ec2:security-group",
        "ec2:vpc",
    ]
    assert DELETION_ORDER[-1] == "ec2:security-group"

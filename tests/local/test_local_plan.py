"""The local platform's reading of the plan, without running anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops.plan import Plan
from mlops_local import contracts, least_privilege
from mlops_local.apply import HANDLERS, SKIPPED
from mlops_local.iam import Access
from mlops_local.plan import RANDOM_PASSWORD, LocalPlan, PlanError
from tests.conftest import plan_for


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> LocalPlan:
    path = tmp_path_factory.mktemp("plan") / "local-plan.json"
    path.write_text(plan_for("local").to_json())
    plan = LocalPlan.load(path)
    plan.generate_passwords(path.parent / "passwords.json")
    return plan


def test_every_aws_type_of_the_plan_is_applied_or_left_out_with_a_reason(local: LocalPlan) -> None:
    types = {
        r.type for r in local.plan.resources if r.custom and not r.type.startswith("kubernetes:")
    }
    unknown = sorted(t for t in types if t not in HANDLERS and t not in SKIPPED)
    assert unknown == [], "add these to mlops_local/apply.py (HANDLERS or SKIPPED)"
    assert not set(HANDLERS) & set(SKIPPED)


def test_resources_come_after_what_they_depend_on(local: LocalPlan) -> None:
    seen: set[str] = set()
    for resource in local.in_dependency_order():
        missing = [d for d in resource.dependencies if d in local.plan.by_urn() and d not in seen]
        assert missing == [], resource.urn
        seen.add(resource.urn)
    assert len(seen) == len(local.plan.resources)


def test_passwords_follow_their_inputs_and_are_kept_per_work_dir(
    local: LocalPlan, tmp_path: Path
) -> None:
    for resource in local.plan.of_type(RANDOM_PASSWORD):
        value = local.passwords[resource.urn]
        assert len(value) == resource.inputs["length"]
        if resource.inputs.get("special") is False:
            assert value.isalnum()
    store = tmp_path / "passwords.json"
    first = LocalPlan.load(local.path)
    first.generate_passwords(store)
    again = LocalPlan.load(local.path)
    again.generate_passwords(store)
    assert again.passwords == first.passwords


def test_secrets_get_the_generated_passwords_where_the_templates_say(local: LocalPlan) -> None:
    mlflow = local.secret_data("mlflow")["mlflow-server"]
    server = local.secret_data("mlops-serving")["model-server-tracking"]
    assert "{{random:" not in json.dumps([mlflow, server])
    # The model server logs in with the admin password MLflow starts with.
    assert server["password"] == mlflow["admin-password"]
    version = local.plan.of_type("aws:secretsmanager/secretVersion:SecretVersion")[0]
    assert local.secret_value(version, "secretString") == mlflow["admin-password"]


def test_plans_that_cannot_run_here_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no such plan; write one with `mlops plan"):
        LocalPlan.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(PlanError, match="not a readable plan JSON"):
        LocalPlan.load(tmp_path / "bad.json")
    empty = Plan(project="mlops-platform", stack="dev", resources=[])
    (tmp_path / "empty.json").write_text(empty.to_json())
    with pytest.raises(PlanError, match="declares no workloads"):
        LocalPlan.load(tmp_path / "empty.json")


def test_job_connections_are_read_from_the_job_definitions(local: LocalPlan) -> None:
    connections = contracts.job_connections(local.plan)
    ports = {(c.port, c.inside_vpc) for c in connections}
    assert ports == {(443, False), (5000, True)}, connections


@pytest.mark.parametrize(
    ("rules", "port", "inside", "admitted"),
    [
        ([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], 443, False, True),
        ([{"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 5000, "IpRanges": [{"CidrIp": "10.40.0.0/16"}]}], 5000, True, True),
        ([{"IpProtocol": "tcp", "FromPort": 5000, "ToPort": 5000, "IpRanges": [{"CidrIp": "10.99.0.0/16"}]}], 5000, True, False),
        ([{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], 5000, True, False),
        ([{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], 5000, True, True),
    ],
)  # fmt: skip
def test_security_group_egress_admits_a_connection_only_on_its_port_and_range(
    rules: list[dict[str, object]], port: int, inside: bool, admitted: bool
) -> None:
    assert contracts._admits(rules, port, inside, "10.40.0.0/16") is admitted


def test_s3_object_calls_on_a_kms_bucket_imply_the_kms_use_aws_checks() -> None:
    keys = {"data": "arn:aws:kms:us-east-1:123456789012:key/k"}
    assert least_privilege.implied(Access("s3:PutObject", "arn:aws:s3:::data/x"), keys) == [
        Access("kms:GenerateDataKey", keys["data"])
    ]
    assert least_privilege.implied(Access("s3:GetObject", "arn:aws:s3:::data/x"), keys) == [
        Access("kms:Decrypt", keys["data"])
    ]
    assert least_privilege.implied(Access("s3:ListBucket", "arn:aws:s3:::data"), keys) == []
    assert least_privilege.implied(Access("s3:GetObject", "arn:aws:s3:::other/x"), keys) == []

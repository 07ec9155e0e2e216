"""The contracts between resources that no emulator runs, checked as rules over the plan:
each shipped plan passes, and a copy with the defect class of a failed first `pulumi up`
put back is caught, naming the resource."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from infra import policy
from infra.policy import support
from mlops.plan import Plan
from tests.review.conftest import mutate, plan_for

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        if resource["type"].startswith("mlops:"):
            return  # a component of the same name: its resources carry the inputs
        target = resource["inputs"]
        *parents, leaf = path.split(".")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[leaf] = value

    return edit


def _json_edit(field: str, change: Callable[[Any], None]) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        data = json.loads(resource["inputs"][field])
        change(data)
        resource["inputs"][field] = json.dumps(data)

    return edit


def _drop_dependency(fragment: str) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        if resource["type"].startswith("mlops:"):
            return
        resource["dependencies"] = [d for d in resource["dependencies"] if fragment not in d]

    return edit


def _both(*edits: Edit) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        for e in edits:
            e(resource)

    return edit


def _use_platform_key_for_root_volumes(plan: Plan) -> Edit:
    (key,) = plan.of_type("aws:kms/key:Key")
    arn = plan.outputs["kms_key_arn"]

    def edit(resource: dict[str, Any]) -> None:
        resource["inputs"]["blockDeviceMappings"][0]["ebs"]["kmsKeyId"] = arn
        resource["dependencies"] = sorted({*resource["dependencies"], key.urn})

    return edit


def _statements(change: Callable[[list[dict[str, Any]]], None]) -> Edit:
    return _json_edit("policy", lambda doc: change(doc["Statement"]))


def _without_sid(sid: str) -> Edit:
    return _statements(lambda s: s.__setitem__(slice(None), [x for x in s if x.get("Sid") != sid]))


def _with_condition_on(sid: str) -> Edit:
    def change(statements: list[dict[str, Any]]) -> None:
        for s in statements:
            if s.get("Sid") == sid:
                s["Condition"] = {"StringEquals": {"aws:SourceAccount": "123456789012"}}

    return _statements(change)


def _container(path: str, value: Any) -> Edit:
    return _set(f"spec.template.spec.containers.0.{path}", value)


def _mlflow_env(name: str, value: str | None) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        container = resource["inputs"]["spec"]["template"]["spec"]["containers"][0]
        env = [e for e in container["env"] if e["name"] != name]
        if value is not None:
            env.append({"name": name, "value": value})
        container["env"] = env

    return edit


def _egress_without(port: int) -> Edit:
    def edit(resource: dict[str, Any]) -> None:
        resource["inputs"]["egress"] = [
            e for e in resource["inputs"]["egress"] if e["fromPort"] != port
        ]

    return edit


# (rule, stack, what breaks, {resource name: edit} or a factory given the plan, flagged names)
CASES: list[tuple[str, str, str, Callable[[Plan], dict[str, Edit]], set[str]]] = [
    (
        "MLOPS-KMS-003", "prod", "root volumes with the platform key, no Auto Scaling grant",
        lambda p: {"mlops-prod-ng-system-lt": _use_platform_key_for_root_volumes(p)},
        {"mlops-prod-ng-system-lt"},
    ),
    (
        "MLOPS-KMS-003", "dev", "the EBS CSI driver's role without the key statements",
        lambda p: {"mlops-dev-ebs-csi-kms": _statements(lambda s: s.clear())},
        {"mlops-dev-gp3"},
    ),
    (
        "MLOPS-KMS-003", "dev", "EventBridge allowed only under a source condition",
        lambda p: {"mlops-dev-data-key": _with_condition_on("EventBridgeAlerts")},
        {"mlops-dev-alerts"},
    ),
    (
        "MLOPS-KMS-003", "prod", "no key statement for budget notifications",
        lambda p: {"mlops-prod-data-key": _statements(
            lambda s: [x.__setitem__("Principal", {"Service": ["cloudwatch.amazonaws.com"]})
                       for x in s if x.get("Sid") == "AlertPublishers"]
        )},
        {"mlops-prod-alerts"},
    ),
    (
        "MLOPS-KMS-003", "dev", "no key statement for the log service",
        lambda p: {"mlops-dev-data-key": _without_sid("CloudWatchLogsEncryption")},
        {"mlops-dev-eks-logs", "mlops-dev-training-logs", "mlops-dev-retrain-logs", "mlops-dev-flow-logs"},
    ),
    (
        "MLOPS-EKS-005", "dev", "a private-only endpoint for a deployer outside the VPC",
        lambda p: {"mlops-dev-eks": _set("vpcConfig.endpointPublicAccess", False)},
        {"mlops-dev-eks"},
    ),
    (
        "MLOPS-EKS-005", "prod", "no cluster security group rule for the in-VPC deployer",
        lambda p: {"mlops-prod-eks-deployer-0": _both(_set("fromPort", 22), _set("toPort", 22))},
        {"mlops-prod-eks"},
    ),
    (
        "MLOPS-EKS-005", "dev", "no declared deployer",
        lambda p: {"mlops-dev-eks": _set("tags", {"Name": "mlops-dev-eks"})},
        {"mlops-dev-eks"},
    ),
    (
        "MLOPS-K8S-001", "dev", "MLflow created before its namespace",
        lambda p: {"mlops-dev-tracking-server": _drop_dependency("tracking-ns")},
        {"mlops-dev-tracking-server"},
    ),
    (
        "MLOPS-K8S-001", "dev", "the ServiceMonitor before the chart's CRDs",
        lambda p: {"mlops-dev-model-server-monitor": _drop_dependency("kube-prometheus-stack")},
        {"mlops-dev-model-server-monitor"},
    ),
    (
        "MLOPS-K8S-002", "dev", "the server probed where an empty registry answers 503",
        lambda p: {"mlops-dev-model-server": _container("readinessProbe.httpGet.path", "/health/model")},
        {"mlops-dev-model-server"},
    ),
    (
        "MLOPS-K8S-003", "dev", "MLflow's limit below its footprint",
        lambda p: {"mlops-dev-tracking-server": _container("resources.limits.memory", "512Mi")},
        {"mlops-dev-tracking-server"},
    ),
    (
        "MLOPS-K8S-003", "prod", "MLflow's job-execution consumers on",
        lambda p: {"mlops-prod-tracking-server": _mlflow_env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", None)},
        {"mlops-prod-tracking-server"},
    ),
    (
        "MLOPS-NET-001", "dev", "the Batch security group without the tracking port",
        lambda p: {"mlops-dev-training-sg": _egress_without(5000)},
        {f"mlops-dev-training-{j}" for j in ("prepare", "train", "evaluate", "register", "drift")},
    ),
    (
        "MLOPS-NET-001", "prod", "the database without ingress from the cluster",
        lambda p: {"mlops-prod-tracking-db-from-cluster": _set("fromPort", 5433)},
        {"mlops-prod-tracking-db"},
    ),
    (
        "MLOPS-SUP-001", "prod", "EKS 1.33 with standard support over",
        lambda p: {"mlops-prod-eks": _set("version", "1.33")},
        {"mlops-prod-eks", "mlops-prod-addon-kube-proxy"},
    ),
    (
        "MLOPS-SUP-001", "prod", "a retired PostgreSQL minor",
        lambda p: {"mlops-prod-tracking-db": _set("engineVersion", "16.4")},
        {"mlops-prod-tracking-db"},
    ),
    (
        "MLOPS-SUP-001", "dev", "a chart pinned for more than a year",
        lambda p: {"mlops-dev-kube-prometheus-stack": _set("version", "77.6.2")},
        {"mlops-dev-kube-prometheus-stack"},
    ),
    (
        "MLOPS-IMG-001", "dev", "a job definition running a tag",
        lambda p: {"mlops-dev-training-train": _json_edit(
            "containerProperties", lambda c: c.__setitem__("image", c["image"].split("@")[0] + ":0.1.0")
        )},
        {"mlops-dev-training-train"},
    ),
    (
        "MLOPS-IMG-002", "dev", "a Deployment with a hand-written digest of a built image",
        lambda p: {"mlops-dev-model-server": _drop_dependency("image-server")},
        {"mlops-dev-model-server"},
    ),
]  # fmt: skip
CASE_RULES = frozenset(c[0] for c in CASES)


@pytest.fixture(autouse=True)
def _the_day_of_the_audit() -> Any:
    support.set_today(date(2026, 12, 2))
    yield
    support.set_today(None)


def _findings(plan: Plan, rule_id: str) -> set[str]:
    rule = policy.RULES_BY_ID[rule_id]
    return {f.name for f in policy.evaluate(policy.resources_from_plan(plan), rules=[rule])}


@pytest.mark.parametrize(
    ("rule_id", "stack", "defect", "edits", "flagged"),
    CASES,
    ids=[f"{c[0]}: {c[2]}" for c in CASES],
)
def test_the_defect_is_caught_and_the_shipped_plan_passes(
    rule_id: str,
    stack: str,
    defect: str,
    edits: Callable[[Plan], dict[str, Edit]],
    flagged: set[str],
) -> None:
    plan = plan_for(stack)
    assert _findings(plan, rule_id) == set(), f"the shipped {stack} plan fails {rule_id}"
    broken = mutate(plan, edits(plan))
    assert _findings(broken, rule_id) == flagged, defect


def test_every_new_stack_rule_has_a_defect_case() -> None:
    for rule in policy.RULES:
        if rule.id.split("-")[1] in ("K8S", "NET", "SUP", "IMG") or rule.id in (
            "MLOPS-KMS-003",
            "MLOPS-EKS-005",
        ):
            assert rule.id in CASE_RULES, rule.id


def test_support_windows_move_with_the_date() -> None:
    support.set_today(date(2026, 7, 1))
    assert support.eks_problem("1.33", support.today()) is None
    support.set_today(date(2026, 7, 29))
    assert "left standard support on 2026-07-29" in str(
        support.eks_problem("1.33", support.today())
    )
    assert support.supported_eks_versions(date(2026, 12, 2)) == ["1.35", "1.36"]

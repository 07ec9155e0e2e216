"""`diff_plans`: matching by URN, property paths, replacements and classes, on real plans."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops.plan import Plan
from mlops.review import diff, markdown
from mlops.review.diff import COST, DATA_DESTRUCTIVE, SECURITY, SERVING, diff_plans
from tests.conftest import ROOT
from tests.review.conftest import mutate


def _set(path: str, value: Any) -> Any:
    def edit(resource: dict[str, Any]) -> None:
        target = resource["inputs"]
        *parents, leaf = path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value

    return edit


def _change(d: diff.PlanDiff, name: str) -> diff.ResourceChange:
    found = [c for c in d.changes if c.name == name]
    assert len(found) == 1, f"expected one change to {name}, got {[c.name for c in d.changes]}"
    return found[0]


def test_identical_plans_have_no_changes(prod: Plan) -> None:
    d = diff_plans(prod, prod)
    assert d.changes == []
    assert d.unchanged == sum(1 for r in prod.resources if r.type != "pulumi:pulumi:Stack")


def test_bucket_rename_is_a_data_destructive_replacement_ranked_first(prod: Plan) -> None:
    head = mutate(
        prod,
        {
            "mlops-prod-raw": _set("bucket", "mlops-prod-raw-renamed"),
            "mlops-prod-ng-serving": _set("scalingConfig.desiredSize", 4),
            "mlops-prod-access-logs": _set("tags.team", "x"),
        },
    )
    d = diff_plans(prod, head)
    first = d.changes[0]
    assert (first.name, first.action) == ("mlops-prod-raw", "replace")
    assert first.replace_paths == ["bucket"]
    assert first.classes == (DATA_DESTRUCTIVE,)
    assert "Bucket replaced" in first.reasons[DATA_DESTRUCTIVE][0]
    assert [(p.path, p.before, p.after) for p in first.properties] == [
        ("bucket", "mlops-prod-raw-f6836b5", "mlops-prod-raw-renamed")
    ]


def test_versioning_turned_off_in_prod_is_data_destructive(prod: Plan) -> None:
    head = mutate(
        prod, {"mlops-prod-curated-versioning": _set("versioningConfiguration.status", "Suspended")}
    )
    change = _change(diff_plans(prod, head), "mlops-prod-curated-versioning")
    assert change.action == "update"
    assert change.has(DATA_DESTRUCTIVE)
    assert (
        "versioningConfiguration.status: Enabled → Suspended" in change.reasons[DATA_DESTRUCTIVE][0]
    )


def test_node_group_resize_is_serving_and_cost(prod: Plan) -> None:
    head = mutate(prod, {"mlops-prod-ng-serving": _set("scalingConfig.desiredSize", 5)})
    change = _change(diff_plans(prod, head), "mlops-prod-ng-serving")
    assert change.action == "update"
    assert change.classes == (SERVING, COST)
    # 2 more m6i.xlarge at $0.192/h for 730 h.
    assert change.reasons[COST] == ["monthly $420.48 → $700.80 (+280.32)"]


def test_iam_wildcard_is_security(prod: Plan) -> None:
    def widen(resource: dict[str, Any]) -> None:
        doc = json.loads(resource["inputs"]["policy"])
        doc["Statement"].append({"Effect": "Allow", "Action": "*", "Resource": "*"})
        resource["inputs"]["policy"] = json.dumps(doc)

    change = _change(
        diff_plans(prod, mutate(prod, {"mlops-prod-training-job-policy": widen})),
        "mlops-prod-training-job-policy",
    )
    assert change.classes == (SECURITY,)
    assert any("wildcard action granted: *" in why for why in change.reasons[SECURITY])


def test_new_scoped_action_is_security_but_removing_one_is_not(prod: Plan) -> None:
    def edit(action: str | None) -> Any:
        def apply(resource: dict[str, Any]) -> None:
            doc = json.loads(resource["inputs"]["policy"])
            if action:
                doc["Statement"][0]["Action"] = [*doc["Statement"][0]["Action"], action]
            else:
                doc["Statement"][0]["Action"] = doc["Statement"][0]["Action"][:1]
            resource["inputs"]["policy"] = json.dumps(doc)

        return apply

    name = "mlops-prod-training-job-policy"
    broadened = _change(diff_plans(prod, mutate(prod, {name: edit("s3:DeleteBucket")})), name)
    assert broadened.has(SECURITY)
    assert "s3:deletebucket" in broadened.reasons[SECURITY][0]
    narrowed = _change(diff_plans(prod, mutate(prod, {name: edit(None)})), name)
    assert not narrowed.has(SECURITY)


def test_protect_removed_is_data_destructive(prod: Plan) -> None:
    def unprotect(resource: dict[str, Any]) -> None:
        resource["protect"] = False
        resource["retain_on_delete"] = False

    change = _change(
        diff_plans(prod, mutate(prod, {"mlops-prod-data-key": unprotect})), "mlops-prod-data-key"
    )
    assert change.reasons[DATA_DESTRUCTIVE] == ["protect removed", "retain_on_delete removed"]


def test_security_group_opened_to_the_world(prod: Plan) -> None:
    def open_(resource: dict[str, Any]) -> None:
        resource["inputs"]["ingress"][0]["cidrBlocks"] = ["0.0.0.0/0"]

    change = _change(
        diff_plans(prod, mutate(prod, {"mlops-prod-endpoints-sg": open_})),
        "mlops-prod-endpoints-sg",
    )
    assert change.has(SECURITY)
    assert any("0.0.0.0/0" in why for why in change.reasons[SECURITY])


@pytest.mark.parametrize(
    ("name", "path", "value", "needle"),
    [
        (
            "mlops-prod-raw-public-access",
            "blockPublicPolicy",
            False,
            "public access block flag off",
        ),
        ("mlops-prod-raw-encryption", "rules", [], "encryption removed"),
        ("mlops-prod-eks", "vpcConfig.endpointPublicAccess", True, "endpoint"),
        (
            "mlops-prod-training-lt",
            "metadataOptions.httpTokens",
            "optional",
            "IMDSv2 no longer required",
        ),
        ("mlops-prod-tracking-db", "publiclyAccessible", True, "publicly accessible"),
    ],
)
def test_security_cases(prod: Plan, name: str, path: str, value: Any, needle: str) -> None:
    change = _change(diff_plans(prod, mutate(prod, {name: _set(path, value)})), name)
    assert change.has(SECURITY), change.reasons
    assert any(needle in why for why in change.reasons[SECURITY]), change.reasons[SECURITY]


def test_force_destroy_and_deletion_protection_off_are_data_destructive(prod: Plan) -> None:
    head = mutate(
        prod,
        {
            "mlops-prod-models": _set("forceDestroy", True),
            "mlops-prod-tracking-db": _set("deletionProtection", False),
        },
    )
    d = diff_plans(prod, head)
    assert _change(d, "mlops-prod-models").reasons[DATA_DESTRUCTIVE] == ["forceDestroy turned on"]
    assert _change(d, "mlops-prod-tracking-db").reasons[DATA_DESTRUCTIVE] == [
        "deletion protection turned off"
    ]


def test_deleting_and_adding_resources(prod: Plan) -> None:
    data = prod.to_dict()
    data["resources"] = [r for r in data["resources"] if r["name"] != "mlops-prod-jobs"]
    head = Plan.from_dict(data)
    d = diff_plans(prod, head)
    gone = _change(d, "mlops-prod-jobs")
    assert gone.action == "delete"
    assert gone.has(DATA_DESTRUCTIVE)
    back = _change(diff_plans(head, prod), "mlops-prod-jobs")
    assert back.action == "create"
    assert not back.has(DATA_DESTRUCTIVE)


def test_tag_only_change_is_unclassed(prod: Plan) -> None:
    change = _change(
        diff_plans(prod, mutate(prod, {"mlops-prod-ng-system": _set("tags.team", "ml")})),
        "mlops-prod-ng-system",
    )
    assert change.action == "update"
    assert change.classes == ()


def test_json_policy_strings_are_diffed_by_path(prod: Plan) -> None:
    def edit(resource: dict[str, Any]) -> None:
        doc = json.loads(resource["inputs"]["policy"])
        doc["Statement"][0]["Sid"] = "Renamed"
        resource["inputs"]["policy"] = json.dumps(doc)

    change = _change(
        diff_plans(prod, mutate(prod, {"mlops-prod-training-job-policy": edit})),
        "mlops-prod-training-job-policy",
    )
    assert [p.path for p in change.properties] == ["policy.Statement[0].Sid"]


def test_security_rules_are_the_security_and_resilience_resource_rules() -> None:
    # The set `mlops diff` used before rules had categories (it parsed service names out of
    # the ids): S3, KMS, ECR, EKS, EC2, RDS, SG, SNS, LOG resource rules but EKS-004, ECR-003.
    assert {r.id for r in diff._SECURITY_RULES} == {
        "MLOPS-S3-002", "MLOPS-S3-006", "MLOPS-S3-010",
        "MLOPS-KMS-001", "MLOPS-KMS-002",
        "MLOPS-ECR-001", "MLOPS-ECR-002", "MLOPS-ECR-005",
        "MLOPS-EKS-001", "MLOPS-EKS-002", "MLOPS-EKS-003",
        "MLOPS-EC2-001", "MLOPS-EC2-002", "MLOPS-EC2-003",
        "MLOPS-RDS-001", "MLOPS-RDS-002", "MLOPS-RDS-003", "MLOPS-RDS-004", "MLOPS-RDS-005",
        "MLOPS-SG-001", "MLOPS-SG-002", "MLOPS-SG-003",
        "MLOPS-LOG-001", "MLOPS-LOG-002",
        "MLOPS-SNS-001",
        # Since: a workload newly running an image by tag is a security change.
        "MLOPS-IMG-001",
    }  # fmt: skip
    assert all(r.category in ("security", "resilience") for r in diff._SECURITY_RULES)


def test_parse_classes() -> None:
    assert diff.parse_classes("data-destructive, security") == [DATA_DESTRUCTIVE, SECURITY]
    with pytest.raises(
        ValueError, match="unknown class 'bogus'; allowed: data-destructive, security"
    ):
        diff.parse_classes("security,bogus")


def test_load_plan_errors(tmp_path: Path, prod: Plan) -> None:
    with pytest.raises(diff.PlanInputError, match="no such file"):
        diff.load_plan(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(diff.PlanInputError, match="not JSON"):
        diff.load_plan(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(diff.PlanInputError, match="not an mlops plan"):
        diff.load_plan(tmp_path / "other.json")
    data = prod.to_dict() | {"schema": 99}
    (tmp_path / "future.json").write_text(json.dumps(data))
    with pytest.raises(diff.PlanInputError, match="schema 99 is not supported"):
        diff.load_plan(tmp_path / "future.json")
    (tmp_path / "ok.json").write_text(prod.to_json())
    assert len(diff.load_plan(tmp_path / "ok.json").resources) == len(prod.resources)


def _checkout_plan(root: Path, stack: str, out: Path) -> Plan:
    """`mlops plan` of the checkout at `root` (its own sources), as CI records base/head."""
    result = subprocess.run(
        [sys.executable, "-m", "mlops", "plan", "--stack", stack, "--json", str(out)],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return Plan.load(out)


def test_a_source_change_rolls_exactly_the_workloads_running_its_image(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    for entry in ("infra", "mlops", "mlops_local", "training_jobs", "images"):
        shutil.copytree(
            ROOT / entry, checkout / entry, ignore=shutil.ignore_patterns("__pycache__")
        )
    for path in ROOT.glob("Pulumi*.yaml"):
        shutil.copy(path, checkout)
    shutil.copy(ROOT / "pyproject.toml", checkout)
    base = _checkout_plan(checkout, "dev", tmp_path / "base.json")
    with (checkout / "training_jobs" / "serve" / "app.py").open("a") as source:
        source.write("\n# a reviewed change to the model server\n")
    head = _checkout_plan(checkout, "dev", tmp_path / "head.json")

    d = diff_plans(base, head)

    by_name = {r.name: r for r in d.rebuilds}
    # The server and jobs images both contain training_jobs; the tracking image does not.
    assert set(by_name) == {"mlops-dev-image-server", "mlops-dev-image-jobs"}
    assert by_name["mlops-dev-image-server"].rolls == ["mlops-dev-model-server"]
    assert by_name["mlops-dev-image-jobs"].rolls == sorted(
        f"mlops-dev-training-{job}" for job in ("prepare", "train", "evaluate", "register", "drift")
    )
    server = _change(d, "mlops-dev-model-server")
    assert server.has(SERVING) and server.action == "update"
    assert any("rebuilt from changed sources" in why for why in server.reasons[SERVING])
    assert not any(c.name == "mlops-dev-tracking-server" for c in d.changes)
    comment = markdown.render(markdown.build_review(base, head))
    assert "Images rebuilt, and the workloads that roll" in comment
    assert "`mlops-dev-model-server`" in comment

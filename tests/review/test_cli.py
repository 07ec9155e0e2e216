"""`mlops diff|policy|cost`: files in, exit codes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mlops import cli
from mlops.cli import stacks
from mlops.plan import Plan
from tests.review.conftest import mutate, plan_for


@pytest.fixture
def plans(tmp_path: Path, prod: Plan) -> tuple[Path, Path]:
    def rename(r: dict[str, Any]) -> None:
        r["inputs"]["bucket"] = "renamed"

    base, head = tmp_path / "base.json", tmp_path / "head.json"
    base.write_text(prod.to_json())
    head.write_text(mutate(prod, {"mlops-prod-raw": rename}).to_json())
    return base, head


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Session-cached plans; the loop stays open for the other tests' recordings."""
    monkeypatch.setattr(stacks, "build_plan", lambda stack, project_dir=None: plan_for(stack))
    monkeypatch.setattr(stacks, "close_event_loop", lambda: None)


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli.main, list(args))


def test_diff_writes_markdown_and_fails_on_destructive(
    plans: tuple[Path, Path], tmp_path: Path
) -> None:
    base, head = plans
    md = tmp_path / "comment.md"
    result = _run(
        "diff",
        str(base),
        str(head),
        "--markdown",
        str(md),
        "--fail-on",
        "data-destructive,security",
    )
    assert result.exit_code == 1, result.output
    assert md.read_text().startswith("<!-- mlops-diff -->\n**🔴 mlops diff `prod`")
    assert "replace  aws:s3/bucket:Bucket  mlops-prod-raw  [data-destructive]" in result.output


def test_diff_passes_when_no_class_matches(plans: tuple[Path, Path]) -> None:
    base, head = plans
    assert _run("diff", str(base), str(head), "--fail-on", "security,cost-impacting").exit_code == 0
    assert _run("diff", str(base), str(base), "--fail-on", "data-destructive").exit_code == 0


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (
            None,
            ["--fail-on", "destructive"],
            "unknown class 'destructive'; allowed: data-destructive, security, serving-impacting, cost-impacting",
        ),
        ("missing", [], "no such file"),
        ("not-a-plan", [], "not an mlops plan"),
        ("schema", [], "plan schema 2 is not supported (expected 1)"),
    ],
)
def test_diff_bad_input_exits_2(
    plans: tuple[Path, Path], tmp_path: Path, make: str | None, args: list[str], message: str
) -> None:
    base, head = plans
    if make == "missing":
        head = tmp_path / "nope.json"
    elif make == "not-a-plan":
        head.write_text(json.dumps({"resources": []}))
    elif make == "schema":
        head.write_text(json.dumps(json.loads(base.read_text()) | {"schema": 2}))
    result = _run("diff", str(base), str(head), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_policy_and_cost_commands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, project_root: Path
) -> None:
    _offline(monkeypatch)
    out = tmp_path / "findings.json"
    result = _run(
        "policy", "--stack", "prod", "--json", str(out), "--project-dir", str(project_root)
    )
    # Every shipped stack passes all mandatory rules.
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert not [f for f in data["findings"] if f["enforcement"] == "mandatory"]
    assert len(data["rules"]) >= 30
    cost_json = tmp_path / "cost.json"
    result = _run(
        "cost", "--stack", "prod", "--json", str(cost_json), "--project-dir", str(project_root)
    )
    assert result.exit_code == 0
    assert "total ≈ $" in result.output
    assert json.loads(cost_json.read_text())["by_category"]["cluster"] == 73.0


def test_policy_exceptions_from_the_stack_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, project_root: Path
) -> None:
    (tmp_path / "Pulumi.yaml").write_text((project_root / "Pulumi.yaml").read_text())
    (tmp_path / "infra").symlink_to(project_root / "infra")
    # dev may open its API endpoint to the internet (config allows it outside prod), but the
    # mandatory rule still fails unless the stack states an exception with a reason.
    stack_file = (
        (project_root / "Pulumi.dev.yaml")
        .read_text()
        .replace("public_cidrs: [203.0.113.10/32]", "public_cidrs: [0.0.0.0/0]")
    )
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file)
    # A real recording of the changed project (not the session's cached plans).
    monkeypatch.setattr(stacks, "close_event_loop", lambda: None)
    opened = _run("policy", "--stack", "dev", "--project-dir", str(tmp_path))
    assert opened.exit_code == 1, opened.output
    assert "MLOPS-EKS-002" in opened.output
    stack_file += (
        "  mlops:policy_exceptions:\n"
        "    - {rule: MLOPS-EKS-002, name: mlops-dev-eks, "
        "reason: dev cluster reachable from laptops without VPN}\n"
    )
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file)
    result = _run("policy", "--stack", "dev", "--project-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "mandatory (excepted)" in result.output
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file.replace("MLOPS-EKS-002", "MLOPS-NOPE-9"))
    bad = _run("policy", "--stack", "dev", "--project-dir", str(tmp_path))
    assert bad.exit_code == 2
    assert (
        "error: Pulumi.dev.yaml: mlops:policy_exceptions[0].rule: 'MLOPS-NOPE-9' is not a rule id"
        in bad.output
    )


def _no_rotation(r: dict[str, Any]) -> None:
    r["inputs"]["enableKeyRotation"] = False


def test_policy_on_a_recorded_plan_matches_the_recording(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, project_root: Path, prod: Plan
) -> None:
    _offline(monkeypatch)
    plan = tmp_path / "prod.json"
    plan.write_text(prod.to_json())
    recorded, stored = tmp_path / "recorded.json", tmp_path / "stored.json"
    by_stack = _run("policy", "--stack", "prod", "--json", str(recorded))
    by_plan = _run("policy", "--plan", str(plan), "--json", str(stored))
    assert by_plan.exit_code == by_stack.exit_code == 0, by_plan.output
    assert by_plan.output.splitlines()[0] == by_stack.output.splitlines()[0]
    assert json.loads(stored.read_text()) == json.loads(recorded.read_text())
    assert json.loads(stored.read_text())["stack"] == "prod"


def test_policy_on_a_recorded_plan_fails_and_takes_its_stacks_exceptions(
    tmp_path: Path, project_root: Path, prod: Plan
) -> None:
    plan = tmp_path / "prod.json"
    plan.write_text(mutate(prod, {"mlops-prod-data-key": _no_rotation}).to_json())
    project = tmp_path / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text((project_root / "Pulumi.yaml").read_text())
    # No Pulumi.prod.yaml in this project: no exceptions, the mandatory rule fails.
    failing = _run("policy", "--plan", str(plan), "--project-dir", str(project))
    assert failing.exit_code == 1, failing.output
    assert "MLOPS-KMS-001  mandatory    high      mlops-prod-data-key" in failing.output
    (project / "Pulumi.prod.yaml").write_text(
        (project_root / "Pulumi.prod.yaml").read_text() + "  mlops:policy_exceptions:\n"
        "    - {rule: MLOPS-KMS-001, name: mlops-prod-data-key, reason: rotated by the HSM team}\n"
    )
    excepted = _run("policy", "--plan", str(plan), "--project-dir", str(project))
    assert excepted.exit_code == 0, excepted.output
    assert "mandatory (excepted)" in excepted.output
    assert "excepted: rotated by the HSM team" in excepted.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give exactly one of --stack (record the plan) or --plan PATH"),
        (["--stack", "prod", "--plan", "plan.json"], "give exactly one of --stack"),
        (
            ["--plan", "nope.json"],
            "nope.json: no such file (make one with `mlops plan --json PATH`)",
        ),
    ],
)
def test_policy_needs_exactly_one_source(args: list[str], message: str) -> None:
    result = _run("policy", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_plan_tree_shows_time_to_up(monkeypatch: pytest.MonkeyPatch) -> None:
    _offline(monkeypatch)
    result = _run("plan", "--stack", "dev")
    assert result.exit_code == 0
    assert "estimated time to `pulumi up` from scratch: " in result.output.splitlines()[-1]

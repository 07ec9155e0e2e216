"""The offline plan: complete, deterministic, with parents and dependencies."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.plan import Plan, render_tree
from tests.conftest import ROOT, SHIPPED_STACKS

MLOPS = [sys.executable, "-m", "mlops"]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PULUMI_"))}
    return subprocess.run(
        [*MLOPS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_plan_records_parents_and_dependencies(dev_plan: Plan) -> None:
    by_urn = dev_plan.by_urn()
    (stack,) = [r for r in dev_plan.resources if r.parent is None]
    assert stack.type == "pulumi:pulumi:Stack"
    for resource in dev_plan.resources:
        if resource.parent is not None:
            assert resource.parent in by_urn, f"{resource.urn}: unknown parent"
        for dep in resource.dependencies:
            assert dep in by_urn, f"{resource.urn}: unknown dependency {dep}"
    # Implied by an Output passed as input: the versioning resource takes bucket.id.
    versioning = next(r for r in dev_plan.resources if r.name == "mlops-dev-raw-versioning")
    assert versioning.parent.endswith("mlops:datalake:DataLake::mlops-dev-datalake")
    assert versioning.dependencies == [
        "urn:pulumi:dev::mlops-platform::mlops:datalake:DataLake$aws:s3/bucket:Bucket::mlops-dev-raw"
    ]
    # Explicit depends_on: the bucket policy waits for the public-access block.
    policy = next(r for r in dev_plan.resources if r.name == "mlops-dev-raw-policy")
    assert any(d.endswith("::mlops-dev-raw-public-access") for d in policy.dependencies)
    # Components are not custom; their children are.
    assert not by_urn[versioning.parent].custom and versioning.custom


def test_outputs_name_what_the_jobs_need(any_plan: Plan) -> None:
    for key in (
        "raw_bucket",
        "curated_bucket",
        "models_bucket",
        "captures_bucket",
        "kms_key_arn",
        "region",
    ):
        assert key in any_plan.outputs, f"stack output {key} missing"
    buckets = {b.inputs["bucket"] for b in any_plan.of_type("aws:s3/bucket:Bucket")}
    assert any_plan.outputs["raw_bucket"] in buckets


def test_json_is_sorted_and_round_trips(any_plan: Plan) -> None:
    data = json.loads(any_plan.to_json())
    assert data["schema"] == 1 and data["project"] == "mlops-platform"
    urns = [r["urn"] for r in data["resources"]]
    assert urns == sorted(urns)
    assert Plan.from_dict(data).to_json() == any_plan.to_json()


def test_tree_shows_hierarchy_and_counts(prod_plan: Plan) -> None:
    tree = render_tree(prod_plan)
    assert tree.splitlines()[0].startswith("pulumi:pulumi:Stack")
    assert "├─ mlops:datalake:DataLake  mlops-prod-datalake" in tree
    assert "aws:s3/bucket:Bucket  mlops-prod-raw  [protect retain]" in tree
    assert f"{len(prod_plan.resources) - 1} resources" in tree


@pytest.mark.parametrize("stack", ["prod"])
def test_cli_json_is_byte_identical_across_runs(stack: str, tmp_path: Path) -> None:
    first, second = (
        _run("plan", "--stack", stack, "--json"),
        _run("plan", "--stack", stack, "--json"),
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stderr == "" and "Traceback" not in second.stderr
    _run("plan", "--stack", stack, "--json", str(tmp_path / "plan.json"))
    assert (tmp_path / "plan.json").read_text() == first.stdout


def test_cli_unknown_stack_is_a_clear_error() -> None:
    result = _run("plan", "--stack", "qa")
    assert result.returncode == 2
    assert "unknown stack 'qa'" in result.stderr
    for stack in SHIPPED_STACKS:
        assert stack in result.stderr
    assert "Traceback" not in result.stderr


def _project_copy(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path)
    for stack in SHIPPED_STACKS:
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", tmp_path)
    (tmp_path / "infra").symlink_to(ROOT / "infra")
    return tmp_path


def test_cli_bad_value_names_its_field_without_traceback(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stack_file = project / "Pulumi.prod.yaml"
    stack_file.write_text(
        stack_file.read_text()
        .replace("az_count: 3", "az_count: 0")
        .replace("nat_mode: per_az", "nat_mode: single")
    )
    result = _run("plan", "--stack", "prod", "--project-dir", str(project))
    assert result.returncode == 2, result.stdout
    assert "mlops:network.az_count = 0" in result.stderr
    assert 'mlops:network.nat_mode = "single"' in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == "", "nothing may be declared or printed as a plan"


def test_cli_broken_yaml_is_a_clear_error(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    (project / "Pulumi.dev.yaml").write_text("config:\n  mlops:owner: [unclosed\n")
    result = _run("plan", "--stack", "dev", "--project-dir", str(project))
    assert result.returncode == 2
    assert "Pulumi.dev.yaml" in result.stderr and "line" in result.stderr
    assert "Traceback" not in result.stderr


def test_secret_config_is_never_printed(tmp_path: Path) -> None:
    project = _project_copy(tmp_path)
    stack_file = project / "Pulumi.dev.yaml"
    stack_file.write_text(
        stack_file.read_text()
        + "  mlops:owner_secret_note:\n    secure: AAABADeadBeefCipherText==\n"
    )
    result = _run("plan", "--stack", "dev", "--project-dir", str(project))
    # An unknown key is still an error, and the ciphertext never appears in output.
    assert result.returncode == 2
    assert 'mlops:owner_secret_note = "[secret]"' in result.stderr
    assert "DeadBeef" not in result.stderr + result.stdout


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def test_no_shipped_plan_has_an_input_the_mock_could_have_known(any_plan: Plan) -> None:
    # An unknown marker means an output the program reads that the mock does not model:
    # model it in mlops/recorder.py (AUTONAMED or `new_resource`), so review sees the value.
    unknown = {
        r.name: s
        for r in any_plan.resources
        for s in _strings(r.inputs)
        if s.startswith("[unknown")
    }
    assert not unknown, unknown


def test_an_unmodelled_output_is_recorded_as_a_marker_naming_it_never_omitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops import recorder
    from mlops.stackfiles import find_project, read_stack_config

    # As the recorder was before it modelled parameter group names: the RDS instance's
    # parameterGroupName (and its dependency) went missing from the plan.
    monkeypatch.delitem(recorder.AUTONAMED, "aws:rds/parameterGroup:ParameterGroup")
    project = find_project(ROOT)
    plan = recorder.record(project, "prod", read_stack_config(project, "prod"))
    (db,) = plan.of_type("aws:rds/instance:Instance")
    (params,) = plan.of_type("aws:rds/parameterGroup:ParameterGroup")
    assert db.inputs["parameterGroupName"] == (
        "[unknown: aws:rds/parameterGroup:ParameterGroup::mlops-prod-tracking-db-params.name]"
    )
    assert params.urn in db.dependencies

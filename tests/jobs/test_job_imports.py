"""No job module imports another: each Batch job and the model server load only their own step.

`register` once imported `evaluate` (for its Decision model), which imported `train`, so the
registry step loaded the training code and all of scikit-learn's estimators. Shared pieces
live in modules of their own (decision, pointers, scoring, ...); `lifecycle`, the one
composite (the four pipeline steps in one process), is the only module allowed to import
job modules. Checked twice: every import statement in a job's source, lazy ones included,
and what importing the job in a fresh interpreter actually loads.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import pytest

from training_jobs import contract

ROOT = Path(__file__).resolve().parents[2]


def _module(job: str) -> str:
    """The module holding a job's `main` (`python -m training_jobs.<job>` runs it)."""
    if job == contract.JOB_DRIFT:
        return "training_jobs.drift.job"
    if job == contract.MODULE_SERVE:
        return "training_jobs.serve.main"
    return f"training_jobs.{job}"


# Every job, and the `__main__` shims of the two packages.
CHECKED = tuple(
    _module(job) for job in (*contract.BATCH_JOBS, contract.MODULE_SERVE, contract.MODULE_VERIFY)
)
JOB_MODULES = frozenset(
    {
        *CHECKED,
        _module(contract.MODULE_LIFECYCLE),
        "training_jobs.drift.__main__",
        "training_jobs.serve.__main__",
    }
)


def _imported(tree: ast.AST) -> Iterator[str]:
    """Every module an import statement names, at any depth (lazy imports included);
    `from training_jobs import train` names `training_jobs.train`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_the_checked_modules_are_the_job_entrypoints() -> None:
    # A job module renamed or moved must not silently drop out of the checks below.
    for module in JOB_MODULES:
        assert find_spec(module) is not None, module
    assert set(CHECKED) >= {f"training_jobs.{job}" for job in contract.PIPELINE_JOBS}


@pytest.mark.parametrize("module", CHECKED)
def test_no_job_module_imports_another_in_its_source(module: str) -> None:
    spec = find_spec(module)
    assert spec is not None and spec.origin is not None
    tree = ast.parse(Path(spec.origin).read_text(), filename=spec.origin)
    others = sorted(set(_imported(tree)) & (JOB_MODULES - {module}))
    assert others == [], f"{module} imports the job module(s) {others}"


_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(sys.modules)))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, set[str]]:
    """`sys.modules` after importing each job module alone in a fresh interpreter
    (all started at once: each pays for its own imports)."""
    processes = {
        module: subprocess.Popen(
            [sys.executable, "-c", _PROBE, module],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for module in CHECKED
    }
    result = {}
    for module, process in processes.items():
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        result[module] = set(json.loads(out))
    return result


@pytest.mark.parametrize("module", CHECKED)
def test_importing_a_job_loads_no_other_job(module: str, loaded: dict[str, set[str]]) -> None:
    assert module in loaded[module]
    assert sorted(loaded[module] & (JOB_MODULES - {module})) == []


def test_register_loads_neither_train_nor_evaluate_nor_scikit_learn(
    loaded: dict[str, set[str]],
) -> None:
    # What is true at import: nothing of scikit-learn. At run time register loads the
    # candidate (a scikit-learn pipeline) and skl2onnx to compile it (training_jobs/compile.py).
    modules = loaded["training_jobs.register"]
    assert {"training_jobs.train", "training_jobs.evaluate", "training_jobs.scoring"}.isdisjoint(
        modules
    )
    assert {"sklearn", "sklearn.ensemble", "skl2onnx"}.isdisjoint(modules)
    assert "training_jobs.decision" in modules  # what it reads evaluate's decision with


def test_the_model_server_and_the_drift_job_load_no_mlflow_or_scikit_learn_at_import(
    loaded: dict[str, set[str]],
) -> None:
    # The server's compiled path never needs them; the drift job imports its clients in main.
    for module in ("training_jobs.serve.main", "training_jobs.drift.job"):
        assert {"mlflow", "sklearn", "training_jobs.tracking"}.isdisjoint(loaded[module]), module

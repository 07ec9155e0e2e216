"""The plan's container environment, read by the code that reads it in production.

Every shipped stack's job definitions and Deployments set variables that a workload's
settings class (or MLflow itself) must read. Each is parsed here with the real class, so
a variable renamed on either side fails this test instead of a deployment: a job
definition missing a required variable fails to parse; a variable nothing reads (a typo, a
renamed field) is found by dropping it and seeing that nothing changes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from tests.conftest import SHIPPED_STACKS, plan_for
from training_jobs import contract

SECRET_VALUE = "plan-secret"  # values the plan takes from Secrets Manager / a k8s Secret


def _settings_class(module: str) -> type[BaseSettings]:
    """The settings class the module `python -m <module>` runs with."""
    from training_jobs import evaluate, prepare, register, train
    from training_jobs.drift import job as drift_job
    from training_jobs.serve import settings as serve_settings

    classes: dict[str, type[BaseSettings]] = {
        "training_jobs.prepare": prepare.Settings,
        "training_jobs.train": train.Settings,
        "training_jobs.evaluate": evaluate.Settings,
        "training_jobs.register": register.Settings,
        "training_jobs.drift": drift_job.DriftSettings,
        "training_jobs.serve": serve_settings.ServeSettings,
    }
    return classes[module]


def _job_definitions(stack: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(definition name, job module, environment) of each Batch job definition."""
    for r in plan_for(stack).resources:
        if r.type != "aws:batch/jobDefinition:JobDefinition":
            continue
        props = r.inputs["containerProperties"]
        props = json.loads(props) if isinstance(props, str) else props
        command = props["command"]
        assert command[:2] == ["python", "-m"], f"{r.name}: command {command}"
        env = {e["name"]: e["value"] for e in props.get("environment", [])}
        env |= {s["name"]: SECRET_VALUE for s in props.get("secrets", [])}
        yield r.name, command[2], env


def _deployment_containers(stack: str) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    for r in plan_for(stack).resources:
        if r.type != "kubernetes:apps/v1:Deployment":
            continue
        for c in r.inputs["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value", SECRET_VALUE) for e in c.get("env", [])}
            yield r.name, c, env


@contextmanager
def _only_env(env: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, dict(env), clear=True):
        yield


def _parse(cls: type[BaseSettings], env: Mapping[str, str]) -> dict[str, Any] | str:
    """The settings a workload would start with, or why it would refuse to start."""
    with _only_env(env):
        try:
            return cls().model_dump()
        except ValidationError as exc:
            return str(exc)


def _other_value(value: str) -> str:
    """A different value of the same kind (a number stays a number)."""
    return str(int(value) + 1) if value.isdigit() else f"{value}-changed"


def _variables_read(cls: type[BaseSettings], env: dict[str, str], prefix: str) -> set[str]:
    """The `prefix*` variables of `env` the class reads: changing one changes its settings
    (or is refused by its validation). A value equal to a default is found too."""
    full = _parse(cls, env)
    return {
        name
        for name in env
        if name.startswith(prefix) and _parse(cls, env | {name: _other_value(env[name])}) != full
    }


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_job_definition_parses_with_its_jobs_settings(stack: str) -> None:
    jobs = list(_job_definitions(stack))
    assert {module.rsplit(".", 1)[-1] for _, module, _ in jobs} == set(contract.BATCH_JOBS)
    for name, module, env in jobs:
        parsed = _parse(_settings_class(module), env)
        assert isinstance(parsed, dict), f"{name} ({module}) would not start: {parsed}"


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_platform_variable_of_the_job_definitions_is_read(stack: str) -> None:
    """The job definitions share one environment; each MLOPS_* variable in it is read by
    the jobs it is meant for (at least one), and the model name reaches every job."""
    jobs = list(_job_definitions(stack))
    offered = {n for _, _, env in jobs for n in env if n.startswith(contract.ENV_PREFIX)}
    read: dict[str, set[str]] = {
        module: _variables_read(_settings_class(module), env, contract.ENV_PREFIX)
        for _, module, env in jobs
    }
    unread = offered - set().union(*read.values())
    assert not unread, f"{stack}: job definitions set {sorted(unread)}, no job reads them"
    for module, names in read.items():
        assert contract.VAR_MODEL_NAME in names, f"{module} ignores {contract.VAR_MODEL_NAME}"
    for role in contract.DATA_BUCKET_ROLES:
        assert contract.bucket_variable(role) in offered


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_model_server_reads_every_variable_its_deployment_sets(stack: str) -> None:
    servers = [
        (name, env)
        for name, c, env in _deployment_containers(stack)
        if c.get("command") == ["python", "-m", "training_jobs.serve"]
    ]
    assert len(servers) == 1, f"{stack}: {len(servers)} model server Deployments"
    name, env = servers[0]
    cls = _settings_class("training_jobs.serve")
    parsed = _parse(cls, env)
    assert isinstance(parsed, dict), f"{name} would not start: {parsed}"
    offered = {n for n in env if n.startswith(contract.ENV_PREFIX)}
    assert _variables_read(cls, env, contract.ENV_PREFIX) == offered
    assert parsed["port"] == int(env[contract.VAR_SERVE_PORT])
    assert parsed["model_name"] == env[contract.VAR_SERVE_MODEL_NAME]


def _mlflow_variables() -> set[str]:
    """Every variable MLflow reads: its declared environment variables and the envvars of
    the `mlflow server` command's options."""
    import mlflow.environment_variables as declared
    from mlflow import cli

    names = {v.name for v in vars(declared).values() if hasattr(v, "name") and hasattr(v, "get")}
    names |= {p.envvar for p in cli.server.params if isinstance(p.envvar, str)}
    return names


# pr-template runs no tracking server of its own: its jobs use the base stack's.
@pytest.mark.parametrize("stack", [s for s in SHIPPED_STACKS if s != "pr-template"])
def test_mlflow_reads_every_variable_the_tracking_deployment_sets(stack: str) -> None:
    containers = [
        (name, env)
        for name, c, env in _deployment_containers(stack)
        if c.get("command") == ["mlflow", "server"]
    ]
    assert len(containers) == 1, f"{stack}: {len(containers)} MLflow Deployments"
    known = _mlflow_variables()
    for name, env in containers:
        unknown = {n for n in env if n.startswith("MLFLOW_")} - known
        assert not unknown, f"{name} sets {sorted(unknown)}; MLflow reads no such variable"


def test_the_environment_literal_and_the_contract_agree() -> None:
    from typing import get_args

    from infra.config import Environment

    assert get_args(Environment) == contract.ENVIRONMENTS
    assert contract.RETAINED_ENVIRONMENTS <= contract.GUARDED_ENVIRONMENTS


def test_the_emulator_serves_the_local_stacks_region() -> None:
    from mlops_local import moto_host

    assert plan_for("local").outputs[contract.OUTPUT_REGION] == moto_host.REGION


def test_a_variable_renamed_on_one_side_is_caught() -> None:
    """The check itself: a job definition spelling a variable the jobs do not read."""
    _, module, env = next(_job_definitions("dev"))
    renamed = {
        ("MLOPS_MODELNAME" if k == contract.VAR_MODEL_NAME else k): v for k, v in env.items()
    }
    read = _variables_read(_settings_class(module), renamed, contract.ENV_PREFIX)
    assert "MLOPS_MODELNAME" not in read
    assert contract.bucket_variable(contract.BUCKET_RAW) in read or module.endswith("serve")

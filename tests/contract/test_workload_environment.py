"""The plan's container environment, read by the code that reads it in production.

Every shipped stack's job definitions and Deployments set variables that a workload's
settings class (or MLflow itself) must read. Each is parsed here with the real class,
through the jobs' own `parse_settings` and the command's own arguments, so a variable
renamed on either side fails this test instead of a deployment: a job definition missing a
required variable fails to parse; a variable nothing reads (a typo, a renamed field) is
found by changing its value and seeing that nothing changes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from unittest import mock

import pytest

from tests.conftest import SHIPPED_STACKS, plan_for
from tests.workloads import SETTINGS, Workload, deployment_containers, job_definitions
from training_jobs import contract
from training_jobs.common import (
    BaseJobSettings,
    JobError,
    JobSettings,
    find_bucket,
    parse_settings,
    region,
    tracking_uri,
)
from training_jobs.serve import main as serve

AWS_REGION = "AWS_REGION"


@contextmanager
def _only_env(env: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, dict(env), clear=True):
        yield


def _settings(cls: type[BaseJobSettings], args: list[str]) -> BaseJobSettings:
    return parse_settings(cls, args, f"python -m training_jobs ({cls.__name__})")


def _parse(cls: type[BaseJobSettings], env: Mapping[str, str], args: list[str]) -> Any:
    """The settings a workload would start with, or why it would refuse to start."""
    with _only_env(env):
        try:
            return _settings(cls, args).model_dump()
        except JobError as exc:
            return str(exc)


def _other_value(value: str) -> str:
    """A different value of the same kind (a number stays a number)."""
    return str(int(value) + 1) if value.isdigit() else f"{value}-changed"


def _variables_read(workload: Workload, env: dict[str, str] | None = None) -> set[str]:
    """The MLOPS_* variables of `env` its settings class reads: changing one changes the
    settings (or is refused by their validation). A value equal to a default is found too."""
    env = workload.env if env is None else env
    cls = SETTINGS[str(workload.module)]
    full = _parse(cls, env, workload.args)
    return {
        name
        for name in env
        if name.startswith(contract.ENV_PREFIX)
        and _parse(cls, env | {name: _other_value(env[name])}, workload.args) != full
    }


def _model_server(stack: str) -> Workload:
    servers = [w for w in deployment_containers(plan_for(stack)) if w.module == "serve"]
    assert len(servers) == 1, f"{stack}: {len(servers)} model server Deployments"
    return servers[0]


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_job_definition_parses_with_its_jobs_settings(stack: str) -> None:
    jobs = list(job_definitions(plan_for(stack)))
    assert sorted(str(w.module) for w in jobs) == sorted(contract.BATCH_JOBS)
    for job in jobs:
        env = job.env
        with _only_env(env):
            # The definition's command passes no flags: everything comes from its environment.
            settings = _settings(SETTINGS[str(job.module)], job.args)
            assert tracking_uri(settings) == env[contract.VAR_TRACKING_URI], job.resource
            assert region(settings) == env[AWS_REGION], job.resource
            for role in contract.DATA_BUCKET_ROLES:
                if contract.OUTPUT_BUCKETS[role] in type(settings).model_fields:
                    assert find_bucket(settings, role) == env[contract.bucket_variable(role)]
            assert settings.model_dump()["model_name"] == env[contract.VAR_MODEL_NAME]
            if isinstance(settings, JobSettings):
                assert settings.experiment == env[contract.VAR_EXPERIMENT]


def test_a_per_pr_stacks_jobs_and_server_use_its_own_model_name() -> None:
    for workload in [*job_definitions(plan_for("pr-template")), _model_server("pr-template")]:
        name = workload.env.get(contract.VAR_MODEL_NAME) or workload.env.get(
            contract.VAR_SERVE_MODEL_NAME
        )
        assert name and name != contract.DEFAULT_MODEL_NAME, workload.resource


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_every_platform_variable_of_the_job_definitions_is_read(stack: str) -> None:
    """The job definitions share one environment; each MLOPS_* variable in it is read by
    the jobs it is meant for (at least one), and the model name reaches every job."""
    jobs = list(job_definitions(plan_for(stack)))
    offered = {n for w in jobs for n in w.env if n.startswith(contract.ENV_PREFIX)}
    read = {str(w.module): _variables_read(w) for w in jobs}
    unread = offered - set().union(*read.values())
    assert not unread, f"{stack}: job definitions set {sorted(unread)}, no job reads them"
    for module, names in read.items():
        assert contract.VAR_MODEL_NAME in names, f"{module} ignores {contract.VAR_MODEL_NAME}"
    for role in contract.DATA_BUCKET_ROLES:
        assert contract.bucket_variable(role) in offered


@pytest.mark.parametrize("stack", SHIPPED_STACKS)
def test_the_model_server_reads_every_variable_its_deployment_sets(stack: str) -> None:
    server = _model_server(stack)
    env = server.env
    assert _variables_read(server) == {n for n in env if n.startswith(contract.ENV_PREFIX)}
    with _only_env(env):
        settings = _settings(SETTINGS[contract.MODULE_SERVE], server.args)
        assert settings.host == env[contract.VAR_SERVE_HOST]
        assert settings.port == int(env[contract.VAR_SERVE_PORT])
        assert settings.drain_grace_s == float(env[contract.VAR_SERVE_DRAIN_GRACE_S])
        assert settings.model_name == env[contract.VAR_SERVE_MODEL_NAME]
        assert tracking_uri(settings) == env[contract.VAR_SERVE_TRACKING_URI]
        assert serve.capture_target(settings) == env[contract.VAR_SERVE_CAPTURE_BUCKET]
        assert region(settings) == env[AWS_REGION]


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
    servers = [
        w for w in deployment_containers(plan_for(stack)) if w.command == ["mlflow", "server"]
    ]
    assert len(servers) == 1, f"{stack}: {len(servers)} MLflow Deployments"
    unknown = {n for n in servers[0].env if n.startswith("MLFLOW_")} - _mlflow_variables()
    assert not unknown, (
        f"{servers[0].resource} sets {sorted(unknown)}; MLflow reads no such variable"
    )


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
    job = next(job_definitions(plan_for("dev")))
    renamed = {
        ("MLOPS_MODELNAME" if k == contract.VAR_MODEL_NAME else k): v for k, v in job.env.items()
    }
    read = _variables_read(job, renamed)
    assert "MLOPS_MODELNAME" not in read
    assert contract.bucket_variable(contract.BUCKET_RAW) in read

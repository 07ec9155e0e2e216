"""The workloads a plan runs, as the code that runs them sees them (tests/contract, tests/jobs).

A Batch job definition and a Deployment container both come down to a module
(`python -m training_jobs.<module>`), its arguments and its environment; `SETTINGS` is the
settings class each module starts with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from mlops.plan import Plan
from training_jobs import contract, evaluate, prepare, register, train
from training_jobs.common import BaseJobSettings
from training_jobs.drift import job as drift
from training_jobs.serve.settings import ServeSettings

SETTINGS: dict[str, type[BaseJobSettings]] = {
    contract.JOB_PREPARE: prepare.Settings,
    contract.JOB_TRAIN: train.Settings,
    contract.JOB_EVALUATE: evaluate.Settings,
    contract.JOB_REGISTER: register.Settings,
    contract.JOB_DRIFT: drift.DriftSettings,
    contract.MODULE_SERVE: ServeSettings,
}
SECRET_VALUE = "plan-secret"  # what a variable from Secrets Manager / a k8s Secret holds here


@dataclass(frozen=True)
class Workload:
    resource: str  # the plan resource's name
    command: list[str]
    args: list[str]
    env: dict[str, str]

    @property
    def module(self) -> str | None:
        """`prepare` for `python -m training_jobs.prepare`; None for another program."""
        if self.command[:2] != ["python", "-m"] or len(self.command) < 3:
            return None
        return self.command[2].removeprefix("training_jobs.")


def job_definitions(plan: Plan) -> Iterator[Workload]:
    """Every Batch job definition: its command's module and its environment."""
    for r in plan.resources:
        if r.type != "aws:batch/jobDefinition:JobDefinition":
            continue
        props = r.inputs["containerProperties"]
        props = json.loads(props) if isinstance(props, str) else props
        env = {e["name"]: e["value"] for e in props.get("environment", [])}
        env |= {s["name"]: SECRET_VALUE for s in props.get("secrets", [])}
        command = list(props["command"])
        yield Workload(r.name, command[:3], command[3:], env)


def deployment_containers(plan: Plan) -> Iterator[Workload]:
    """Every container of every Deployment."""
    for r in plan.resources:
        if r.type != "kubernetes:apps/v1:Deployment":
            continue
        for c in r.inputs["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e.get("value", SECRET_VALUE) for e in c.get("env", [])}
            yield Workload(r.name, list(c.get("command") or []), list(c.get("args") or []), env)

"""The local stack's plan, as the local platform reads it.

The plan (`mlops plan --stack local --json`) is the only description of the platform the
local run uses: the AWS resources it applies to the emulator, the Kubernetes objects it runs
on the container engine, the outputs it hands the jobs. What the plan cannot hold — the
values of generated passwords — is generated here, once per work directory, and put where
the plan's secret templates say (mlops/recorder.py records them).
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any, Final

from mlops.plan import Plan, PlanResource
from training_jobs import contract

RANDOM_PASSWORD: Final = "random:index/randomPassword:RandomPassword"
ACCOUNT: Final = "123456789012"  # the offline mock's account, and moto's
_RANDOM = re.compile(r"\{\{random:([^}]+)\}\}")


class PlanError(Exception):
    """The plan file is missing, unreadable or not a local stack's plan; says which."""


@dataclass
class LocalPlan:
    plan: Plan
    path: Path
    # RandomPassword urn → the value generated for it (kept in the work directory).
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> LocalPlan:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise PlanError(
                f"{path}: no such plan; write one with `mlops plan --stack local --json {path}`"
            ) from exc
        except (OSError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: not a readable plan JSON ({exc})") from exc
        try:
            plan = Plan.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"{path}: not a plan written by `mlops plan --json` ({exc})") from exc
        if not any(r.type.startswith("kubernetes:apps/v1:Deployment") for r in plan.resources):
            raise PlanError(
                f"{path}: stack {plan.stack!r} declares no workloads (no Deployment); the local "
                "platform runs the `local` stack's plan (`mlops plan --stack local --json PATH`)"
            )
        return cls(plan=plan, path=path)

    @property
    def region(self) -> str:
        return str(self.plan.outputs.get(contract.OUTPUT_REGION, contract.DEFAULT_REGION))

    @property
    def account(self) -> str:
        return ACCOUNT

    @property
    def outputs(self) -> dict[str, Any]:
        return dict(self.plan.outputs)

    def in_dependency_order(self) -> list[PlanResource]:
        """Every resource after the ones it depends on (ties by URN: deterministic)."""
        by_urn = self.plan.by_urn()
        graph = {
            urn: {d for d in r.dependencies if d in by_urn} for urn, r in sorted(by_urn.items())
        }
        try:
            return [by_urn[urn] for urn in TopologicalSorter(graph).static_order()]
        except CycleError as exc:
            raise PlanError(f"{self.path}: dependency cycle {exc.args[1]}") from exc

    # --- secrets -------------------------------------------------------------------------

    def generate_passwords(self, store: Path) -> None:
        """A value for every RandomPassword of the plan, as its inputs ask; kept in `store`
        so a work directory's MLflow database keeps the admin password it was made with."""
        kept: dict[str, str] = json.loads(store.read_text()) if store.exists() else {}
        for resource in self.plan.of_type(RANDOM_PASSWORD):
            self.passwords[resource.urn] = kept.get(resource.urn) or _password(resource.inputs)
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(json.dumps(self.passwords, indent=2, sort_keys=True))
        store.chmod(0o600)

    def secret_value(self, resource: PlanResource, path: str) -> Any:
        """The input `path` of `resource` with its generated passwords filled in."""
        template = self.plan.secret_templates.get(resource.urn, {}).get(path)
        if template is None:
            return resource.inputs.get(path)
        return self._fill(template, f"{resource.name}.{path}")

    def _fill(self, value: Any, where: str) -> Any:
        if isinstance(value, str):

            def password(match: re.Match[str]) -> str:
                urn = match.group(1)
                if urn not in self.passwords:
                    raise PlanError(f"{where}: no generated value for {urn}")
                return self.passwords[urn]

            return _RANDOM.sub(password, value)
        if isinstance(value, dict):
            return {k: self._fill(v, where) for k, v in value.items()}
        if isinstance(value, list):
            return [self._fill(v, where) for v in value]
        return value

    # --- Kubernetes objects --------------------------------------------------------------

    def kubernetes(self, kind: str) -> Iterator[PlanResource]:
        for resource in sorted(self.plan.resources, key=lambda r: r.urn):
            if resource.type.startswith("kubernetes:") and resource.inputs.get("kind") == kind:
                yield resource

    def deployments(self) -> dict[str, PlanResource]:
        """`<namespace>/<name>` → the Deployment."""
        return {_key(r.inputs): r for r in self.kubernetes("Deployment")}

    def secret_data(self, namespace: str) -> dict[str, dict[str, str]]:
        """Secret name → key → value, for the Secrets of `namespace` (passwords filled in)."""
        found: dict[str, dict[str, str]] = {}
        for resource in self.kubernetes("Secret"):
            meta = resource.inputs.get("metadata") or {}
            if meta.get("namespace") != namespace:
                continue
            data = self.secret_value(resource, "stringData") or {}
            found[str(meta["name"])] = {str(k): str(v) for k, v in data.items()}
        return found

    def service_account(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        for resource in self.kubernetes("ServiceAccount"):
            meta = resource.inputs.get("metadata") or {}
            if meta.get("namespace") == namespace and meta.get("name") == name:
                return dict(meta)
        return None

    def services(self) -> dict[str, Mapping[str, Any]]:
        """`<namespace>/<name>` → the Service object's inputs."""
        return {_key(r.inputs): r.inputs for r in self.kubernetes("Service")}

    def cluster_hosts(self) -> dict[str, str]:
        """Every name the plan's Services answer to in the cluster → loopback: every pod
        shares the host network here."""
        hosts = {}
        for key in self.services():
            namespace, name = key.split("/")
            for host in (f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}.svc"):
                hosts[host] = "127.0.0.1"
        return hosts


def _key(inputs: Mapping[str, Any]) -> str:
    meta = inputs.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name')}"


def _password(inputs: Mapping[str, Any]) -> str:
    """What random.RandomPassword generates for these inputs (length, character classes)."""
    alphabet = ""
    if inputs.get("lower", True):
        alphabet += string.ascii_lowercase
    if inputs.get("upper", True):
        alphabet += string.ascii_uppercase
    if inputs.get("numeric", True):
        alphabet += string.digits
    if inputs.get("special", True):
        alphabet += str(inputs.get("overrideSpecial") or "!@#$%&*()-_=+[]{}<>:?")
    length = int(inputs.get("length", 32))
    return "".join(secrets.choice(alphabet) for _ in range(length))

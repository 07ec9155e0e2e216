"""Contracts broken in a copy of the local plan: what each e2e test feeds the platform.

Each function edits the plan's data the way a careless change to the program would, and
returns the plan resource the failure must name."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Plan = dict[str, Any]


def _resource(plan: Plan, type_: str, name_part: str) -> dict[str, Any]:
    found = [r for r in plan["resources"] if r["type"] == type_ and name_part in r["name"]]
    assert len(found) == 1, f"{type_} {name_part}: {[r['name'] for r in found]}"
    resource: dict[str, Any] = found[0]
    return resource


def job_role_without_put_object(plan: Plan) -> str:
    """The job role can read but no longer write objects: prepare writes the curated data."""
    policy = _resource(plan, "aws:iam/rolePolicy:RolePolicy", "training-job-policy")
    document = json.loads(policy["inputs"]["policy"])
    for statement in document["Statement"]:
        if "s3:PutObject" in statement.get("Action", []):
            statement["Action"].remove("s3:PutObject")
    policy["inputs"]["policy"] = json.dumps(document)
    return _resource(plan, "aws:iam/role:Role", "training-job-role")["name"]


def renamed_tracking_variable(plan: Plan) -> str:
    """The train job definition spells MLflow's address as a variable the job never reads."""
    definition = _resource(plan, "aws:batch/jobDefinition:JobDefinition", "training-train")
    properties = json.loads(definition["inputs"]["containerProperties"])
    for entry in properties["environment"]:
        if entry["name"] == "MLOPS_TRACKING_URI":
            entry["name"] = "MLOPS_TRACKING_URL"
    definition["inputs"]["containerProperties"] = json.dumps(properties)
    return str(definition["name"])


def mlflow_memory_below_footprint(plan: Plan) -> str:
    """MLflow's container limit below what its server needs (measured: ~550 MB RSS)."""
    deployment = _resource(plan, "kubernetes:apps/v1:Deployment", "tracking")
    container = deployment["inputs"]["spec"]["template"]["spec"]["containers"][0]
    container["resources"]["limits"]["memory"] = "160Mi"
    container["resources"]["requests"]["memory"] = "160Mi"
    return str(deployment["name"])


def tracking_port_egress_removed(plan: Plan) -> str:
    """The Batch security group loses its rule to MLflow's port."""
    group = _resource(plan, "aws:ec2/securityGroup:SecurityGroup", "training-sg")
    group["inputs"]["egress"] = [e for e in group["inputs"]["egress"] if e["fromPort"] != 5000]
    return str(group["name"])


BREAKS: dict[str, Callable[[Plan], str]] = {
    "job role without s3:PutObject": job_role_without_put_object,
    "job definition env variable renamed": renamed_tracking_variable,
    "MLflow memory limit below its footprint": mlflow_memory_below_footprint,
    "tracking port egress rule removed": tracking_port_egress_removed,
}

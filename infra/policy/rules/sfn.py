"""Step Functions (the retrain pipeline): executions are logged and traced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.policy.core import Context, resource_rule
from infra.policy.documents import get, truthy

STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"


@resource_rule(
    id="MLOPS-SFN-001",
    title="Step Functions logging",
    severity="medium",
    enforcement="mandatory",
    category="operations",
    types=(STATE_MACHINE,),
    checkov=("CKV_AWS_285",),
    description="State machines log executions to CloudWatch.",
    remediation="Set loggingConfiguration {level: ERROR or ALL, logDestination: <log group "
    "arn>:*}.",
)
def _sfn_logging(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    level = get(inputs, "loggingConfiguration.level", "OFF")
    if level == "OFF" or not get(inputs, "loggingConfiguration.logDestination"):
        return [f"loggingConfiguration.level is {level!r} or has no destination"]
    return []


@resource_rule(
    id="MLOPS-SFN-002",
    title="Step Functions tracing",
    severity="low",
    enforcement="advisory",
    category="operations",
    types=(STATE_MACHINE,),
    checkov=("CKV_AWS_284",),
    description="X-Ray tracing is on.",
    remediation="Set tracingConfiguration.enabled true.",
)
def _sfn_tracing(inputs: Mapping[str, Any], ctx: Context) -> list[str]:
    ok = truthy(get(inputs, "tracingConfiguration.enabled"))
    return [] if ok else ["tracingConfiguration.enabled is not true"]
